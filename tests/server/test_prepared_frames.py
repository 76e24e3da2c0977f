"""Frames built once for many sockets (chatsite/server/prepared_frames.py) are the frames a
WebSocket client expects, and a room's broadcasts written that way reach every tab whole and in
order."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatsite.server.prepared_frames import socket_behind, wire
from rooms.sockets import Broadcast
from tests.servers import fresh_worker
from tests.wsclient import Account, Socket


def _parse(wire: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_prepared_frame_is_one_unmasked_text_frame_of_the_utf8_payload(length):
    # `length` bytes of UTF-8, mostly two-byte characters: the header counts bytes, not characters.
    text = "é" * (length // 2) + "x" * (length % 2)
    assert len(text.encode()) == length
    frame = _parse(wire(Broadcast(text)))
    assert (frame.opcode, frame.fin) == (Opcode.TEXT, True)
    assert frame.data.decode() == text


def test_only_a_daphne_socket_takes_the_direct_path():
    async def send(message):
        raise AssertionError("not called")

    assert socket_behind(send) is None
    assert socket_behind(partial(send, object())) is None


# Short and long bodies, multi-byte ones included: the frame header counts bytes.
BODIES = ["a", "é" * 20, "ü" * 40, "☃" * 30, "x" * 3990, "😀" * 3990]


def test_broadcasts_reach_every_tab_whole_and_in_order():
    with fresh_worker(CHATSITE_RATE_BURST="1000") as port:
        base = f"http://127.0.0.1:{port}"
        alice = Account.sign_up(base, "alice")
        alice.create_room("Lobby", "lobby")
        asyncio.run(_scenario(f"ws://127.0.0.1:{port}", base, alice))


async def _scenario(url: str, base: str, alice: Account) -> None:
    tabs = [await Socket.open(url, alice.cookie, base) for _ in range(3)]
    for tab in tabs:
        await tab.wait_for_hello()
    writer = tabs[0]
    sent = [f"{n} {body}" for n in range(5) for body in BODIES]
    for body in sent:
        assert (await writer.request(type="send", room="lobby", body=body))["type"] == "ack"
    for tab in tabs:
        got = [(await tab.wait_for(_is_message))["message"]["body"] for _ in sent]
        assert got == sent
        await tab.close()


def _is_message(frame: dict) -> bool:
    return frame["type"] == "message"
