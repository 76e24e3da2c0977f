"""Frame predicates and assertions shared by the contract tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.wsclient import Frame, Socket


def frames_about(frames: list[Frame], room: str) -> list[Frame]:
    """The frames concerning one room (`room` is a slug, or a room object in `room_added`)."""
    return [
        f
        for f in frames
        if f.get("room") == room or (isinstance(f.get("room"), dict) and f["room"]["slug"] == room)
    ]


def is_(kind: str, room: str | None = None) -> Callable[[Frame], bool]:
    """A wait_for predicate: a frame of this type (about this room)."""

    def accept(frame: Frame) -> bool:
        return frame["type"] == kind and (room is None or frames_about([frame], room) != [])

    return accept


async def quiet(*tabs: Socket, seconds: float = 0.3) -> list[list[Frame]]:
    """What each tab received until it fell quiet (see Socket.settle)."""
    return list(await asyncio.gather(*(tab.settle(seconds) for tab in tabs)))


async def assert_nothing_about(room: str, *tabs: Socket) -> None:
    """None of these tabs receives anything about the room (once every one has fallen quiet)."""
    for n, frames in enumerate(await quiet(*tabs)):
        assert frames_about(frames, room) == [], f"tab {n} got unexpected frames about #{room}"


def assert_error(frame: Frame, code: str, ref: str | None = None) -> None:
    """{"type":"error","code":C,"detail":"…","ref":R}, the ref echoed when the frame had one."""
    expected = {"type": "error", "code": code, "detail": frame.get("detail")}
    if ref is not None:
        expected["ref"] = ref
    assert frame == expected
    assert isinstance(frame["detail"], str) and frame["detail"]


async def send(tab: Socket, room: str, body: str, ref: str | None = None) -> Frame:
    """`send` (with a fresh ref unless given), answered by its ack."""
    frame = {"type": "send", "room": room, "body": body}
    if ref is not None:
        frame["ref"] = ref
    reply = await tab.request(**frame)
    assert reply["type"] == "ack", reply
    return reply
