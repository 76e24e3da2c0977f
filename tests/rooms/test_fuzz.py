"""Random frames never crash a worker, always get an answer, and never lose or double a message."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms import fanout
from tests.rooms.conftest import ORIGIN, Tab, session_cookie

KNOWN_CODES = {
    "bad_json",
    "bad_frame",
    "unknown_type",
    "empty",
    "too_long",
    "not_found",
    "forbidden",
    "rate_limited",
}
# Frame types whose success has a reply of its own (typing, edit and delete answer only errors).
REPLYING = {"join", "leave", "send", "history", "read", "direct", "ping"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = (
    json_values
    | st.sampled_from(["lobby", "secret", "nowhere", "bob", "alice", ""])
    | st.integers(min_value=-5, max_value=10**12)
    | st.text(min_size=3990, max_size=4010, alphabet="xé😀 ")
)
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(REPLYING | {"typing", "edit", "delete", "nonsense"}))},
    optional={
        "room": field_values,
        "body": st.text(max_size=50) | field_values,
        "to": field_values,
        "id": field_values,
        "seq": field_values,
        "before": field_values,
        "after": field_values,
        "limit": field_values,
    },
)
frames = st.one_of(
    typed_frames,
    json_values,
    st.text(max_size=40),  # mostly not JSON at all
    st.just('{"type": "send", "room": "lobby", "body": Infinity}'),  # JSON's non-numbers
)


async def exchange(user: Any, cookie: bytes, raw_frames: list[Any]) -> Exchange:
    """Send the frames (objects with refs), then a ping; then read back the history of every
    room something was acked in."""
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    hub = await fanout.Hub.get()
    comm = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", ORIGIN), (b"cookie", cookie)]
    )
    result = Exchange()
    try:
        connected, _ = await comm.connect(timeout=5)
        assert connected
        tab = Tab(comm, user.username)
        await tab.recv()  # hello
        for n, frame in enumerate(raw_frames):
            if isinstance(frame, dict):
                ref = frame.get("ref") if isinstance(frame.get("ref"), str) else f"f{n}"
                frame = {**frame, "ref": ref}
                kind = frame.get("type")
                result.expected.append((ref, kind if isinstance(kind, str) else ""))
                await tab.send_raw(json.dumps(frame))
            else:
                result.refless += 1
                await tab.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
        pong = await tab.request(type="ping", ref="final")
        assert pong == {"type": "pong", "ref": "final"}
        result.received = tab.mailbox
        tab.mailbox = []
        acked: dict[str, list[int]] = {}
        for frame in result.received:
            if frame["type"] == "ack":
                acked.setdefault(frame["room"], []).append(frame["seq"])
        for room, seqs in acked.items():
            # Only this socket writes: one page after the first acked seq holds all of them.
            page = await tab.request(type="history", room=room, after=min(seqs) - 1, limit=100)
            result.history[room] = page["messages"]
        return result
    finally:
        await comm.disconnect()
        await hub.stop()


@dataclass
class Exchange:
    received: list[dict] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)  # (ref, frame type)
    refless: int = 0  # frames that are not JSON objects: their errors cannot carry a ref
    history: dict[str, list[dict]] = field(default_factory=dict)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_get_answers_and_acked_messages_are_stored_once(
    batch, chat_layer, alice, bob, public_room, private_room, settings
):
    # Examples share one user: the rate limit is tested elsewhere and must not mask acks here.
    settings.CHAT = {**settings.CHAT, "RATE_BURST": 10**6}
    # A valid send at the end, sent twice with one ref as a client retrying would, so every
    # example has an ack to check and a retry that must not store a second message.
    retry = {"type": "send", "room": "lobby", "body": "ok", "ref": "retry"}
    batch = [*batch, retry, retry]
    result = asyncio.run(exchange(alice, session_cookie(alice), batch))
    received = result.received

    errors = [f for f in received if f["type"] == "error"]
    for error in errors:
        assert error["code"] in KNOWN_CODES, error
        assert isinstance(error["detail"], str) and error["detail"]
    assert len([e for e in errors if "ref" not in e]) == result.refless
    replies = {f.get("ref") for f in received if f["type"] != "message"}
    for ref, kind in result.expected:
        if kind not in {"typing", "edit", "delete"}:
            assert ref in replies, f"no answer to {ref} ({kind})"

    acks = [f for f in received if f["type"] == "ack"]
    retried = [a for a in acks if a["ref"] == "retry"]
    assert len(retried) == 2 and retried[0]["id"] == retried[1]["id"], retried
    for ack in acks:
        in_history = [m for m in result.history[ack["room"]] if m["id"] == ack["id"]]
        assert len(in_history) == 1, f"acked {ack} is in history {len(in_history)} times"
        assert (in_history[0]["seq"], in_history[0]["ref"]) == (ack["seq"], ack["ref"])
    for room, messages in result.history.items():
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{room}: gaps in {seqs}"
