"""WebSocket test helpers: a real channel layer (in-process or Redis), signed-in communicators."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from rooms import fanout

ORIGIN = b"http://127.0.0.1:8000"


@pytest.fixture(params=["memory", "redis"])
def chat_layer(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run the test on the in-process layer and on a real Redis layer (the default, pub/sub)
    with its own prefix."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        settings.REDIS_URL = url
        settings.REDIS_KEY_PREFIX = prefix
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [{"address": url, "socket_timeout": None}], "prefix": prefix},
            }
        }
    else:
        settings.REDIS_URL = ""
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels.layers.InMemoryChannelLayer",
                "CONFIG": {"capacity": 20000},
            }
        }
    return str(request.param)


@pytest.fixture
async def hub(chat_layer: str, settings: Any) -> AsyncIterator[fanout.Hub]:
    """This test's worker hub; stopped, and its Redis keys removed, afterwards."""
    hub = await fanout.Hub.get()
    yield hub
    await hub.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_forget_layer_and_keys(chat_layer, settings.REDIS_KEY_PREFIX), 10)


async def _forget_layer_and_keys(chat_layer: str, prefix: str) -> None:
    layer = channel_layers["default"]
    await layer.flush()
    if chat_layer == "redis":
        from rooms import redis as shared_redis

        client = shared_redis.client()
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await layer.close_pools()


class Tab:
    """One browser tab's socket: a communicator with a mailbox of JSON frames.

    `recv_type` and `request` pick the frame they want and keep the others in the mailbox,
    so a test reads events in whatever order the server happens to send them.
    """

    def __init__(self, comm: WebsocketCommunicator, username: str) -> None:
        self.comm = comm
        self.username = username
        self.mailbox: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        # Straight to the application: the communicator refuses empty frames, clients do not.
        await self.comm.send_input({"type": "websocket.receive", "text": text})

    async def output(self, timeout: float = 3) -> dict[str, Any]:
        """The next ASGI message the server sent. (Unlike the communicator's own receive, a
        timeout here does not cancel the application.)"""
        if self.comm.future.done():
            self.comm.future.result()
        return await asyncio.wait_for(self.comm.output_queue.get(), timeout)

    async def _next(self, timeout: float) -> dict[str, Any]:
        output = await self.output(timeout)
        assert output["type"] == "websocket.send", f"{self.username}: socket closed: {output}"
        return json.loads(output["text"])

    async def recv(self, timeout: float = 3) -> dict[str, Any]:
        if self.mailbox:
            return self.mailbox.pop(0)
        return await self._next(timeout)

    async def close_code(self, timeout: float = 3) -> int:
        """Skip frames until the server closes the socket; its close code."""
        while True:
            output = await self.output(timeout)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))

    async def wait_for(
        self, accept: Callable[[dict[str, Any]], bool], what: str, timeout: float = 3
    ) -> dict[str, Any]:
        for n, frame in enumerate(self.mailbox):
            if accept(frame):
                return self.mailbox.pop(n)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.username}: no {what} within {timeout}s")
            try:
                frame = await self._next(left)
            except TimeoutError:
                raise AssertionError(f"{self.username}: no {what} within {timeout}s") from None
            if accept(frame):
                return frame
            self.mailbox.append(frame)

    async def recv_type(self, kind: str, timeout: float = 3, **match: Any) -> dict[str, Any]:
        """The first frame of this type (and these field values)."""
        return await self.wait_for(
            lambda f: f["type"] == kind and all(f.get(k) == v for k, v in match.items()),
            f"{kind!r} frame {match or ''}",
            timeout,
        )

    async def request(self, **frame: Any) -> dict[str, Any]:
        """Send a frame with a fresh ref and return the reply that echoes it."""
        ref = frame.setdefault("ref", uuid.uuid4().hex[:12])
        await self.send(**frame)
        return await self.wait_for(
            lambda f: f.get("ref") == ref and f["type"] != "message", f"reply to {frame}"
        )

    async def frames(self, settle: float = 0.3) -> list[dict[str, Any]]:
        """The mailbox and everything that arrives until the socket is quiet for `settle` s."""
        got, self.mailbox = self.mailbox, []
        while True:
            try:
                got.append(await self._next(settle))
            except TimeoutError:
                return got

    async def nothing(self, settle: float = 0.3) -> None:
        frames = await self.frames(settle)
        assert frames == [], f"{self.username} received {frames}"

    async def close(self) -> None:
        # The server may have closed the socket already (4403, 4009…): nothing left to do.
        with contextlib.suppress(BaseException):
            await self.comm.disconnect()


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
async def connect(hub: fanout.Hub) -> AsyncIterator[Callable[..., Awaitable[Tab]]]:
    """Open a signed-in tab for a user; returns the tab after reading `hello` into tab.hello."""
    from chatsite.asgi import application

    tabs: list[Tab] = []

    async def open_tab(user: Any, *, origin: bytes = ORIGIN, read_hello: bool = True) -> Tab:
        cookie = await sync_to_async(session_cookie)(user)
        comm = WebsocketCommunicator(
            application, "/ws/chat/", headers=[(b"origin", origin), (b"cookie", cookie)]
        )
        connected, code = await comm.connect(timeout=5)
        tab = Tab(comm, user.username)
        tab.connected, tab.code = connected, code  # type: ignore[attr-defined]
        tabs.append(tab)
        if connected and read_hello:
            tab.hello = await tab.recv()  # type: ignore[attr-defined]
        return tab

    yield open_tab
    for tab in tabs:
        await tab.close()
