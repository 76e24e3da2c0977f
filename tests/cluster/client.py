"""A well-behaved chat client for the cluster tests: HTTP sign-up, then one WebSocket.

It does what the contract asks of a good client: it retries a `send` with the same `ref` until
acked, reconnects after any close but 4008/4403 with backoff and jitter, and on every
(re)connect resumes each room with `history` `after` the last `seq` it holds without a gap. Its
view of a room is keyed by `seq`, as a browser renders it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections import Counter
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.wsclient import Account, connect

NO_RECONNECT = {4008, 4403}
# Errors after which the same frame is simply sent again (the contract says retry is safe).
RETRY_CODES = {"rate_limited", "internal"}
REPLY_TIMEOUT = 5.0


class Disconnected(ConnectionError):
    """The socket closed before the reply came."""


class ChatClient:
    """One user's browser tab, talking through nginx."""

    def __init__(
        self,
        base_url: str,
        username: str,
        reconnect: bool = True,
        account: Account | None = None,
    ) -> None:
        self.reconnect = reconnect
        # The HTTP session (tests/wsclient.py); tabs of one browser share it.
        self.account = account or Account(base_url, username)
        self.base_url = self.account.base
        self.username = username
        # room slug -> seq -> message, from live events and history alike.
        self.view: dict[str, dict[int, dict[str, Any]]] = {}
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.acks: dict[str, dict[str, Any]] = {}  # ref -> ack frame
        self.events: list[dict[str, Any]] = []  # every frame that is not a reply or a message
        self.hellos: list[dict[str, Any]] = []
        self.upstreams: list[str] = []  # the worker behind each connection (X-Chatsite-Upstream)
        self.close_codes: list[int | None] = []
        self.errors: list[str] = []
        self.retried: Counter[str] = Counter()  # error codes answered by retrying
        self.ws: Any = None
        self.connected = asyncio.Event()
        self.resumed = asyncio.Event()
        self._refs = itertools.count(1)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ChatClient {self.username} via {self.upstreams}>"

    # --- HTTP, through nginx ------------------------------------------------------------------

    def signup(self) -> None:
        """Create the account and keep its session cookie."""
        self.account = Account.sign_up(self.base_url, self.username)

    def create_room(self, slug: str, name: str | None = None) -> None:
        self.account.create_room(name or slug, slug)

    def api_history(self, slug: str) -> list[dict[str, Any]]:
        """Every message of the room, as the JSON API gives it (the server's truth); a GET the
        proxy could not place (502/503/504) is retried, as a browser's fetch() would."""
        return self.account.api_history(slug, retry_statuses=(502, 503, 504))

    @property
    def http_retries(self) -> list[int]:
        """Statuses of the GETs retried so far (by every tab of this browser)."""
        return self.account.http_retries

    def new_tab(self) -> ChatClient:
        """Another tab of the same signed-in browser: same session, its own socket."""
        return ChatClient(self.base_url, self.username, self.reconnect, account=self.account)

    # --- the socket ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and keep connecting until close(); return once the first hello came."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"client-{self.username}")
        await asyncio.wait_for(self.connected.wait(), 15)

    async def close(self) -> None:
        self._stopping = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            code: int | None = None
            try:
                async with await connect(
                    self.account.ws_base,
                    self.account.cookie,
                    self.base_url,
                    open_timeout=5,
                    max_size=2**20,
                ) as ws:
                    self.ws = ws
                    self.upstreams.append(ws.response.headers.get("X-Chatsite-Upstream", "?"))
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert hello["type"] == "hello", hello
                    self.hellos.append(hello)
                    for room in hello["rooms"]:
                        self.view.setdefault(room["slug"], {})
                    failures = 0
                    self.connected.set()
                    resume = asyncio.create_task(self._resume())
                    try:
                        async for raw in ws:
                            self._on_frame(json.loads(raw))
                    finally:
                        resume.cancel()
                    code = ws.close_code
            except Exception as exc:
                # Refused, reset, timed out, 502 from nginx…: all mean "try again".
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.errors.append(repr(exc))
            finally:
                self.ws = None
                self.connected.clear()
                self.resumed.clear()
                self._fail_replies()
            if self._stopping:
                return
            self.close_codes.append(code)
            if code in NO_RECONNECT or not self.reconnect:
                return
            failures += 1
            # 4012: the worker is going away; reconnect at once (nginx picks another one).
            delay = 0 if code == 4012 and failures == 1 else min(0.1 * 2**failures, 2.0)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    def _fail_replies(self) -> None:
        for future in self._replies.values():
            if not future.done():
                future.set_exception(Disconnected())
                future.exception()  # its waiter may be gone (cancelled): no "never retrieved"
        self._replies.clear()

    async def _resume(self) -> None:
        """Fill every room from the last seq held without a gap (hello is sent on each connect)."""
        try:
            for slug in list(self.view):
                await self.catch_up(slug)
            self.resumed.set()
        except (Disconnected, ConnectionClosed, TimeoutError):
            pass

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._store(frame["room"], frame["message"])
        elif kind == "history":
            for message in frame["messages"]:
                self._store(frame["room"], message)
        elif kind == "joined":
            self.view.setdefault(frame["room"]["slug"], {})
        elif kind == "ack":
            self.acks[frame["ref"]] = frame
        if kind not in ("message", "history", "ack"):
            self.events.append(frame)
        ref = frame.get("ref")
        future = self._replies.pop(ref, None) if ref is not None and kind != "message" else None
        if future is not None and not future.done():
            future.set_result(frame)

    def _store(self, slug: str, message: dict[str, Any]) -> None:
        held = self.view.setdefault(slug, {}).get(message["seq"])
        if held is not None and held["id"] != message["id"]:
            self.conflicts.append((held, message))
        self.view[slug][message["seq"]] = message

    async def request(
        self, frame: dict[str, Any], timeout: float = REPLY_TIMEOUT
    ) -> dict[str, Any]:
        """Send `frame` with a fresh ref on the current connection and return the reply."""
        ref = frame.setdefault("ref", f"{self.username}-r{next(self._refs)}")
        ws = self.ws
        if ws is None:
            raise Disconnected()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        try:
            await ws.send(json.dumps(frame))
            return await asyncio.wait_for(future, timeout)
        except ConnectionClosed:
            raise Disconnected() from None
        finally:
            if self._replies.get(ref) is future:
                del self._replies[ref]

    async def call(self, frame: dict[str, Any], deadline: float = 30.0) -> dict[str, Any]:
        """request(), retried (same ref) across reconnects, rate limits and internal errors."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        frame = dict(frame)
        frame.setdefault("ref", f"{self.username}-r{next(self._refs)}")
        while True:
            remaining = end - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.username}: no reply to {frame} in {deadline}s")
            try:
                await asyncio.wait_for(self.connected.wait(), remaining)
                reply = await self.request(dict(frame), timeout=min(REPLY_TIMEOUT, remaining))
            except (Disconnected, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            if reply.get("type") == "error" and reply.get("code") in RETRY_CODES:
                self.retried[reply["code"]] += 1
                await asyncio.sleep(0.3 * random.uniform(0.5, 1.5))
                continue
            return reply

    async def send_message(self, room: str, body: str, ref: str) -> dict[str, Any]:
        """Post until acked, always with the same ref; return the ack."""
        reply = await self.call({"type": "send", "room": room, "body": body, "ref": ref})
        assert reply["type"] == "ack", f"{self.username}: {reply}"
        return reply

    async def join(self, room: str) -> dict[str, Any]:
        reply = await self.call({"type": "join", "room": room})
        assert reply["type"] == "joined", reply
        return reply

    async def catch_up(self, slug: str) -> None:
        """history `after` the last seq held without a gap, page by page."""
        while True:
            reply = await self.request(
                {"type": "history", "room": slug, "after": self.contiguous(slug), "limit": 100}
            )
            assert reply["type"] == "history", reply
            if not reply["has_more"]:
                return

    async def sync(self, slug: str) -> None:
        """catch_up, retried until it succeeds on some connection."""
        await self.call({"type": "ping"})
        while True:
            try:
                await asyncio.wait_for(self.connected.wait(), 15)
                await self.catch_up(slug)
                return
            except (Disconnected, TimeoutError):
                await asyncio.sleep(0.1)

    # --- what the client holds ----------------------------------------------------------------

    def contiguous(self, slug: str) -> int:
        """The last seq of the room held with no gap before it."""
        held = self.view.get(slug, {})
        seq = 0
        while seq + 1 in held:
            seq += 1
        return seq

    def duplicates(self, slug: str) -> dict[str, int]:
        """Refs that appear under more than one seq in this client's view (should be none)."""
        refs = Counter(m["ref"] for m in self.view.get(slug, {}).values() if m.get("ref"))
        return {ref: n for ref, n in refs.items() if n > 1}

    def presence(self, room: str) -> list[tuple[str, str]]:
        return [
            (e["user"], e["event"])
            for e in self.events
            if e.get("type") == "presence" and e.get("room") == room
        ]

    async def wait_for(self, predicate: Any, timeout: float = 10.0, what: str = "") -> None:
        """Poll `predicate()` until true; fail naming `what`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate():
            if loop.time() > end:
                raise AssertionError(f"{self.username}: timed out waiting for {what}")
            await asyncio.sleep(0.05)
