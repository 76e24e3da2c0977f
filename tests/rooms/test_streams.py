"""The HTTP fallback on the embedded defaults (`make run`: one worker, SQLite, the in-process
channel layer), and how a POST body becomes frames."""

from __future__ import annotations

import asyncio
import json

import pytest

from rooms.streams import BadBatch, split
from tests.servers import sqlite_worker
from tests.streamclient import StreamTab
from tests.wsclient import Account


def test_a_json_array_is_a_batch_anything_else_one_frame() -> None:
    assert split(b'{"type": "ping"}') == ['{"type": "ping"}']
    assert split(b'[{"type":"ping","ref":"a"},{"type":"ping"}]') == [
        '{"type":"ping","ref":"a"}',
        '{"type":"ping"}',
    ]
    assert split(b"[]") == []
    # Not JSON, or not an array: one frame, judged by the session as any frame is.
    assert split(b"{oops") == ["{oops"]
    assert split(b'"ping"') == ['"ping"']
    assert split(b"\xff{") == ["\ufffd{"]
    with pytest.raises(BadBatch):
        split(json.dumps([{"type": "ping"}] * 51).encode())


def test_a_frame_over_64_kib_in_a_batch_is_not_carried() -> None:
    big = {"type": "send", "room": "r", "body": "é" * 33_000}  # 66,000 bytes
    frames = split(json.dumps([{"type": "ping"}, big, {"type": "ping"}]).encode())
    assert frames[0] == '{"type":"ping"}' and frames[2] == '{"type":"ping"}'
    assert frames[1] is None  # the stream closes with 4009 when its turn comes


def test_two_people_chat_over_streams_on_one_worker_with_the_in_process_layer() -> None:
    with sqlite_worker() as site:

        async def scenario() -> None:
            alice = Account.sign_up(site.base, "alice")
            bob = Account.sign_up(site.base, "bob")
            alice.create_room("Lobby", "lobby")
            a = await StreamTab.connect(alice, site.base)
            b = await StreamTab.connect(bob, site.base)
            await a.wait_for_hello()
            await b.wait_for_hello()
            assert (await b.request(type="join", room="lobby"))["type"] == "joined"
            ack = await a.request(type="send", room="lobby", body="hello bob", ref="x1")
            assert (ack["type"], ack["seq"]) == ("ack", 1)
            got = await b.wait_for(lambda f: f["type"] == "message")
            assert got["message"]["body"] == "hello bob"
            await a.send(type="typing", room="lobby")
            typing = await b.wait_for(lambda f: f["type"] == "typing")
            assert typing == {"type": "typing", "room": "lobby", "user": "alice"}
            # Another user's stream: 403.
            assert (await b.post(b'{"type": "ping"}', stream_id=a.stream_id))[0] == 403
            await a.close()
            await b.close()

        asyncio.run(scenario())
