"""The hostile signed-in user against real workers: one worker of its own, or two on Redis.

Single workers come from tests/servers.py (`sqlite_worker`, whose PID tells its memory); `chat`
is a site of two workers on the shared database and Redis of tests/contract.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets

from tests.contract.conftest import Backing, Site, backing, running_site  # noqa: F401
from tests.wsclient import Account

MIB = 1024 * 1024
# A body of 4,000 four-byte characters: 16,000 bytes of UTF-8, the largest message there is.
EMOJI_BODY = "😀" * 4000


@pytest.fixture(scope="module")
def chat(backing: Backing) -> Iterator[Site]:  # noqa: F811
    """Two workers with the contract's default limits, for the whole module."""
    with running_site(backing) as running:
        yield running


@pytest.fixture(autouse=True)
async def _close_tabs(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "chat" in request.fixturenames:
        await request.getfixturevalue("chat").close_sockets()


async def stalled_socket(account: Account, base: str | None = None) -> Any:
    """A tab whose client reads nothing it is not asked to: a receive buffer of a few KiB and
    a websockets queue of one frame, so what the server sends piles up on the server's side."""
    base = (base or account.base).rstrip("/")
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return await websockets.connect(
        f"ws://{host}:{port}/ws/chat/",
        sock=sock,
        additional_headers={"Cookie": account.cookie, "Origin": base},
        max_queue=1,
        max_size=None,
        ping_interval=None,
        open_timeout=10,
    )


async def close_code(ws: Any, timeout: float = 30) -> int:
    """Read until the server closes; its close code (1006 if it sent none)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006
