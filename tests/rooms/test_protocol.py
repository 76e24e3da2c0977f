"""The wire format lives in rooms/protocol.py: every frame the server sends has the shape of its
builder there, and no other module writes a frame by hand."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rooms import protocol

ROOMS = Path(protocol.__file__).parent
# Messages of the ASGI server and of the channel layer, not frames of the chat.
NOT_FRAMES = {
    "websocket.send",
    "hub.deliver",
    "hub.wake",
    "health.check",
    "stream.post",
    "stream.answer",
}

_message = SimpleNamespace(pk=1, seq=1, created_at=datetime.datetime.now(datetime.UTC))
_payload = {"id": 1, "seq": 1}
# One sample of every server frame, from its builder.
BUILT = [
    protocol.hello("alice", []),
    protocol.joined({}, [], [], member_count=0, roles={}, you={}),
    protocol.room_removed("lobby"),
    protocol.room_updated({}),
    protocol.moderated("lobby", "bob", "mute", "alice"),
    protocol.invited("lobby", "bob"),
    protocol.reaction("lobby", _message, "👍", "bob", on=True),  # type: ignore[arg-type]
    protocol.left("lobby"),
    protocol.room_added({}),
    protocol.presence("lobby", "alice", "online"),
    protocol.typing("lobby", "alice"),
    protocol.ack("lobby", _message),  # type: ignore[arg-type]
    protocol.message("lobby", _payload),
    protocol.message_changed("message_edited", "lobby", _payload),
    protocol.message_changed("message_deleted", "lobby", _payload),
    protocol.history(protocol.HistoryPage("lobby", [], False)),
    protocol.pong(),
    {**protocol.unread_payload(SimpleNamespace(slug="lobby", last_seq=0), 0)},  # type: ignore[arg-type]
    protocol.error("bad_frame", "detail"),
]
SHAPES = {frame["type"]: set(frame) for frame in BUILT}
# Keys a builder adds only sometimes, and the `ref` every reply may echo.
OPTIONAL = {
    "joined": {"member_count"},
    "moderated": {"until", "role"},
    "error": {"until", "retry_after"},
}


def test_no_module_but_protocol_writes_a_frame_by_hand() -> None:
    written = []
    for path in sorted(ROOMS.glob("*.py")):
        if path.name == "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                is_type = isinstance(key, ast.Constant) and key.value == "type"
                if is_type and not (isinstance(value, ast.Constant) and value.value in NOT_FRAMES):
                    written.append(f"{path.name}:{node.lineno}")
    assert written == [], f"frames written outside rooms/protocol.py: {written}"


@pytest.mark.django_db(transaction=True)
async def test_every_frame_of_a_conversation_has_its_builders_shape(
    connect, alice, bob, public_room
) -> None:
    a = await connect(alice)
    b = await connect(bob)
    seen = [a.hello, b.hello]
    seen.append(await b.request(type="ping"))
    seen.append(await b.request(type="join", room="lobby"))
    ack = await a.request(type="send", room="lobby", body="hello", ref="s1")
    seen += [ack, await b.recv_type("message")]
    await a.send(type="typing", room="lobby")
    seen.append(await b.recv_type("typing"))
    await a.send(type="edit", id=ack["id"], body="hello again")
    seen.append(await b.recv_type("message_edited"))
    await a.send(type="delete", id=ack["id"])
    seen.append(await b.recv_type("message_deleted"))
    second = await a.request(type="send", room="lobby", body="react to me")
    await b.send(type="react", id=second["id"], emoji="👍")
    seen.append(await a.recv_type("reaction"))
    seen.append(await b.request(type="history", room="lobby"))
    seen.append(await b.request(type="read", room="lobby", seq=1))
    seen.append(await b.request(type="nope"))
    await a.request(type="direct", to="bob", body="psst")
    seen.append(await b.recv_type("room_added"))
    seen.append(await a.request(type="moderate", room="lobby", user="bob", action="mute"))
    seen.append(await b.recv_type("moderated"))
    seen.append(await b.request(type="send", room="lobby", body="muted?"))
    seen.append(await a.request(type="room_settings", room="lobby", topic="New topic"))
    seen.append(await b.recv_type("room_updated"))
    seen.append(await a.request(type="moderate", room="lobby", user="bob", action="promote"))
    seen.append(await b.request(type="leave", room="lobby"))
    seen.append(await a.recv_type("presence"))
    seen.append(await a.request(type="invite", room="lobby", user="bob"))
    await a.request(type="moderate", room="lobby", user="bob", action="kick")
    seen.append(await b.recv_type("room_removed"))

    assert {frame["type"] for frame in seen} == set(SHAPES)
    for frame in seen:
        keys: set[Any] = set(frame) - {"ref"}
        expected = SHAPES[frame["type"]]
        assert expected <= keys <= expected | OPTIONAL.get(frame["type"], set()), frame
