"""Mentions: `@username` marks a message for a member of the room, `@room` (owners, moderators
and staff) for every member; each member's unread mentions are counted apart from the rest."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.forms import SignupForm
from rooms import mentions, moderation, selectors, services
from rooms.models import Membership, Mention, Room


def post(room: Room, user: Any, body: str) -> Any:
    return services.post_message(author=user, room=room, body=body).message


def mentions_in_history(user: Any, room: Room) -> list[list[str]]:
    return [m["mentions"] for m in services.history(user=user, room=room).messages]


def unread_mentions(user: Any) -> dict[str, int]:
    return {m.room.slug: m.unread_mentions for m in selectors.memberships_of(user)}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("hi @bob", ["bob"]),
        ("@bob, @carol and @bob again", ["bob", "carol"]),
        ("thanks @bob.", ["bob.", "bob"]),
        ("mail alice@example.com", []),
        ("@@bob @", []),
        ("(@Bob)", ["Bob"]),
        ("@room!", ["room"]),
    ],
)
def test_names_written_after_an_at_sign(body, names):
    assert mentions.written_names(body) == names


def test_a_body_names_at_most_twenty():
    body = " ".join(f"@user{n}" for n in range(50))
    assert mentions.written_names(body) == [f"user{n}" for n in range(20)]


def test_a_mention_names_members_only(public_room, alice, bob, carol):
    message = post(public_room, alice, "@Bob and @carol, and @nobody, and me @alice")
    # carol is not a member of #lobby; the author's own name marks nothing.
    assert mentions_in_history(bob, public_room) == [["bob"]]
    assert list(Mention.objects.values_list("message_id", "user__username")) == [
        (message.pk, "bob")
    ]


def test_unread_mentions_count_until_read(public_room, alice, bob):
    post(public_room, alice, "hello")
    second = post(public_room, alice, "@bob look")
    post(public_room, alice, "and @bob again")
    assert unread_mentions(bob) == {"lobby": 2}
    assert unread_mentions(alice) == {"lobby": 0}
    event = services.mark_read(user=bob, room=public_room, seq=second.seq)
    assert (event["count"], event["mentions"]) == (1, 1)
    event = services.mark_read(user=bob, room=public_room, seq=99)
    assert (event["count"], event["mentions"]) == (0, 0)
    assert unread_mentions(bob) == {"lobby": 0}


def test_at_room_by_owners_and_moderators_only(public_room, alice, bob, carol):
    services.join_room(user=carol, room=public_room)
    post(public_room, bob, "@room lunch?")  # bob is a plain member: no mention
    assert unread_mentions(carol) == {"lobby": 0}
    post(public_room, alice, "@room standup")  # alice owns the room
    assert unread_mentions(carol) == {"lobby": 1}
    assert unread_mentions(bob) == {"lobby": 1}
    assert unread_mentions(alice) == {"lobby": 0}
    moderation.moderate(actor=alice, room=public_room, target=bob, action="promote")
    post(public_room, bob, "@room now")
    assert unread_mentions(carol) == {"lobby": 2}
    assert mentions_in_history(carol, public_room)[-3:] == [[], ["room"], ["room"]]


def test_staff_may_mention_the_room(public_room, alice, staff):
    services.join_room(user=staff, room=public_room)
    post(public_room, staff, "@room maintenance at noon")
    assert unread_mentions(alice) == {"lobby": 1}


def test_edits_and_deletions_change_mentions(public_room, alice, bob):
    message = post(public_room, alice, "hello")
    edited = services.edit_message(user=alice, message_id=message.pk, body="hello @bob")
    assert mentions_in_history(bob, public_room) == [["bob"]]
    assert unread_mentions(bob) == {"lobby": 1}
    assert edited.mentions.count() == 1
    services.delete_message(user=alice, message_id=message.pk)
    assert mentions_in_history(bob, public_room) == [[]]
    assert unread_mentions(bob) == {"lobby": 0}


def test_room_wide_mentions_cost_no_row_per_member(public_room, alice, django_user_model):
    people = django_user_model.objects.bulk_create(
        django_user_model(username=f"member{n}") for n in range(50)
    )
    Membership.objects.bulk_create(Membership(user=p, room=public_room) for p in people)
    post(public_room, alice, "@room hello all")
    assert not Mention.objects.exists()
    assert unread_mentions(people[0]) == {"lobby": 1}


@pytest.mark.parametrize("name", ["room", "Room", "ROOM"])
def test_nobody_may_be_called_room(db, name):
    form = SignupForm(data={"username": name, "password1": "x7!Kp2#qZ", "password2": "x7!Kp2#qZ"})
    assert not form.is_valid()
    assert "reserved" in form.errors["username"][0]


@pytest.mark.django_db(transaction=True)
async def test_a_mention_reaches_the_room_and_counts_on_the_next_connection(
    connect, public_room, alice, bob
):
    b = await connect(bob)
    a = await connect(alice)
    ack = await a.request(type="send", room="lobby", body="ping @bob")
    message = await b.recv_type("message")
    assert message["message"]["mentions"] == ["bob"]
    await b.close()
    b = await connect(bob, read_hello=False)
    hello = await b.recv_type("hello")
    (lobby,) = hello["rooms"]
    assert (lobby["unread"], lobby["mentions"]) == (1, 1)
    unread = await b.request(type="read", room="lobby", seq=ack["seq"])
    assert (unread["type"], unread["mentions"]) == ("unread", 0)
