"""Moderation services: who may do what to whom, and what each action changes for the people in
the room. alice owns #lobby and #secret, bob is a member, mo a moderator, carol an outsider,
sam staff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from rooms import fanout, moderation, selectors, services
from rooms.models import AuditEntry, Membership, Message, Restriction, Room
from rooms.moderation import MEMBER_RANK, MODERATOR_RANK, OWNER_RANK, STAFF_RANK

# --- the rules, as plain logic -------------------------------------------------------------

ALL = moderation.ACTIONS
BELOW_OWNER = ("mute", "unmute", "kick", "ban", "unban")


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (MEMBER_RANK, MEMBER_RANK, ()),
        (MODERATOR_RANK, MEMBER_RANK, BELOW_OWNER),
        (MODERATOR_RANK, MODERATOR_RANK, ()),
        (MODERATOR_RANK, OWNER_RANK, ()),
        (MODERATOR_RANK, STAFF_RANK, ()),
        (OWNER_RANK, MEMBER_RANK, ALL),
        (OWNER_RANK, MODERATOR_RANK, ALL),
        (OWNER_RANK, OWNER_RANK, ()),
        (OWNER_RANK, STAFF_RANK, ()),
        (STAFF_RANK, OWNER_RANK, ALL),
        (STAFF_RANK, STAFF_RANK, ALL),
    ],
)
def test_who_may_act_on_whom(actor: int, target: int, allowed: tuple[str, ...]) -> None:
    may = {
        action
        for action in ALL
        if moderation.refusal(action, actor_rank=actor, target_rank=target, on_self=False) is None
    }
    assert may == set(allowed)


@pytest.mark.parametrize("rank", [MODERATOR_RANK, OWNER_RANK, STAFF_RANK])
def test_nobody_moderates_themselves(rank: int) -> None:
    assert moderation.refusal("mute", actor_rank=rank, target_rank=MEMBER_RANK, on_self=True)


# --- personas ------------------------------------------------------------------------------


@pytest.fixture
def mo(user_factory: Any, public_room: Room, alice: Any) -> Any:
    """A moderator of #lobby, promoted by alice."""
    mo = user_factory("mo")
    services.join_room(user=mo, room=public_room)
    moderation.moderate(actor=alice, room=public_room, target=mo, action="promote")
    return mo


def role(room: Room, user: Any) -> str | None:
    return Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()


def post(room: Room, user: Any, body: str = "hi", ref: str | None = None) -> Message:
    return services.post_message(author=user, room=room, body=body, ref=ref).message


# Posting is checked by the statement that stores the message: on PostgreSQL outside a
# transaction that is one statement of its own, inside one the portable path. Both must refuse.
posting_paths = pytest.mark.parametrize(
    "path",
    [
        pytest.param("in a transaction", marks=pytest.mark.django_db),
        pytest.param("autocommit", marks=pytest.mark.django_db(transaction=True)),
    ],
)


# --- mute ----------------------------------------------------------------------------------


@posting_paths
def test_a_muted_member_cannot_post_until_the_mute_ends(path, public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute", minutes=10)
    with pytest.raises(services.Muted) as refused:
        post(public_room, bob)
    until = Restriction.objects.get(user=bob, kind="mute").until
    assert until is not None and refused.value.fields["until"] is not None
    assert timedelta(minutes=9) < until - timezone.now() <= timedelta(minutes=10)
    public_room.refresh_from_db()
    assert public_room.last_seq == 0  # nothing stored, no seq taken
    # No job lifts it: once `until` has passed, posting works again.
    past = timezone.now() - timedelta(seconds=1)
    Restriction.objects.filter(user=bob).update(until=past)
    Membership.objects.filter(user=bob).update(muted_until=past)
    assert post(public_room, bob).seq == 1


@posting_paths
def test_a_mute_without_minutes_lasts_until_unmute(path, public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    with pytest.raises(services.Muted) as refused:
        post(public_room, bob)
    assert refused.value.fields == {"until": None}
    moderation.moderate(actor=alice, room=public_room, target=bob, action="unmute")
    assert post(public_room, bob).body == "hi"


def test_a_mute_outlives_leaving_and_joining_again(public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    services.leave_room(user=bob, room=public_room)
    services.join_room(user=bob, room=public_room)
    with pytest.raises(services.Muted):
        post(public_room, bob)


def test_a_muted_member_still_reads_the_room(public_room, alice, bob):
    post(public_room, alice, "still visible")
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    page = services.history(user=bob, room=public_room)
    assert [m["body"] for m in page.messages] == ["still visible"]


# --- kick and ban --------------------------------------------------------------------------


def test_a_kicked_member_is_out_and_may_join_again(public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="kick")
    assert role(public_room, bob) is None
    with pytest.raises(services.Forbidden):
        post(public_room, bob)
    services.join_room(user=bob, room=public_room)
    assert post(public_room, bob).seq == 1


def test_kicking_someone_who_is_not_a_member_is_not_found(public_room, alice, carol):
    with pytest.raises(moderation.NotMember):
        moderation.moderate(actor=alice, room=public_room, target=carol, action="kick")


def test_a_banned_user_may_not_join_be_invited_or_read(public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="ban")
    assert role(public_room, bob) is None
    with pytest.raises(services.Banned):
        services.join_room(user=bob, room=public_room)
    with pytest.raises(services.Banned):
        moderation.invite(actor=alice, room=public_room, target=bob)
    with pytest.raises(services.Banned):
        moderation.add_member(actor=alice, room=public_room, target=bob)
    with pytest.raises(services.Forbidden):
        services.history(user=bob, room=public_room)
    with pytest.raises(services.Forbidden, match="banned"):
        post(public_room, bob)
    assert role(public_room, bob) is None


def test_a_ban_of_someone_not_in_the_room_keeps_them_out(public_room, alice, carol):
    moderation.moderate(actor=alice, room=public_room, target=carol, action="ban")
    with pytest.raises(services.Banned):
        services.join_room(user=carol, room=public_room)


def test_unban_lets_them_join_again(public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="ban")
    moderation.moderate(actor=alice, room=public_room, target=bob, action="unban")
    _, created = services.join_room(user=bob, room=public_room)
    assert created and role(public_room, bob) == "member"


def test_a_banned_member_of_a_private_room_cannot_be_invited_back(private_room, alice, bob):
    moderation.moderate(actor=alice, room=private_room, target=bob, action="ban")
    with pytest.raises(services.Banned):
        moderation.invite(actor=alice, room=private_room, target="bob")


# --- who may act on whom, in a room ---------------------------------------------------------


def test_members_and_outsiders_may_not_moderate(public_room, bob, carol, alice):
    for actor in (bob, carol):
        with pytest.raises(services.Forbidden):
            moderation.moderate(actor=actor, room=public_room, target=alice, action="mute")
    assert not Restriction.objects.exists()


def test_a_moderator_acts_on_members_only(public_room, mo, alice, bob, user_factory):
    moderation.moderate(actor=mo, room=public_room, target=bob, action="mute")
    other = user_factory("other_mo")
    services.join_room(user=other, room=public_room)
    moderation.moderate(actor=alice, room=public_room, target=other, action="promote")
    for target in (alice, other):
        with pytest.raises(services.Forbidden):
            moderation.moderate(actor=mo, room=public_room, target=target, action="kick")
    with pytest.raises(services.Forbidden, match="owners"):
        moderation.moderate(actor=mo, room=public_room, target=bob, action="promote")
    assert role(public_room, alice) == "owner" and role(public_room, other) == "moderator"


def test_owners_promote_and_demote(public_room, alice, bob):
    event = moderation.moderate(actor=alice, room=public_room, target=bob, action="promote")
    assert role(public_room, bob) == "moderator" and event["role"] == "moderator"
    moderation.moderate(actor=alice, room=public_room, target=bob, action="demote")
    assert role(public_room, bob) == "member"


def test_an_owner_cannot_act_on_another_owner_but_staff_can(public_room, alice, bob, staff):
    Membership.objects.filter(room=public_room, user=bob).update(role="owner")
    with pytest.raises(services.Forbidden):
        moderation.moderate(actor=alice, room=public_room, target=bob, action="demote")
    moderation.moderate(actor=staff, room=public_room, target=bob, action="demote")
    assert role(public_room, bob) == "member"


def test_staff_act_as_owners_in_rooms_they_are_not_in(private_room, staff, bob):
    moderation.moderate(actor=staff, room=private_room, target=bob, action="mute", minutes=5)
    moderation.update_room_settings(actor=staff, room=private_room, slow_mode=30)
    private_room.refresh_from_db()
    assert private_room.slow_mode == 30


def test_losing_staff_status_takes_the_power_at_once(private_room, staff, bob):
    staff.is_staff = False
    type(staff).objects.filter(pk=staff.pk).update(is_staff=False)
    # `staff` is the stale object a socket would hold: rights are read from the database.
    staff.is_staff = True
    with pytest.raises(services.Forbidden):
        moderation.moderate(actor=staff, room=private_room, target=bob, action="kick")


def test_direct_rooms_have_no_moderation(alice, bob):
    room, _ = services.get_or_create_direct_room(sender=alice, recipient=bob)
    with pytest.raises(services.Forbidden):
        moderation.moderate(actor=alice, room=room, target=bob, action="mute")
    with pytest.raises(services.Forbidden):
        moderation.update_room_settings(actor=alice, room=room, slow_mode=5)


@pytest.mark.parametrize(
    ("action", "minutes"), [("shout", None), ("kick", 5), ("mute", 0), ("mute", 10**7)]
)
def test_bad_actions_and_minutes_are_bad_frames(public_room, alice, bob, action, minutes):
    with pytest.raises(moderation.BadRequest):
        moderation.moderate(
            actor=alice, room=public_room, target=bob, action=action, minutes=minutes
        )


def test_acting_on_nobody_is_not_found(public_room, alice):
    with pytest.raises(services.RoomNotFound):
        moderation.moderate(actor=alice, room=public_room, target="nobody", action="ban")


# --- invitations ---------------------------------------------------------------------------


def test_an_owner_invites_to_a_private_room(private_room, alice, carol):
    reply = moderation.invite(actor=alice, room=private_room, target="carol")
    assert reply == {"type": "invited", "room": "secret", "user": "carol"}
    assert role(private_room, carol) == "member"
    assert services.history(user=carol, room=private_room).room == "secret"


def test_a_member_may_not_invite(private_room, bob, carol):
    with pytest.raises(services.Forbidden):
        moderation.invite(actor=bob, room=private_room, target=carol)
    assert role(private_room, carol) is None


def test_an_invitation_tells_the_invitee_and_the_room_on_commit(
    private_room, alice, carol, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[Any] = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with django_capture_on_commit_callbacks(execute=True):
        moderation.invite(actor=alice, room=private_room, target=carol)
    (items,) = sent
    added = next(item for item in items if item.get("user") == carol.pk)
    assert added["subscribe"] == private_room.pk and '"room_added"' in added["frame"]
    assert any('"joined"' in item["frame"] for item in items if item.get("room"))


# --- slow mode and archive -----------------------------------------------------------------


@posting_paths
def test_slow_mode_holds_members_to_one_message_per_period(path, public_room, alice, bob, mo):
    moderation.update_room_settings(actor=alice, room=public_room, slow_mode=60)
    post(public_room, bob, "first", ref="b1")
    with pytest.raises(services.SlowMode) as refused:
        post(public_room, bob, "second")
    assert 59 <= refused.value.fields["retry_after"] <= 60
    # A retry of the message that started the wait is acked again, not refused.
    again = services.post_message(author=bob, room=public_room, body="first", ref="b1")
    assert not again.created and again.message.seq == 1
    # Owners and moderators are not held.
    assert [post(public_room, who).seq for who in (alice, alice, mo, mo)] == [2, 3, 4, 5]
    # The period over, bob may post again.
    Membership.objects.filter(room=public_room, user=bob).update(last_posted=0)
    assert post(public_room, bob, "later").seq == 6


def test_staff_members_are_not_held_by_slow_mode(public_room, alice, staff):
    services.join_room(user=staff, room=public_room)
    moderation.update_room_settings(actor=alice, room=public_room, slow_mode=60)
    assert [post(public_room, staff).seq for _ in range(3)] == [1, 2, 3]


@posting_paths
def test_an_archived_room_is_read_only_until_unarchived(path, public_room, alice, bob):
    event = moderation.update_room_settings(actor=alice, room=public_room, archived=True)
    assert event["room"]["archived"] is True
    for who in (alice, bob):
        with pytest.raises(services.Forbidden, match="archived"):
            post(public_room, who)
    moderation.update_room_settings(actor=alice, room=public_room, archived=False)
    assert post(public_room, bob).seq == 1


def test_room_settings_are_checked(public_room, alice, bob):
    with pytest.raises(services.Forbidden):
        moderation.update_room_settings(actor=bob, room=public_room, topic="mine now")
    with pytest.raises(moderation.BadRequest):
        moderation.update_room_settings(actor=alice, room=public_room, slow_mode=-1)
    with pytest.raises(moderation.BadRequest):
        moderation.update_room_settings(actor=alice, room=public_room, topic="x" * 201)
    event = moderation.update_room_settings(actor=alice, room=public_room, topic="  Books  ")
    assert event["room"]["topic"] == "Books"


# --- the audit log -------------------------------------------------------------------------


def test_every_action_is_written_to_the_audit_log(public_room, private_room, alice, bob, carol):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute", minutes=5)
    moderation.moderate(actor=alice, room=public_room, target=bob, action="kick")
    moderation.invite(actor=alice, room=private_room, target=carol)
    moderation.update_room_settings(actor=alice, room=public_room, slow_mode=10, topic="T")
    log = [
        (e.actor_name, e.action, e.target_name, e.room_slug, e.details)
        for e in AuditEntry.objects.order_by("id")
    ]
    assert log == [
        ("alice", "invite", "bob", "secret", {}),  # by the fixture
        ("alice", "mute", "bob", "lobby", {"minutes": 5}),
        ("alice", "kick", "bob", "lobby", {}),
        ("alice", "invite", "carol", "secret", {}),
        ("alice", "room_settings", "", "lobby", {"slow_mode": 10, "topic": "T"}),
    ]


def test_a_refused_action_writes_nothing_and_publishes_nothing(
    public_room, bob, alice, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[Any] = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(services.Forbidden):
        moderation.moderate(actor=bob, room=public_room, target=alice, action="ban")
    assert sent == [] and not AuditEntry.objects.exists() and not Restriction.objects.exists()


def test_a_kick_removes_the_room_from_the_target_and_tells_the_room(
    public_room, alice, bob, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[Any] = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    with django_capture_on_commit_callbacks(execute=True):
        moderation.moderate(actor=alice, room=public_room, target=bob, action="kick")
    items = [item for batch in sent for item in batch]
    removed = next(item for item in items if item.get("user") == bob.pk)
    assert removed["unsubscribe"] == public_room.pk and '"room_removed"' in removed["frame"]
    assert any('"moderated"' in item["frame"] for item in items if item.get("room"))


def test_a_banned_user_no_longer_finds_the_room_and_is_told_why(client, public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="ban")
    assert "lobby" not in [entry.room.slug for entry in selectors.rooms_for(bob)]
    client.force_login(bob)
    response = client.get(reverse("room_detail", args=["lobby"]))
    assert response.status_code == 403
    assert "You are banned from this room." in response.content.decode()


def test_an_archived_room_stays_listed_for_its_members_only(public_room, alice, carol):
    moderation.update_room_settings(actor=alice, room=public_room, archived=True)
    assert [entry.room.slug for entry in selectors.rooms_for(alice)] == ["lobby"]
    assert selectors.rooms_for(carol) == []


def test_lifting_what_is_not_there_is_harmless_and_unlogged(public_room, alice, bob):
    for action in ("unmute", "unban"):
        event = moderation.moderate(actor=alice, room=public_room, target=bob, action=action)
        assert event["action"] == action
    assert not AuditEntry.objects.exists()


def test_staff_deleting_someone_elses_message_is_logged_and_the_author_deleting_is_not(
    public_room, alice, bob, staff
):
    mine = post(public_room, bob, "mine")
    theirs = post(public_room, alice, "off topic")
    services.delete_message(user=bob, message_id=mine.pk)
    services.delete_message(user=staff, message_id=theirs.pk)
    (entry,) = AuditEntry.objects.all()
    assert (entry.actor_name, entry.action, entry.target_name, entry.details) == (
        staff.username,
        "delete_message",
        "alice",
        {"id": theirs.pk, "seq": theirs.seq},
    )
