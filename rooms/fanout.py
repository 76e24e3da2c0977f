"""Per-worker fan-out: one channel-layer member per worker, not one per socket.

Every worker runs one `Hub`, the worker's only member of channel-layer groups. Events are routed
(rooms/routing.py): a room's events go to the room's group, a user's own events to the user's
group, and a hub is a member of a group only while it has a connection there. A stored message
costs one `group_send` whatever the room's size, and reaches only the workers with a socket in
the room; each of those writes the event's already-encoded frame to its local sockets that may
see it. Sockets never get channel-layer channels of their own (docs/performance.md says why).

A layer message is `{"type": "hub.deliver", "items": [item, …]}`; an item is a dict with
- `frame`: the encoded server frame to write (optional when `close` is given),
- `room`: deliver to the local connections subscribed to this room pk, or
- `user`: deliver to the local connections of this user pk (`session`: only that session's;
  `skip_session`: all but that session's),
- `skip_user`: leave out this user's connections (typing, presence),
- `skip_conn`: leave out one connection (it got its own reply, carrying the client's `ref`),
- `subscribe` / `unsubscribe`: a room pk the user's connections start or stop receiving,
  applied before / after the frame is written; a hub joins the room's group before it writes
  the frame, so what the room says after the client hears of it reaches the client, and what
  the room said after `seq` before the connection was subscribed is read from the database and
  written next (`catch_up`),
- `seq`: with `subscribe`, the room's last `seq` when the item was published; on a `message`,
  its `seq` (a connection caught up past it is not sent it again),
- `close`: a close code for the user's connections.
Items of one message are applied in order. Other messages may be sent to one hub's own channel
(`send_to`) and go to the handler registered for their type (`on`): that is how a stream's
frames posted to any worker reach the worker holding it (rooms/streams.py).

Loss is detected per group. A hub numbers what it sends to each group (`origin`, `g`, `n`;
rooms/numbering.py); a hub that sees a number of a group skipped missed that group's events,
and asks the sockets of that room (or user) to resync (close 4012: clients reconnect and resume
by `seq`). Every `HUB_BEAT_SECONDS` each hub also sends a numbered beat into the site's group
(one per Redis server): a beat skipped means this hub's subscriptions on that server lapsed for
a moment, and a hub that stops hearing its own beats lost them; either way it asks all of its
sockets to resync, and joins its groups again. A group whose message failed to send is told its
number again with the next beat (`beat`: a number without items), so its members notice.
Neither channels-redis layer reports every loss (stack facts 2 and 3; the pub/sub layer
reconnects without a word).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from typing import Any, NamedTuple, Protocol, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from . import metrics, routing
from .numbering import Numbering
from .sockets import Broadcast

logger = logging.getLogger(__name__)

# Under load, broadcasts queued while a group_send is in flight travel together.
MAX_ITEMS_PER_SEND = 200
# How long a new connection waits for this worker's hub to reach the channel layer, or to join
# the groups of its user and rooms.
HUB_READY_SECONDS = 5.0
# Broadcasts waiting for the layer (a paused Redis holds them): past this many, what comes is
# dropped, and every hub is told to resync its sockets (see the module docstring).
OUTBOX_CAP = 10_000
# How long a broadcast without a hub (management commands, a worker's first requests) may wait
# for the layer: a paused Redis must not hang a sign-out.
SEND_WITHOUT_HUB_SECONDS = 2.0
# Group joins (and refreshes) sent to the layer at once.
JOINS_AT_ONCE = 100
# How long catching a connection up may wait for the database.
CATCH_UP_READ_SECONDS = 2.0
# How long a connection caught up in a room is spared the live messages it already got.
CAUGHT_UP_SECONDS = 30.0


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
    seq: int
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


def _by_group(items: Iterable[Item], by_room: bool) -> dict[str, list[Item]]:
    """Items by the group they travel in, in order."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        group = routing.group_of(item, by_room)  # type: ignore[arg-type]
        if group is not None:
            groups.setdefault(group, []).append(item)
    return groups


async def _group_send(items: list[Item]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        for group, its in _by_group(items, routing.routed(layer)).items():
            message = {"type": "hub.deliver", "items": its}
            await asyncio.wait_for(layer.group_send(group, message), SEND_WITHOUT_HUB_SECONDS)


# (room pk, after seq) -> [(seq, encoded `message` frame), ...]: what a room said that a hub
# that has just joined its group missed. Set by rooms/session.py, which reads the database.
MissedReader = Callable[[int, int], Awaitable[list[tuple[int, str]]]]
_read_missed: MissedReader | None = None


def read_missed_with(reader: MissedReader | None) -> MissedReader | None:
    """How hubs read what a room said before they joined its group (`Hub.catch_up`); the
    reader it replaces."""
    global _read_missed
    previous, _read_missed = _read_missed, reader
    return previous


class Hub:
    """This worker's member of the channel-layer groups, and the index of its connections."""

    running: Hub | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: Any = None) -> None:
        self.loop = loop
        self.layer = layer if layer is not None else get_channel_layer()
        self.by_room_groups = routing.routed(self.layer)
        self.channel: str | None = None
        self.outbox: asyncio.Queue[list[Item]] = asyncio.Queue()
        self.outbox_overflowed = False
        self.by_room: dict[int, set[Connection]] = defaultdict(set)
        self.by_user: dict[int, set[Connection]] = defaultdict(set)
        # A list, not a set: a socket is in a few rooms, and every idle socket keeps one.
        self.rooms_of: dict[Connection, list[int]] = {}
        # Connections between `hold` and `release`, with the items kept for them.
        self.held: dict[Connection, list[Item]] = {}
        # (connection, room pk) -> (seq it was caught up to, until when): live messages up to
        # that seq are not written to it again.
        self.caught_up: dict[tuple[Connection, int], tuple[int, float]] = {}
        # (connection, room pk) -> seqs written to it live while it is being caught up.
        self.catching: dict[tuple[Connection, int], set[int]] = {}
        self.ready = asyncio.Event()
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        # Group membership: the groups joined, those being joined (with who waits), and the
        # joined ones no local connection needs any more, since when (left after a while).
        self.beat_groups: list[str] = [routing.SITE_GROUP]
        self.groups: set[str] = set()
        self._joining: dict[str, asyncio.Future[bool]] = {}
        self._join_queue: list[str] = []
        self._join_wanted = asyncio.Event()
        self.idle_since: dict[str, float] = {}
        # Loss detection (see the module docstring): this hub's name and numbers
        # (rooms/numbering.py), the groups whose last message may not have gone (to be told
        # its number again), and when it last heard its own beat, per beat group.
        self.origin = secrets.token_hex(6)
        self.numbering = Numbering(self.origin, loop.time)
        self.beats_owed: set[str] = set()
        self.sender: routing.GroupSender | None = None
        self.heard_self_at: dict[str, float] = {}
        self.deaf = False
        self._resync: asyncio.Task[None] | None = None
        self._resync_groups: set[str | None] = set()
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
        if self.layer is not None:
            self.beat_groups = routing.beat_groups(self.layer)
            self.sender = routing.GroupSender(self.layer)
        now = self.loop.time()
        self.heard_self_at = {group: now for group in self.beat_groups}
        self.numbering.compare(self.beat_groups)
        self._tasks = [
            self._task(self._receive_loop(), "hub-receive"),
            self._task(self._send_loop(), "hub-send"),
            self._task(self._membership_loop(), "hub-membership"),
            self._task(self._refresh_loop(), "hub-refresh"),
            self._task(self._beat_loop(), "hub-beat"),
        ]
        metrics.watch(self)
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
        # Leave the groups now: a dead member would be sent their events until group_expiry.
        with contextlib.suppress(Exception):
            await self.stop()
        if then is not None:
            then()

    async def stop(self) -> None:
        """Stop the hub's tasks and leave its groups (tests; process exit)."""
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
            groups = [*self.beat_groups, *self.groups]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._in_chunks(self.layer.group_discard, groups), 2)
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
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

    async def _in_chunks(self, call: Any, groups: Iterable[str]) -> list[Any]:
        """`call(group, channel)` for each group, JOINS_AT_ONCE at a time; the outcomes."""
        groups = list(groups)
        outcomes: list[Any] = []
        for at in range(0, len(groups), JOINS_AT_ONCE):
            chunk = groups[at : at + JOINS_AT_ONCE]
            outcomes += await asyncio.gather(
                *(call(group, self.channel) for group in chunk), return_exceptions=True
            )
        return outcomes

    async def _join_beat_groups(self) -> None:
        assert self.layer is not None
        if self.channel is None:
            self.channel = await self.layer.new_channel()
        for group in self.beat_groups:
            await self.layer.group_add(group, self.channel)

    async def _receive_loop(self) -> None:
        """Receive layer messages and deliver them; survive layer outages."""
        if self.layer is None:
            self.ready.set()
            return
        delay = 0.1
        outage = False
        while True:
            try:
                await self._join_beat_groups()
                if not self.ready.is_set():
                    now = self.loop.time()
                    self.heard_self_at = dict.fromkeys(self.beat_groups, now)
                self.ready.set()
                delay = 0.1
                if outage:
                    outage = False
                    await self._rejoin()
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
                    await self._receive(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                outage = True
                logger.warning("channel layer unavailable; retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _receive(self, message: dict[str, Any]) -> None:
        if message.get("lost"):
            self._resync_soon(f"worker {message.get('origin')} dropped broadcasts")
            return
        self._check_numbering(message)
        items = message.get("items")
        if not items:
            return
        metrics.LAYER_EVENTS.inc(len(items))
        await self.deliver(items)
        sent_at = message.get("at")
        if isinstance(sent_at, float):
            metrics.LAG.observe(max(0.0, time.time() - sent_at))

    async def _refresh_loop(self) -> None:
        """Keep the memberships fresh: a Redis restart empties groups silently (stack fact 3),
        memberships of dead workers expire (group_expiry) unless renewed, and a join that
        failed is tried again."""
        if self.layer is None:
            return
        refresh = settings.CHAT["HUB_REFRESH_SECONDS"]
        while True:
            await asyncio.sleep(refresh)
            if not self.ready.is_set():
                continue
            try:
                await self._rejoin()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("group refresh failed", exc_info=True)

    async def _rejoin(self) -> None:
        """Add this hub to every group it is in again, and join those it needs but is not in."""
        await self._join_beat_groups()
        outcomes = await self._in_chunks(self.layer.group_add, list(self.groups))
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise failed[0]
        for room_id in self.by_room:
            self._want(routing.room_group(room_id))
        for user_id in self.by_user:
            self._want(routing.user_group(user_id))

    async def _resync_everyone(self, why: str = "channel layer back") -> None:
        """After a layer outage this worker may have missed events (a Redis restart also empties
        every group without an error: stack fact 3). Its sockets reconnect and resume by seq."""
        self._resync_groups.add(None)
        await self._resync_now(why)

    def enqueue(self, items: list[Item]) -> None:
        """Queue items for broadcast (in the hub's loop), or drop them past OUTBOX_CAP."""
        if self.outbox.qsize() < OUTBOX_CAP:
            self.outbox.put_nowait(items)
        elif not self.outbox_overflowed:
            self.outbox_overflowed = True
            logger.warning("broadcast backlog full (%d); dropping until it drains", OUTBOX_CAP)

    # --- group membership -------------------------------------------------------------------

    def _want(self, group: str) -> None:
        """A local connection needs the group: join it unless this hub is in it (or joining)."""
        self.idle_since.pop(group, None)
        if self.by_room_groups and group not in self.groups:
            self._request_join(group)

    def _unwanted(self, group: str) -> None:
        """No local connection needs the group any more: leave it after a while."""
        if group in self.groups:
            self.idle_since.setdefault(group, self.loop.time())

    def _request_join(self, group: str) -> asyncio.Future[bool]:
        joining = self._joining.get(group)
        if joining is None:
            joining = self._joining[group] = self.loop.create_future()
            self._join_queue.append(group)
            self._join_wanted.set()
        return joining

    async def join(self, groups: Iterable[str]) -> list[str]:
        """Wait until this hub is in every group (joining those it is not in); the ones it had
        to join. ConnectionError if the layer would not have it."""
        if not self.by_room_groups:
            return []
        missing = [group for group in groups if group not in self.groups]
        if not missing:
            return []
        waits = [self._request_join(group) for group in missing]
        done, pending = await asyncio.wait(waits, timeout=HUB_READY_SECONDS)
        if pending or not all(wait.result() for wait in done):
            raise ConnectionError("this worker could not join the channel-layer groups it needs")
        return missing

    async def _membership_loop(self) -> None:
        """Join the groups asked for, together: never on the path of a message."""
        while True:
            await self._join_wanted.wait()
            self._join_wanted.clear()
            queue, self._join_queue = self._join_queue, []
            await self.ready.wait()
            if self.layer is None:
                outcomes: list[Any] = [None] * len(queue)
            else:
                outcomes = await self._in_chunks(self.layer.group_add, queue)
            now = self.loop.time()
            for group, outcome in zip(queue, outcomes, strict=True):
                joined = not isinstance(outcome, BaseException)
                if joined:
                    self.groups.add(group)
                    self.numbering.compare([group])
                    if not self._needed(group):
                        self.idle_since.setdefault(group, now)
                else:
                    logger.warning("could not join %s: %r", group, outcome)
                waiting = self._joining.pop(group, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(joined)

    def _needed(self, group: str) -> bool:
        """Whether a local connection needs the group."""
        parsed = routing.parse(group)
        if parsed is None:
            return True
        kind, pk = parsed
        return pk in (self.by_room if kind == "room" else self.by_user)

    async def _leave_idle_groups(self) -> None:
        """Leave the groups no local connection has needed for HUB_LEAVE_AFTER_SECONDS."""
        if not self.idle_since:
            return
        cutoff = self.loop.time() - settings.CHAT["HUB_LEAVE_AFTER_SECONDS"]
        leaving = [g for g, since in self.idle_since.items() if since <= cutoff]
        for group in leaving:
            del self.idle_since[group]
            self.groups.discard(group)
            self.numbering.stop_comparing(group)
        if leaving and self.layer is not None and self.channel is not None:
            await self._in_chunks(self.layer.group_discard, leaving)
            # A connection that came meanwhile needs the group after all: join it again.
            for group in leaving:
                if self._needed(group):
                    self.groups.discard(group)
                    self._request_join(group)

    # --- numbering ----------------------------------------------------------------------------

    def _check_numbering(self, message: dict[str, Any]) -> None:
        """Note who sent the layer message; a skipped number means events were lost here."""
        origin = message.get("origin")
        n = message.get("n")
        group = message.get("g")
        if not isinstance(origin, str) or not isinstance(n, int) or not isinstance(group, str):
            return  # published without a hub (management commands, shells)
        now = self.loop.time()
        if origin == self.origin and group in self.heard_self_at:
            self.heard_self_at[group] = now
            if self.deaf and all(now - at < 1.0 for at in self.heard_self_at.values()):
                self.deaf = False
                self._resync_soon("this worker hears the channel layer again")
        skipped = self.numbering.missed(group, origin, n, repeat=bool(message.get("beat")))
        if skipped:
            self._resync_soon(f"missed {skipped} message(s) of worker {origin} in {group}", group)

    def _resync_soon(self, why: str, group: str | None = None) -> None:
        """Ask the sockets of the group (None: every socket) to resync, once for many gaps."""
        self._resync_groups.add(None if group in self.beat_groups else group)
        if self._resync is None or self._resync.done():
            self._resync = self.loop.create_task(self._resync_now(why))

    async def _resync_now(self, why: str) -> None:
        await asyncio.sleep(0)  # gaps noticed in the same moment make one resync
        groups, self._resync_groups = self._resync_groups, set()
        if None in groups or not self.by_room_groups:
            conns = self.connections()
        else:
            found: set[Connection] = set()
            for group in groups:
                parsed = routing.parse(group or "")
                if parsed is not None:
                    kind, pk = parsed
                    found |= (self.by_room if kind == "room" else self.by_user).get(pk, set())
            conns = list(found)
        from .protocol import CLOSE_SHUTDOWN

        metrics.RESYNCS.inc()
        logger.warning("%s; asking %d sockets to resync", why, len(conns))
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close_with(CLOSE_SHUTDOWN)

    async def _beat_loop(self) -> None:
        """Tell groups how far this hub got; notice when it stops hearing itself; leave the
        groups no longer needed; forget old numbering."""
        if self.layer is None:
            return
        interval = settings.CHAT["HUB_BEAT_SECONDS"]
        beats = 0
        while True:
            await asyncio.sleep(interval)
            beats += 1
            if not self.ready.is_set():
                continue
            # Through the outbox, so a beat never overtakes a broadcast.
            self.outbox.put_nowait([])
            now = self.loop.time()
            if not self.deaf and any(now - at > 3 * interval for at in self.heard_self_at.values()):
                self.deaf = True
                self._resync_soon("this worker no longer hears the channel layer")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._rejoin(), interval)
            with contextlib.suppress(Exception):
                await self._leave_idle_groups()
            for key, (_, until) in list(self.caught_up.items()):
                if now > until:
                    del self.caught_up[key]
            if beats % 60 == 0:
                self.numbering.forget_old()

    async def _send_loop(self) -> None:
        """Send queued broadcasts in order, one message per group of what queued up meanwhile,
        all in one batch (rooms/routing.py); on a beat, a numbered beat into each beat group,
        and the last number again to each group whose message may not have gone."""
        while True:
            batch = await self.outbox.get()
            items = list(batch)
            beat = not batch
            while not self.outbox.empty() and len(items) < MAX_ITEMS_PER_SEND:
                more = self.outbox.get_nowait()
                items.extend(more)
                beat = beat or not more
            sends: list[tuple[str, dict[str, Any]]] = []
            lost = self.outbox_overflowed
            if lost:
                # Broadcasts were dropped: every hub (this one too) resyncs its sockets, whose
                # clients catch up by seq.
                self.outbox_overflowed = False
                sends.append((routing.SITE_GROUP, self._message(routing.SITE_GROUP, lost=True)))
            at = time.time()
            for group, its in _by_group(items, self.by_room_groups).items():
                # Numbered even if the send fails: the gap tells every hub, this one included.
                n = self.numbering.next(group)
                sends.append((group, self._message(group, n=n, at=at, items=its)))
            owed = list(self.beats_owed) if beat else []
            if beat:
                for group in self.beat_groups:
                    sends.append((group, self._message(group, n=self.numbering.next(group))))
                for group in owed:
                    n = self.numbering.last(group)
                    sends.append((group, self._message(group, n=n, beat=True)))
            if not sends or self.sender is None:
                continue
            failed = set(await self.sender.send(sends))
            self.beats_owed.difference_update(set(owed) - failed)
            if failed:
                self._log_broadcast_failure()
                # A group's number whose message may not have gone is told again next beat (a
                # beat group's next numbered beat tells it anyway)...
                self.beats_owed.update(failed.difference(self.beat_groups))
                for group in failed.intersection(self.beat_groups) if beat else ():
                    # ...but a beat that did not go is no loss: its number is used again.
                    self.numbering.take_back(group)
                if lost and routing.SITE_GROUP in failed:
                    self.outbox_overflowed = True  # say it again

    def _message(self, group: str, **fields: Any) -> dict[str, Any]:
        return {"type": "hub.deliver", "origin": self.origin, "g": group, **fields}

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

    async def hold(self, conn: Connection) -> None:
        """Index a new connection by its user before its rooms are read, and join the user's
        group.

        From here on nothing published for the user passes the connection by (a deactivation,
        a new direct room); what reaches it is kept until `release`, because `hello` must be
        its first frame.
        """
        self.by_user[conn.user_id].add(conn)
        self.rooms_of[conn] = []
        self.held[conn] = []
        group = routing.user_group(conn.user_id)
        self._want(group)
        await self.join([group])

    async def enter(self, conn: Connection, room_ids: Iterable[int]) -> list[int]:
        """Subscribe a held connection to its rooms, once this hub is in their groups; the
        rooms whose group it had to join (what was said there before may have passed it by)."""
        room_ids = list(room_ids)
        for room_id in room_ids:
            self.subscribe(conn, room_id)
        joined = await self.join(routing.room_group(room_id) for room_id in room_ids)
        return [pk for _, pk in filter(None, map(routing.parse, joined))]

    async def release(self, conn: Connection) -> None:
        """Apply, in order, what was kept for the connection since `hold`."""
        backlog = self.held.get(conn)
        # Items may still arrive while the backlog is written: they queue behind it.
        while backlog:
            await self._apply(conn, _Change.of(backlog.pop(0)))
        self.held.pop(conn, None)

    def unregister(self, conn: Connection) -> None:
        self.held.pop(conn, None)
        for room_id in self.rooms_of.pop(conn, ()):
            if self._drop(self.by_room, room_id, conn):
                self._unwanted(routing.room_group(room_id))
        if self._drop(self.by_user, conn.user_id, conn):
            self._unwanted(routing.user_group(conn.user_id))
        if self.caught_up:
            for key in [key for key in self.caught_up if key[0] is conn]:
                del self.caught_up[key]

    def subscribe(self, conn: Connection, room_id: int) -> None:
        """Deliver the room's events to the connection (from when this hub is in its group)."""
        rooms = self.rooms_of.get(conn)
        if rooms is not None and room_id not in rooms:
            self.by_room[room_id].add(conn)
            rooms.append(room_id)
            self._want(routing.room_group(room_id))

    async def follow(
        self, conn: Connection, room_id: int, catch_up_after: int | None = None
    ) -> bool:
        """Subscribe, and wait until this hub is in the room's group: what the room says from
        now on reaches the connection. Whether it was not subscribed before: then what the
        room said after `catch_up_after` may have passed it by, and is written to it."""
        new = not self.is_subscribed(conn, room_id)
        key = (conn, room_id)
        catching = new and catch_up_after is not None
        if catching:
            self.catching[key] = set()
        try:
            self.subscribe(conn, room_id)
            await self.join([routing.room_group(room_id)])
            if catching:
                await self.catch_up(conn, room_id, catch_up_after or 0)
        finally:
            if catching:
                self.catching.pop(key, None)
        return new

    async def catch_up(self, conn: Connection, room_id: int, after: int) -> None:
        """Write the room's messages after `after` to a connection that has just subscribed:
        stored before this hub joined the room's group, or before the connection subscribed
        (a room's events and a user's travel apart), they never reached it. Those written to
        it live meanwhile, or still to come, are not written again."""
        if _read_missed is None:
            return
        key = (conn, room_id)
        delivered = self.catching.setdefault(key, set())
        try:
            # On the hub's receive path: a stalled database may hold it up only briefly.
            missed = await asyncio.wait_for(_read_missed(room_id, after), CATCH_UP_READ_SECONDS)
        except Exception:
            logger.warning("room %s: could not read what was missed", room_id, exc_info=True)
            return
        finally:
            self.catching.pop(key, None)
        if not missed:
            return
        self.caught_up[key] = (missed[-1][0], self.loop.time() + CAUGHT_UP_SECONDS)
        for seq, frame in missed:
            if seq in delivered:
                continue
            try:
                await conn.write(frame)
            except Exception:
                logger.debug("write to a closing connection failed", exc_info=True)
                return

    def unsubscribe(self, conn: Connection, room_id: int) -> None:
        rooms = self.rooms_of.get(conn)
        if rooms is not None and room_id in rooms:
            rooms.remove(room_id)
        if self._drop(self.by_room, room_id, conn):
            self._unwanted(routing.room_group(room_id))

    def is_subscribed(self, conn: Connection, room_id: int) -> bool:
        return room_id in self.rooms_of.get(conn, ())

    @staticmethod
    def _drop(index: dict[int, set[Connection]], key: int, conn: Connection) -> bool:
        """Take the connection out of the index; whether that emptied the key."""
        members = index.get(key)
        if members is not None:
            members.discard(conn)
            if not members:
                del index[key]
                return True
        return False

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, items: Iterable[Item]) -> None:
        """Apply each item to the local connections it concerns."""
        held = self.held
        delivered = 0
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
            if (self.caught_up or self.catching) and room_id is not None:
                targets = self._not_caught_up(targets, room_id, item.get("seq"))
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
                delivered += 1
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
        metrics.DELIVERIES.inc(delivered)

    def _not_caught_up(
        self, targets: Iterable[Connection], room_id: int, seq: int | None
    ) -> set[Connection]:
        """The targets but those caught up past this message of the room (noting it for those
        being caught up)."""
        now = self.loop.time()
        kept = set()
        for conn in targets:
            being_caught_up = self.catching.get((conn, room_id))
            if being_caught_up is not None and seq is not None:
                being_caught_up.add(seq)
            caught = self.caught_up.get((conn, room_id))
            if caught is not None and now > caught[1]:
                del self.caught_up[(conn, room_id)]
                caught = None
            if caught is None or seq is None or seq > caught[0]:
                kept.add(conn)
        return kept

    async def _apply(self, conn: Connection, change: _Change) -> None:
        new = False
        if change.subscribe is not None:
            try:
                # Joined before the client hears of the room: what the room says from then on
                # reaches it.
                new = await self.follow(conn, change.subscribe)
            except ConnectionError:
                logger.warning("room %s: group not joined yet", change.subscribe)
        try:
            if change.frame:
                await conn.write(change.frame)
            if change.close is not None:
                await conn.close_with(change.close)
        except Exception:
            logger.debug("write to a closing connection failed", exc_info=True)
        if new and change.subscribe is not None and change.seq is not None:
            await self.catch_up(conn, change.subscribe, change.seq)
        if change.unsubscribe is not None:
            self.unsubscribe(conn, change.unsubscribe)


class _Change(NamedTuple):
    """What an item does to each connection it reaches (see the module docstring)."""

    frame: str | None
    subscribe: int | None
    unsubscribe: int | None
    close: int | None
    seq: int | None

    @property
    def is_frame_only(self) -> bool:
        return self.subscribe is None and self.unsubscribe is None and self.close is None

    @classmethod
    def of(cls, item: Item) -> _Change:
        return cls(
            item.get("frame"),
            item.get("subscribe"),
            item.get("unsubscribe"),
            item.get("close"),
            item.get("seq"),
        )
