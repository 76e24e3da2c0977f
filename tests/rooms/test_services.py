"""The service layer: the one write path for rooms and messages."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.utils import timezone

from rooms import fanout, services
from rooms.models import Membership, Message, Room


def test_creating_a_room_makes_the_creator_owner_and_member(alice):
    room = services.create_room(creator=alice, name="Book club", topic="Novels")
    assert room.slug == "book-club"
    assert room.kind == Room.Kind.PUBLIC
    membership = Membership.objects.get(room=room, user=alice)
    assert membership.role == Membership.Role.OWNER


def test_slugs_made_from_names_never_collide(alice):
    first = services.create_room(creator=alice, name="General")
    second = services.create_room(creator=alice, name="General")
    assert first.slug != second.slug


def test_a_chosen_slug_that_is_taken_is_refused(alice):
    services.create_room(creator=alice, name="One", slug="one")
    with pytest.raises(services.SlugTaken):
        services.create_room(creator=alice, name="Two", slug="one")


def test_posting_numbers_messages_one_two_three(public_room, alice, bob):
    seqs = [
        services.post_message(author=who, room=public_room, body=f"hi {n}").message.seq
        for n, who in enumerate([alice, bob, alice])
    ]
    assert seqs == [1, 2, 3]
    public_room.refresh_from_db()
    assert public_room.last_seq == 3


def test_the_same_ref_twice_stores_one_message(public_room, alice):
    first = services.post_message(author=alice, room=public_room, body="once", ref="r-1")
    again = services.post_message(author=alice, room=public_room, body="once", ref="r-1")
    assert first.created and not again.created
    assert again.message.pk == first.message.pk
    assert Message.objects.filter(room=public_room).count() == 1


def test_the_same_ref_from_another_author_is_another_message(public_room, alice, bob):
    services.post_message(author=alice, room=public_room, body="a", ref="same")
    services.post_message(author=bob, room=public_room, body="b", ref="same")
    assert Message.objects.filter(room=public_room).count() == 2


def test_blank_and_overlong_bodies_are_refused_and_store_nothing(public_room, alice):
    with pytest.raises(services.EmptyBody):
        services.post_message(author=alice, room=public_room, body="   \n ")
    with pytest.raises(services.BodyTooLong):
        services.post_message(author=alice, room=public_room, body="x" * 4001)
    assert services.post_message(author=alice, room=public_room, body="x" * 4000).message.seq == 1


def test_outsider_cannot_post_to_a_private_room_and_seq_stays_gap_free(private_room, alice, carol):
    with pytest.raises(services.Forbidden):
        services.post_message(author=carol, room=private_room, body="let me in")
    assert services.post_message(author=alice, room=private_room, body="hi").message.seq == 1


def test_outsider_cannot_join_or_read_a_private_room(private_room, carol):
    with pytest.raises(services.Forbidden):
        services.join_room(user=carol, room=private_room)
    with pytest.raises(services.Forbidden):
        services.history(user=carol, room=private_room)


def test_posting_to_a_public_room_needs_joining_first(public_room, carol):
    with pytest.raises(services.Forbidden):
        services.post_message(author=carol, room=public_room, body="hello")
    services.join_room(user=carol, room=public_room)
    assert services.post_message(author=carol, room=public_room, body="hello").created


def test_archived_rooms_are_read_only(public_room, alice):
    from django.utils import timezone

    public_room.archived_at = timezone.now()
    public_room.save()
    with pytest.raises(services.Forbidden):
        services.post_message(author=alice, room=public_room, body="too late")


def test_a_user_in_the_most_rooms_one_may_can_join_or_start_no_other(
    public_room, alice, bob, carol, settings, monkeypatch
):
    other = services.create_room(creator=carol, name="Other")
    monkeypatch.setitem(settings.CHAT, "ROOMS_PER_USER", 1)
    for attempt in (
        lambda: services.join_room(user=alice, room=other),
        lambda: services.create_room(creator=alice, name="Third"),
        lambda: services.send_direct(sender=alice, recipient_name="carol", body="hi"),
    ):
        with pytest.raises(services.Forbidden, match="leave some first"):
            attempt()
    assert Membership.objects.filter(user=alice).count() == 1
    # Leaving one makes room for another.
    services.leave_room(user=alice, room=public_room)
    services.join_room(user=alice, room=other)


def test_a_direct_message_to_oneself_is_refused(alice):
    with pytest.raises(services.DirectToSelf):
        services.send_direct(sender=alice, recipient_name="alice", body="note to self")
    assert not Room.objects.filter(kind=Room.Kind.DIRECT).exists()


def test_bodies_of_characters_that_draw_nothing_are_empty(public_room, alice):
    for body in ("\u200b", "\u3164\u3164", "\u2800 \u200d", "\ufe0f", "\u202e\n\t"):
        with pytest.raises(services.EmptyBody):
            services.post_message(author=alice, room=public_room, body=body)
    kept = services.post_message(author=alice, room=public_room, body="\u200bhi\u200b").message
    assert kept.body == "\u200bhi\u200b" and kept.seq == 1


def test_joining_twice_is_harmless(public_room, carol):
    _, created = services.join_room(user=carol, room=public_room)
    _, again = services.join_room(user=carol, room=public_room)
    assert created and not again
    assert Membership.objects.filter(room=public_room, user=carol).count() == 1


def test_leaving_ends_membership(public_room, bob):
    services.leave_room(user=bob, room=public_room)
    assert not Membership.objects.filter(room=public_room, user=bob).exists()


def test_history_pages_back_and_forward(public_room, alice):
    for n in range(1, 8):
        services.post_message(author=alice, room=public_room, body=f"m{n}")
    newest = services.history(user=alice, room=public_room, limit=3)
    assert [m["seq"] for m in newest.messages] == [5, 6, 7] and newest.has_more
    older = services.history(user=alice, room=public_room, before=5, limit=3)
    assert [m["seq"] for m in older.messages] == [2, 3, 4] and older.has_more
    oldest = services.history(user=alice, room=public_room, before=2, limit=3)
    assert [m["seq"] for m in oldest.messages] == [1] and not oldest.has_more
    after = services.history(user=alice, room=public_room, after=2, limit=3)
    assert [m["seq"] for m in after.messages] == [3, 4, 5] and after.has_more
    tail = services.history(user=alice, room=public_room, after=5, limit=3)
    assert [m["seq"] for m in tail.messages] == [6, 7] and not tail.has_more


def test_history_limit_is_capped_at_one_hundred(public_room, alice):
    for n in range(105):
        services.post_message(author=alice, room=public_room, body=f"m{n}")
    page = services.history(user=alice, room=public_room, limit=1000)
    assert len(page.messages) == 100


def test_unread_counts_follow_posts_and_reads(public_room, alice, bob):
    from rooms import selectors

    services.post_message(author=alice, room=public_room, body="one")
    services.post_message(author=alice, room=public_room, body="two")
    unread = {e.room.slug: e.unread for e in selectors.rooms_for(bob)}
    assert unread["lobby"] == 2
    # The author's own messages count as read.
    assert {e.room.slug: e.unread for e in selectors.rooms_for(alice)}["lobby"] == 0
    services.mark_read(user=bob, room=public_room, seq=1)
    assert {e.room.slug: e.unread for e in selectors.rooms_for(bob)}["lobby"] == 1
    # Never backwards, never past the end.
    services.mark_read(user=bob, room=public_room, seq=0)
    services.mark_read(user=bob, room=public_room, seq=99)
    assert Membership.objects.get(room=public_room, user=bob).last_read == 2


def test_edit_and_delete_by_author_or_staff_only(public_room, alice, bob, staff):
    message = services.post_message(author=alice, room=public_room, body="typo").message
    with pytest.raises(services.Forbidden):
        services.edit_message(user=bob, message_id=message.pk, body="mine now")
    edited = services.edit_message(user=alice, message_id=message.pk, body="fixed")
    assert edited.body == "fixed" and edited.edited_at is not None
    services.delete_message(user=staff, message_id=message.pk)
    page = services.history(user=bob, room=public_room)
    assert page.messages[0]["deleted"] is True
    assert page.messages[0]["body"] == ""
    assert page.messages[0]["seq"] == 1


def test_direct_room_is_made_once_and_holds_only_the_two(alice, bob, carol):
    room, first = services.send_direct(sender=alice, recipient_name="bob", body="hi bob")
    again, second = services.send_direct(sender=bob, recipient_name="alice", body="hi alice")
    assert room.pk == again.pk and room.kind == Room.Kind.DIRECT
    assert [first.message.seq, second.message.seq] == [1, 2]
    assert set(room.members.values_list("username", flat=True)) == {"alice", "bob"}
    with pytest.raises(services.Forbidden):
        services.history(user=carol, room=room)
    assert room.display_name_for(alice) == "bob"


def test_direct_to_nobody_is_not_found(alice):
    with pytest.raises(services.RoomNotFound):
        services.send_direct(sender=alice, recipient_name="nobody", body="hello?")


def test_a_stored_message_is_broadcast_once_on_commit(
    public_room, alice, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with django_capture_on_commit_callbacks(execute=True):
        services.post_message(author=alice, room=public_room, body="hello", ref="x")
    assert len(sent) == 1
    (item,) = sent[0]
    assert item["room"] == public_room.pk
    assert '"body":"hello"' in item["frame"]


def test_a_rejected_post_broadcasts_nothing(
    private_room, carol, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(services.Forbidden):
        services.post_message(author=carol, room=private_room, body="nope")
    assert sent == []


# Outside a transaction, as the WebSocket consumer posts: on PostgreSQL the message is stored by
# one statement, and every rule above must hold there too.
autocommit = pytest.mark.django_db(transaction=True)


@autocommit
def test_posting_outside_a_transaction_stores_numbers_and_broadcasts_once(
    public_room, alice, bob, monkeypatch
):
    sent = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    first = services.post_message(author=alice, room=public_room, body="one", ref="a1")
    second = services.post_message(author=bob, room=public_room, body="two")
    assert (first.message.seq, second.message.seq) == (1, 2)
    stored = Message.objects.get(pk=first.message.pk)
    assert (stored.seq, stored.body, stored.ref, stored.author_id) == (1, "one", "a1", alice.pk)
    assert stored.created_at == first.message.created_at
    public_room.refresh_from_db()
    assert public_room.last_seq == 2
    # The author's own message counts as read, for each author.
    reads = dict(Membership.objects.filter(room=public_room).values_list("user", "last_read"))
    assert reads == {alice.pk: 1, bob.pk: 2}
    assert [item["room"] for (item,) in sent] == [public_room.pk, public_room.pk]
    assert '"ref":"a1"' in sent[0][0]["frame"] and f'"id":{first.message.pk}' in sent[0][0]["frame"]


@autocommit
def test_a_retried_ref_outside_a_transaction_returns_the_first_and_keeps_seq(public_room, alice):
    first = services.post_message(author=alice, room=public_room, body="once", ref="r-1")
    again = services.post_message(author=alice, room=public_room, body="once", ref="r-1")
    assert first.created and not again.created and again.message.pk == first.message.pk
    assert services.post_message(author=alice, room=public_room, body="next").message.seq == 2


@autocommit
def test_refused_posts_outside_a_transaction_take_no_seq(
    public_room, private_room, alice, carol, monkeypatch
):
    sent = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with pytest.raises(services.Forbidden):
        services.post_message(author=carol, room=private_room, body="let me in")
    with pytest.raises(services.Forbidden):
        services.post_message(author=carol, room=public_room, body="not joined yet")
    assert services.post_message(author=alice, room=private_room, body="hi").message.seq == 1
    private_room.archived_at = timezone.now()
    private_room.save()
    with pytest.raises(services.Forbidden, match="archived"):
        services.post_message(author=alice, room=private_room, body="too late")
    private_room.refresh_from_db()
    assert private_room.last_seq == 1
    assert len(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_seq_stays_contiguous_under_concurrent_posters(django_user_model):
    """Several threads post to one room at once: seq is 1..N with no gap and no duplicate."""
    writers = [django_user_model.objects.create_user(f"w{n}", password="x") for n in range(6)]
    room = services.create_room(creator=writers[0], name="Busy")
    for writer in writers[1:]:
        services.join_room(user=writer, room=room)
    per_thread = 15
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers))

    def post_many(writer) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                # Every message twice with the same ref: the retry must store nothing new.
                services.post_message(author=writer, room=room, body=f"{n}", ref=f"r{n}")
                services.post_message(author=writer, room=room, body=f"{n}", ref=f"r{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post_many, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(Message.objects.filter(room=room).values_list("seq", flat=True))
    assert seqs == list(range(1, len(writers) * per_thread + 1))
    room.refresh_from_db()
    assert room.last_seq == len(seqs)
