"""The HTTP fallback through nginx (contract §5, deploy/nginx.conf): the stream passes unbuffered
and stays open; its POSTs are balanced over every worker, whichever holds the stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.streamclient import StreamTab
from tests.wsclient import Account

from .conftest import WORKERS

pytestmark = pytest.mark.nginx


async def test_a_stream_through_nginx_chats_with_a_socket_its_posts_taken_by_any_worker(
    live_cluster,
):
    url = live_cluster.config.url
    tag = str(time.time_ns())[-8:]
    alice, bob = await asyncio.gather(
        asyncio.to_thread(Account.sign_up, url, f"alice-s{tag}"),
        asyncio.to_thread(Account.sign_up, url, f"bob-s{tag}"),
    )
    room = f"fallback-{tag}"
    await asyncio.to_thread(alice.create_room, "Fallback", room)

    started = time.monotonic()
    stream = await StreamTab.connect(alice, url)
    await stream.wait_for_hello()
    # Unbuffered: hello comes at once, not when a proxy buffer fills.
    assert time.monotonic() - started < 3
    assert stream.upstream, "nginx names the worker holding the stream"
    sock = await bob.open_socket()
    try:
        assert (await sock.request(type="join", room=room))["type"] == "joined"
        for n in range(3 * WORKERS):
            assert (await stream.request(type="send", room=room, body=f"s{n}"))["type"] == "ack"
        got = [
            (await sock.wait_for(lambda f: f["type"] == "message"))["message"]["body"]
            for _ in range(3 * WORKERS)
        ]
        assert got == [f"s{n}" for n in range(3 * WORKERS)]
        # No stickiness: other workers than the stream's took some of its POSTs.
        assert set(stream.post_upstreams) - {stream.upstream}, stream.post_upstreams

        await sock.request(type="send", room=room, body="to the stream")
        message = await stream.wait_for(
            lambda f: f["type"] == "message" and f["message"]["body"] == "to the stream"
        )
        assert message["message"]["author"] == bob.username

        # An idle stream stays open through nginx: comments keep it alive.
        comments = stream.events.comments
        async with asyncio.timeout(16):
            while stream.events.comments == comments:
                await stream.collect(1)
        assert (await stream.request(type="ping"))["type"] == "pong"
    finally:
        await sock.close()
        await stream.close()
