"""Reactions: `react` toggles one user's emoji on a message, and the room sees it live."""

from __future__ import annotations

from typing import Any

import pytest

from rooms import moderation, protocol, services
from rooms.models import Reaction, Room


def post(room: Room, user: Any, body: str = "hello") -> Any:
    return services.post_message(author=user, room=room, body=body).message


def reactions_in_history(user: Any, room: Room) -> dict[str, list[str]]:
    (message,) = services.history(user=user, room=room).messages
    return message["reactions"]


def test_react_toggles_and_history_lists_who_reacted(public_room, alice, bob):
    message = post(public_room, alice)
    assert services.react(user=bob, message_id=message.pk, emoji="👍")["on"] is True
    services.react(user=alice, message_id=message.pk, emoji="👍")
    services.react(user=alice, message_id=message.pk, emoji="🇫🇷")
    assert reactions_in_history(bob, public_room) == {"👍": ["bob", "alice"], "🇫🇷": ["alice"]}
    event = services.react(user=bob, message_id=message.pk, emoji="👍")
    assert event == {
        "type": "reaction",
        "room": "lobby",
        "id": message.pk,
        "seq": message.seq,
        "emoji": "👍",
        "user": "bob",
        "on": False,
    }
    assert reactions_in_history(bob, public_room) == {"👍": ["alice"], "🇫🇷": ["alice"]}


@pytest.mark.parametrize("emoji", ["a", "👍👍", ":)", " ", "👨‍👩‍👧‍👦" * 2, "<b>"])
def test_a_reaction_is_one_emoji(public_room, alice, emoji):
    message = post(public_room, alice)
    with pytest.raises(services.NotAnEmoji):
        services.react(user=alice, message_id=message.pk, emoji=emoji)


def test_emoji_sequences_are_one_emoji(public_room, alice):
    message = post(public_room, alice)
    for emoji in ("👍🏽", "❤️", "👨‍👩‍👧", "1️⃣"):
        services.react(user=alice, message_id=message.pk, emoji=emoji)
    assert list(reactions_in_history(alice, public_room)) == ["👍🏽", "❤️", "👨‍👩‍👧", "1️⃣"]


def test_at_most_twenty_different_emoji_per_message(public_room, alice, bob):
    message = post(public_room, alice)
    faces = [chr(0x1F600 + n) for n in range(21)]
    for face in faces[:20]:
        services.react(user=alice, message_id=message.pk, emoji=face)
    with pytest.raises(services.Forbidden, match="20 different"):
        services.react(user=bob, message_id=message.pk, emoji=faces[20])
    # One of the twenty is still welcome.
    assert services.react(user=bob, message_id=message.pk, emoji=faces[0])["on"] is True


def test_who_may_react(public_room, private_room, alice, bob, carol):
    secret = post(private_room, alice)
    with pytest.raises(services.Forbidden):
        services.react(user=carol, message_id=secret.pk, emoji="👀")
    lobby = post(public_room, alice)
    with pytest.raises(services.Forbidden):  # a public room: join it first
        services.react(user=carol, message_id=lobby.pk, emoji="👀")
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    with pytest.raises(services.Muted):
        services.react(user=bob, message_id=lobby.pk, emoji="👀")
    services.delete_message(user=alice, message_id=lobby.pk)
    with pytest.raises(services.MessageNotFound):
        services.react(user=alice, message_id=lobby.pk, emoji="👀")
    assert not Reaction.objects.exists()


def test_a_message_of_many_reactions_stays_small(public_room, alice, django_user_model):
    message = post(public_room, alice)
    people = [django_user_model(username=f"fan{n}") for n in range(protocol.REACTORS_LISTED + 5)]
    django_user_model.objects.bulk_create(people)
    Reaction.objects.bulk_create(
        Reaction(message=message, user=person, emoji="🎉")
        for person in django_user_model.objects.filter(username__startswith="fan")
    )
    (payload,) = services.history(user=alice, room=public_room).messages
    assert len(payload["reactions"]["🎉"]) == protocol.REACTORS_LISTED
    assert payload["reaction_counts"] == {"🎉": protocol.REACTORS_LISTED + 5}


@pytest.mark.django_db(transaction=True)
async def test_a_reaction_reaches_every_tab_of_the_room(connect, public_room, alice, bob):
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="cake!")
    await b.send(type="react", id=ack["id"], emoji="🎂")
    for tab in (a, b):
        event = await tab.recv_type("reaction")
        assert (event["id"], event["emoji"], event["user"], event["on"]) == (
            ack["id"],
            "🎂",
            "bob",
            True,
        )
    refused = await b.request(type="react", id=ack["id"], emoji="cake")
    assert (refused["type"], refused["code"]) == ("error", "bad_frame")
    page = await a.request(type="history", room="lobby")
    assert page["messages"][-1]["reactions"] == {"🎂": ["bob"]}
