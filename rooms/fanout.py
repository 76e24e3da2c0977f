"""Per-worker fan-out: one channel-layer member per worker, not one per socket.

Every worker runs one `Hub`. The hub is the only member of the broadcast group, so a stored
message costs one `group_send` (one layer message per worker) whatever the room's size; the hub
then writes the event's already-encoded frame to each local socket that may see it. Sockets
never get channel-layer channels of their own (docs/performance.md says why and what it buys).

A layer message is `{"type": "hub.deliver", "items": [item, …]}`; an item is a dict with
- `frame`: the encoded server frame to write (optional when `close` is given),
- `room`: deliver to the local connections subscribed to this room pk, or
- `user`: deliver to the local connections of this user pk (`session`: only that session's;
  `skip_session`: all but that session's),
- `skip_user`: leave out this user's connections (typing, presence),
- `skip_conn`: leave out one connection (it got its own reply, carrying the client's `ref`),
- `subscribe` / `unsubscribe`: a room pk the user's connections start or stop receiving,
  applied before / after the frame is written,
- `close`: a close code for the user's connections.
Items of one message are applied in order, so `room_added` always precedes the first `message`.
Other messages may be sent to one hub's own channel (`send_to`) and go to the handler registered
for their type (`on`): that is how a stream's frames posted to any worker reach the worker
holding it (rooms/streams.py).

Every hub numbers what it sends (`origin`, `n`) and every `HUB_BEAT_SECONDS` says how far it got
(a beat: `n` without items; it rides along with a broadcast queued at the same time). A receiving
hub that sees a number skipped, or that stops hearing its own messages, missed events: neither
channels-redis layer reports every loss (stack facts 2 and 3; the pub/sub layer reconnects
without a word), so the hub asks its sockets to resync (close 4012; clients reconnect and resume
by seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import signal
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import Any, NamedTuple, Protocol, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from .sockets import Broadcast

logger = logging.getLogger(__name__)

BROADCAST_GROUP = "chat.broadcast"
# Under load, broadcasts queued while a group_send is in flight travel together.
MAX_ITEMS_PER_SEND = 200
# How long a new connection waits for this worker's hub to reach the channel layer.
HUB_READY_SECONDS = 5.0
# Broadcasts waiting for the layer (a paused Redis holds them): past this many, what comes is
# dropped, and the hub skips a number so every hub's sockets resync (see the module docstring).
OUTBOX_CAP = 10_000
# How long a broadcast without a hub (management commands, a worker's first requests) may wait
# for the layer: a paused Redis must not hang a sign-out.
SEND_WITHOUT_HUB_SECONDS = 2.0


class Item(TypedDict, total=False):
    """One thing for every hub to do (the module docstring says what each key means). Items
    cross the channel layer as plain dicts: a TypedDict types them and costs nothing."""

    frame: str
    room: int
    user: int
    session: str
    skip_session: str
    skip_user: int
    skip_conn: str | None
    subscribe: int
    unsubscribe: int
    close: int


class Connection(Protocol):
    """What the hub needs of a WebSocket connection (the consumer implements it)."""

    conn_id: str
    user_id: int
    session_key: str | None

    async def write(self, frame: str) -> None: ...

    def push(self, frame: Broadcast) -> bool:
        """Write the frame at once if the transport allows; False: `write` it instead."""
        ...

    async def close_with(self, code: int) -> None: ...


def publish_on_commit(items: list[Item]) -> None:
    """Publish to every worker once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(publish, items))


def publish(items: list[Item]) -> None:
    """Hand items to this worker's hub for broadcast, or send them directly without one.

    Called from sync code (a service's on-commit hook, usually in a database thread): it must
    not wait for Redis, whose pauses would stall every writer of the worker (stack fact 4).
    """
    hub = Hub.running
    if hub is not None and hub.loop.is_running():
        hub.loop.call_soon_threadsafe(hub.enqueue, items)
        return
    try:
        async_to_sync(_group_send)(items)
    except Exception:
        # The write is stored; a client that missed the event catches up by seq.
        logger.exception("broadcast failed; clients will resync by seq")


async def _group_send(items: list[Item]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        message = {"type": "hub.deliver", "items": items}
        await asyncio.wait_for(layer.group_send(BROADCAST_GROUP, message), SEND_WITHOUT_HUB_SECONDS)


class Hub:
    """This worker's end of the broadcast group, and the index of its local connections."""

    running: Hub | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: Any = None) -> None:
        self.loop = loop
        self.layer = layer if layer is not None else get_channel_layer()
        self.channel: str | None = None
        self.outbox: asyncio.Queue[list[Item]] = asyncio.Queue()
        self.outbox_overflowed = False
        self.by_room: dict[int, set[Connection]] = defaultdict(set)
        self.by_user: dict[int, set[Connection]] = defaultdict(set)
        # A list, not a set: a socket is in a few rooms, and every idle socket keeps one.
        self.rooms_of: dict[Connection, list[int]] = {}
        # Connections between `hold` and `release`, with the items kept for them.
        self.held: dict[Connection, list[Item]] = {}
        self.ready = asyncio.Event()
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        # Numbering (see the module docstring): this hub's name and count, the last number heard
        # from each hub (with when), and when this hub last heard itself.
        self.origin = secrets.token_hex(6)
        self.sent = 0
        self.heard: dict[str, tuple[int, float]] = {self.origin: (0, loop.time())}
        self.heard_self_at = loop.time()
        self.deaf = False
        self._resync: asyncio.Task[None] | None = None
        self._failed_sends = 0
        self._last_failure_log = -1e9
        # Layer messages to this hub's own channel other than broadcasts, by type (a stream's
        # frames posted through another worker, rooms/streams.py).
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def run_alongside(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work()` for as long as the hub runs, once per name (presence's heartbeat)."""
        if all(task.get_name() != name for task in self._tasks):
            self._tasks.append(self._task(work(), name))

    def on(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call `handler` with each layer message of type `kind` sent to this hub's channel."""
        self.handlers[kind] = handler

    async def send_to(self, channel: str, message: dict[str, Any], seconds: float) -> None:
        """Send one message to another worker's hub channel, waiting at most `seconds`."""
        if self.layer is None:
            raise ConnectionError("no channel layer")
        await asyncio.wait_for(self.layer.send(channel, message), seconds)

    def connections(self) -> list[Connection]:
        """Every local connection."""
        return [conn for conns in self.by_user.values() for conn in conns]

    @classmethod
    async def get(cls) -> Hub:
        """This worker's hub, started on first use in the running loop."""
        loop = asyncio.get_running_loop()
        hub = cls.running
        if hub is None or hub.loop is not loop:
            hub = cls.running = cls(loop)
            hub.start()
        return hub

    async def wait_ready(self) -> bool:
        """Whether the hub reached the channel layer in time (False during an outage)."""
        try:
            await asyncio.wait_for(self.ready.wait(), HUB_READY_SECONDS)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        self._tasks = [
            self._task(self._receive_loop(), "hub-receive"),
            self._task(self._send_loop(), "hub-send"),
            self._task(self._refresh_loop(), "hub-refresh"),
            self._task(self._beat_loop(), "hub-beat"),
        ]
        self._wrap_sigterm()

    def _task(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` for the worker, not for whoever started the hub: in a context of its own,
        so a hub started by an HTTP request never uses that request's database thread after the
        request is over."""
        return self.loop.create_task(work, name=name, context=contextvars.Context())

    def _wrap_sigterm(self) -> None:
        """Drain before the server's own SIGTERM handler stops it (daphne does not drain)."""
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # not under a server that handles SIGTERM (tests, shells)

        def on_sigterm(signum: int, frame: Any) -> None:
            self.loop.call_soon_threadsafe(
                lambda: self.loop.create_task(self.drain(partial(previous, signum, frame)))
            )

        signal.signal(signal.SIGTERM, on_sigterm)

    async def drain(self, then: Any = None, grace: float = 2.0) -> None:
        """Close every local socket with 4012 (reconnect elsewhere), wait briefly, then stop."""
        if self.draining:
            return
        self.draining = True
        from .protocol import CLOSE_SHUTDOWN

        for conn in self.connections():
            with contextlib.suppress(Exception):
                await conn.close_with(CLOSE_SHUTDOWN)
        # Wait for the close handshakes and queued broadcasts, but never past `grace`.
        deadline = self.loop.time() + grace
        while (self.by_user or not self.outbox.empty()) and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # Leave the broadcast group now: a dead member would be sent every event until
        # group_expiry.
        with contextlib.suppress(Exception):
            await self.stop()
        if then is not None:
            then()

    async def stop(self) -> None:
        """Stop the hub's tasks and leave the broadcast group (tests; process exit)."""
        for task in self._tasks:
            task.cancel()
        pending = await self._settle(self._tasks, 1.0)
        if pending and self.channel and self.layer is not None:
            # A layer receive can absorb its cancellation and block until a message comes
            # (seen with channels-redis 4.3 on Python 3.11): hand it one.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.layer.send(self.channel, {"type": "hub.wake"}), 2)
            pending = await self._settle(pending, 2.0)
        if pending:
            logger.warning("hub tasks did not stop: %s", pending)
        if self.channel and self.layer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.layer.group_discard(BROADCAST_GROUP, self.channel), 2)
        if Hub.running is self:
            Hub.running = None

    @staticmethod
    async def _settle(
        tasks: Iterable[asyncio.Task[None]], seconds: float
    ) -> set[asyncio.Task[None]]:
        tasks = set(tasks)
        if not tasks:
            return set()
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        return pending

    async def _join_group(self) -> None:
        assert self.layer is not None
        if self.channel is None:
            self.channel = await self.layer.new_channel()
        await self.layer.group_add(BROADCAST_GROUP, self.channel)

    async def _receive_loop(self) -> None:
        """Receive layer messages and deliver them; survive layer outages."""
        if self.layer is None:
            self.ready.set()
            return
        delay = 0.1
        outage = False
        while True:
            try:
                await self._join_group()
                if not self.ready.is_set():
                    self.heard_self_at = self.loop.time()
                self.ready.set()
                delay = 0.1
                if outage:
                    outage = False
                    await self._resync_everyone()
                while True:
                    # No timeout around receive: cancelling a channels-redis receive is not
                    # reliable (see stop()); the refresh loop renews the membership instead.
                    message = await self.layer.receive(self.channel)
                    handler = self.handlers.get(message.get("type"))
                    if handler is not None:
                        try:
                            handler(message)
                        except Exception:
                            logger.exception("a %s message failed", message.get("type"))
                        continue
                    self._check_numbering(message)
                    await self.deliver(message.get("items", ()))
            except asyncio.CancelledError:
                raise
            except Exception:
                outage = True
                logger.warning("channel layer unavailable; retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _refresh_loop(self) -> None:
        """Keep the group membership fresh: a Redis restart empties groups silently (stack
        fact 3), and memberships of dead workers expire (group_expiry) unless renewed."""
        if self.layer is None:
            return
        refresh = settings.CHAT["HUB_REFRESH_SECONDS"]
        while True:
            await asyncio.sleep(refresh)
            if not self.ready.is_set():
                continue
            try:
                await self._join_group()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("group refresh failed", exc_info=True)

    async def _resync_everyone(self, why: str = "channel layer back") -> None:
        """After a layer outage this worker may have missed events (a Redis restart also empties
        every group without an error: stack fact 3). Its sockets reconnect and resume by seq."""
        from .protocol import CLOSE_SHUTDOWN

        conns = self.connections()
        logger.warning("%s; asking %d sockets to resync", why, len(conns))
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close_with(CLOSE_SHUTDOWN)

    def enqueue(self, items: list[Item]) -> None:
        """Queue items for broadcast (in the hub's loop), or drop them past OUTBOX_CAP."""
        if self.outbox.qsize() < OUTBOX_CAP:
            self.outbox.put_nowait(items)
        elif not self.outbox_overflowed:
            self.outbox_overflowed = True
            logger.warning("broadcast backlog full (%d); dropping until it drains", OUTBOX_CAP)

    # --- numbering ----------------------------------------------------------------------------

    def _check_numbering(self, message: dict[str, Any]) -> None:
        """Note who sent the layer message; a skipped number means events were lost here."""
        origin = message.get("origin")
        n = message.get("n")
        if not isinstance(origin, str) or not isinstance(n, int):
            return  # published without a hub (management commands, shells)
        now = self.loop.time()
        if origin == self.origin:
            self.heard_self_at = now
            if self.deaf:
                self.deaf = False
                self._resync_soon("this worker hears the broadcast again")
        last = self.heard.get(origin)
        # A beat repeats the last number; a message with items carries the next one.
        expected = (last[0] if last else 0) + (0 if message.get("beat") else 1)
        if last is not None and n > expected:
            self._resync_soon(f"missed {n - expected} broadcast(s) of worker {origin}")
        self.heard[origin] = (max(n, last[0]) if last else n, now)

    def _resync_soon(self, why: str) -> None:
        if self._resync is None or self._resync.done():
            self._resync = self.loop.create_task(self._resync_everyone(why))

    async def _beat_loop(self) -> None:
        """Tell the other hubs how far this one got; notice when this hub stops hearing itself."""
        if self.layer is None:
            return
        interval = settings.CHAT["HUB_BEAT_SECONDS"]
        while True:
            await asyncio.sleep(interval)
            if not self.ready.is_set():
                continue
            # Through the outbox, so a beat never overtakes a broadcast.
            self.outbox.put_nowait([])
            now = self.loop.time()
            if not self.deaf and now - self.heard_self_at > 3 * interval:
                self.deaf = True
                self._resync_soon("this worker no longer hears the broadcast")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._join_group(), interval)
            # Forget workers that have been silent for long (they stopped, or restarted anew).
            for origin, (_, at) in list(self.heard.items()):
                if origin != self.origin and now - at > 60 * interval:
                    del self.heard[origin]

    async def _send_loop(self) -> None:
        """Send queued broadcasts in order; what queued up meanwhile goes in one group_send."""
        while True:
            items = list(await self.outbox.get())
            while not self.outbox.empty() and len(items) < MAX_ITEMS_PER_SEND:
                items.extend(self.outbox.get_nowait())
            if self.outbox_overflowed:
                # Broadcasts were dropped: a number nobody hears makes every hub (this one
                # too) resync its sockets, whose clients catch up by seq.
                self.outbox_overflowed = False
                self.sent += 1
            message: dict[str, Any] = {"type": "hub.deliver", "origin": self.origin}
            if items:
                # Counted even if the send fails: the gap tells every hub, this one included.
                self.sent += 1
                message["items"] = items
            else:
                message["beat"] = True
            message["n"] = self.sent
            try:
                if self.layer is not None:
                    await self.layer.group_send(BROADCAST_GROUP, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log_broadcast_failure()

    def _log_broadcast_failure(self) -> None:
        """One traceback per outage burst, then a count: a Redis outage is not a log flood."""
        now = self.loop.time()
        self._failed_sends += 1
        if now - self._last_failure_log >= 10:
            logger.error(
                "broadcast failed (%d since last report); clients will resync by seq",
                self._failed_sends,
                exc_info=True,
            )
            self._failed_sends = 0
            self._last_failure_log = now

    # --- local index ------------------------------------------------------------------------

    def hold(self, conn: Connection) -> None:
        """Index a new connection by its user before its rooms are read.

        From here on nothing published for the user passes the connection by (a deactivation,
        a new direct room); what reaches it is kept until `release`, because `hello` must be
        its first frame.
        """
        self.by_user[conn.user_id].add(conn)
        self.rooms_of[conn] = []
        self.held[conn] = []

    async def release(self, conn: Connection, room_ids: Iterable[int]) -> None:
        """Subscribe the connection to its rooms, then apply, in order, what was kept for it."""
        for room_id in room_ids:
            self.subscribe(conn, room_id)
        backlog = self.held.get(conn)
        # Items may still arrive while the backlog is written: they queue behind it.
        while backlog:
            await self._apply(conn, _Change.of(backlog.pop(0)))
        self.held.pop(conn, None)

    def unregister(self, conn: Connection) -> None:
        self.held.pop(conn, None)
        for room_id in self.rooms_of.pop(conn, ()):
            self._drop(self.by_room, room_id, conn)
        self._drop(self.by_user, conn.user_id, conn)

    def subscribe(self, conn: Connection, room_id: int) -> None:
        rooms = self.rooms_of.get(conn)
        if rooms is not None and room_id not in rooms:
            self.by_room[room_id].add(conn)
            rooms.append(room_id)

    def unsubscribe(self, conn: Connection, room_id: int) -> None:
        rooms = self.rooms_of.get(conn)
        if rooms is not None and room_id in rooms:
            rooms.remove(room_id)
        self._drop(self.by_room, room_id, conn)

    def is_subscribed(self, conn: Connection, room_id: int) -> bool:
        return room_id in self.rooms_of.get(conn, ())

    @staticmethod
    def _drop(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(conn)
            if not members:
                del index[key]

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, items: Iterable[Item]) -> None:
        """Apply each item to the local connections it concerns."""
        held = self.held
        for item in items:
            room_id = item.get("room")
            user_id = item.get("user")
            if room_id is not None:
                targets = self.by_room.get(room_id, ())
            elif user_id is not None:
                targets = self.by_user.get(user_id, ())
                session = item.get("session")
                if session is not None:
                    targets = {c for c in targets if c.session_key == session}
                kept = item.get("skip_session")
                if kept is not None:
                    targets = {c for c in targets if c.session_key != kept}
            else:
                continue
            if not targets:
                continue
            skip_user = item.get("skip_user")
            skip_conn = item.get("skip_conn")
            change = _Change.of(item)
            # Most items only carry a frame: framed once for the wire, written without a
            # coroutine of its own per socket.
            frame_only = None
            if change.frame and change.is_frame_only:
                frame_only = Broadcast(change.frame)
            # A copy: writing may end a connection, which changes the index.
            for conn in list(targets):
                if (skip_user is not None and conn.user_id == skip_user) or (
                    skip_conn is not None and conn.conn_id == skip_conn
                ):
                    continue
                if held and conn in held:
                    held[conn].append(item)
                elif frame_only is not None:
                    try:
                        if not conn.push(frame_only):
                            await conn.write(frame_only.text)
                    except Exception:
                        logger.debug("write to a closing connection failed", exc_info=True)
                else:
                    await self._apply(conn, change)

    async def _apply(self, conn: Connection, change: _Change) -> None:
        if change.subscribe is not None:
            self.subscribe(conn, change.subscribe)
        try:
            if change.frame:
                await conn.write(change.frame)
            if change.close is not None:
                await conn.close_with(change.close)
        except Exception:
            logger.debug("write to a closing connection failed", exc_info=True)
        if change.unsubscribe is not None:
            self.unsubscribe(conn, change.unsubscribe)


class _Change(NamedTuple):
    """What an item does to each connection it reaches (see the module docstring)."""

    frame: str | None
    subscribe: int | None
    unsubscribe: int | None
    close: int | None

    @property
    def is_frame_only(self) -> bool:
        return self.subscribe is None and self.unsubscribe is None and self.close is None

    @classmethod
    def of(cls, item: Item) -> _Change:
        return cls(
            item.get("frame"), item.get("subscribe"), item.get("unsubscribe"), item.get("close")
        )
