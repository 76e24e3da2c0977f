"""Replies: a message may answer another of its room, and shows the start of it."""

from __future__ import annotations

from typing import Any

import pytest

from rooms import fanout, services
from rooms.models import Room

# On PostgreSQL outside a transaction a message is stored by one statement of its own; inside
# one, by the portable path. Replies must work on both.
posting_paths = pytest.mark.parametrize(
    "path",
    [
        pytest.param("in a transaction", marks=pytest.mark.django_db),
        pytest.param("autocommit", marks=pytest.mark.django_db(transaction=True)),
    ],
)


def post(room: Room, user: Any, body: str, **extra: Any) -> Any:
    return services.post_message(author=user, room=room, body=body, **extra).message


@posting_paths
def test_a_reply_carries_the_start_of_the_message_it_answers(
    path, public_room, alice, bob, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[Any] = []
    monkeypatch.setattr(fanout, "publish", lambda items: sent.append(items))
    question = post(public_room, alice, "Who brings the cake? " + "x" * 200)
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(public_room, bob, "I do", reply_to=question.pk)
    expected = {
        "id": question.pk,
        "seq": 1,
        "author": "alice",
        "excerpt": ("Who brings the cake? " + "x" * 200)[:140],
    }
    assert f'"reply_to":{{"id":{question.pk}' in sent[-1][0]["frame"]
    page = services.history(user=bob, room=public_room)
    (listed,) = [m for m in page.messages if m["id"] == answer.pk]
    assert listed["reply_to"] == expected
    assert "reply_to" not in page.messages[0]  # the question itself answers nothing


def test_a_reply_to_a_deleted_message_shows_no_excerpt(public_room, alice, bob):
    question = post(public_room, alice, "regrettable")
    answer = post(public_room, bob, "indeed", reply_to=question.pk)
    services.delete_message(user=alice, message_id=question.pk)
    page = services.history(user=bob, room=public_room)
    (listed,) = [m for m in page.messages if m["id"] == answer.pk]
    assert listed["reply_to"]["excerpt"] == "" and listed["reply_to"]["id"] == question.pk


@posting_paths
def test_a_reply_to_a_message_of_another_room_is_not_found_and_stores_nothing(
    path, public_room, private_room, alice
):
    elsewhere = post(private_room, alice, "in secret")
    with pytest.raises(services.MessageNotFound):
        post(public_room, alice, "hi", reply_to=elsewhere.pk)
    with pytest.raises(services.MessageNotFound):
        post(public_room, alice, "hi", reply_to=10**12)
    public_room.refresh_from_db()
    assert public_room.last_seq == 0


@pytest.mark.django_db(transaction=True)
async def test_replies_over_the_socket_in_a_room_and_in_a_direct_message(
    connect, public_room, alice, bob
):
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="lunch at noon?")
    await b.request(type="send", room="lobby", body="yes", reply_to=ack["id"])
    event = await a.recv_type("message", room="lobby")
    while event["message"]["body"] != "yes":
        event = await a.recv_type("message", room="lobby")
    assert event["message"]["reply_to"] == {
        "id": ack["id"],
        "seq": ack["seq"],
        "author": "alice",
        "excerpt": "lunch at noon?",
    }
    refused = await b.request(type="send", room="lobby", body="?", reply_to=-1)
    assert refused["type"] == "error" and refused["code"] == "not_found"
    refused = await b.request(type="send", room="lobby", body="?", reply_to="1")
    assert refused["code"] == "bad_frame"
    first = await a.request(type="direct", to="bob", body="psst")
    await b.request(type="direct", to="alice", body="what?", reply_to=first["id"])
    answer = await a.recv_type("message", room=first["room"])
    while answer["message"]["body"] != "what?":
        answer = await a.recv_type("message", room=first["room"])
    assert answer["message"]["reply_to"]["excerpt"] == "psst"
