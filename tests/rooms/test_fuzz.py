"""Random frames never crash a worker, always get an answer, and never lose or double a message."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms import fanout
from rooms.models import Message
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


async def exchange(
    user: Any, cookie: bytes, raw_frames: list[Any]
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Send the frames with refs, then a ping; return what came back and the refs expected."""
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    hub = await fanout.Hub.get()
    comm = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", ORIGIN), (b"cookie", cookie)]
    )
    try:
        connected, _ = await comm.connect(timeout=5)
        assert connected
        tab = Tab(comm, user.username)
        await tab.recv()  # hello
        expected: list[tuple[str, str]] = []
        for n, frame in enumerate(raw_frames):
            if isinstance(frame, dict):
                frame = {**frame, "ref": f"f{n}"}
                kind = frame.get("type")
                expected.append((f"f{n}", kind if isinstance(kind, str) else ""))
                await tab.send_raw(json.dumps(frame))
            else:
                await tab.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
        pong = await tab.request(type="ping", ref="final")
        assert pong == {"type": "pong", "ref": "final"}
        return tab.mailbox, expected
    finally:
        await comm.disconnect()
        await hub.stop()


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_get_answers_and_acked_messages_are_stored_once(
    batch, alice, bob, public_room, private_room, settings
):
    # Examples share one user: the rate limit is tested elsewhere and must not mask acks here.
    settings.CHAT = {**settings.CHAT, "RATE_BURST": 10**6}
    # A valid send at the end, so every example has an ack to check.
    batch = [*batch, {"type": "send", "room": "lobby", "body": "ok"}]
    received, expected = asyncio.run(exchange(alice, session_cookie(alice), batch))

    errors = [f for f in received if f["type"] == "error"]
    for error in errors:
        assert error["code"] in KNOWN_CODES, error
        assert isinstance(error["detail"], str) and error["detail"]
    replies = {f.get("ref") for f in received if f["type"] != "message"}
    for ref, kind in expected:
        if kind in REPLYING or kind not in {"typing", "edit", "delete"}:
            assert ref in replies, f"no answer to {ref} ({kind})"

    acks = [f for f in received if f["type"] == "ack"]
    assert acks, "the valid send was not acked"
    stored = async_to_sync(_count_ids)([a["id"] for a in acks])
    for ack in acks:
        assert stored[ack["id"]] == 1


async def _count_ids(ids: list[int]) -> dict[int, int]:
    from asgiref.sync import sync_to_async

    def count() -> dict[int, int]:
        rows = Message.objects.filter(pk__in=ids).values_list("pk", "seq", "room__slug")
        return {pk: sum(1 for p, _, _ in rows if p == pk) for pk in ids}

    return await sync_to_async(count)()
