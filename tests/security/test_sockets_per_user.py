"""Contract §4: at most 32 open sockets per user across all workers; the next gets 4029.

Two workers on Redis: the count is one per user for the whole site, not per worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from tests.contract.conftest import Person, Site
from tests.wsclient import connect

pytestmark = pytest.mark.redis

LIMIT = 32


async def raw_tab(person: Person, base: str) -> Any:
    """A tab's socket as it opens, before any frame."""
    return await connect("ws" + base.removeprefix("http"), person.account.cookie, base)


async def refused_before_hello(sock: Any) -> int:
    """The close code of a socket closed before its first frame (fails on any frame)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        frame = await asyncio.wait_for(sock.recv(), 10)
        pytest.fail(f"a frame before the close: {frame[:200]}")
    return closed.value.rcvd.code if closed.value.rcvd else 1006


async def test_the_33rd_socket_of_a_user_is_refused_with_4029_on_any_worker(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    # 32 tabs, half on each worker, all greeted.
    tabs = [await alice.tab(1 + n % 2) for n in range(LIMIT)]
    assert all(tab.hello is not None for tab in tabs)

    for worker in (1, 2):
        # Accepted, then closed before `hello`: no frame at all, and the code says why.
        sock = await raw_tab(alice, chat.urls[worker - 1])
        assert await refused_before_hello(sock) == 4029

    # Another user is not affected.
    other = await bob.tab(2)
    assert (await other.request(type="ping"))["type"] == "pong"

    # Closing one tab makes room for one more, at once.
    await tabs.pop().close()
    await asyncio.sleep(0.5)
    again = await alice.tab(1)
    assert (await again.request(type="ping"))["type"] == "pong"
    sock = await raw_tab(alice, chat.urls[1])
    assert await refused_before_hello(sock) == 4029
