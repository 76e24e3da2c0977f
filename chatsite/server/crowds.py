"""A crowd of WebSockets connecting at once: every one gets in, first come, first served.

Crowds are ordinary: the sockets of a restarted worker reconnect together, a drained worker's
sockets (close 4012) move to the others, a load balancer opens upstream connections for a
surge. Under daphne, four things stood in a crowd's way (docs/performance.md):

- Twisted listens with a queue of 50 connections not yet accepted. Past it the kernel drops
  SYNs, and each one retries only after 1, 3, 7… seconds: 1,000 sockets opened at once to one
  worker took 28 s to get `hello`. `install()` lengthens the queue (the kernel caps it at
  `net.core.somaxconn`).
- Every handshake in progress shares the worker: the database thread, Redis and the loop serve
  them all in turn, so with 2,500 at once none finished within daphne's
  `--websocket_connect_timeout` (5 s), daphne refused or dropped them all, and the retries met
  the same queue: 0 of 2,500 got in. nginx counted the dropped handshakes as
  failures of the workers and stopped sending them anything. `HandshakeGate` admits at most
  `HANDSHAKES_AT_ONCE` at a time, in arrival order, so each finishes in milliseconds once
  admitted; the connect timeout counts from a socket's admission rather than from its arrival,
  so waiting in line is not a failure. A socket whose peer left while it waited is
  skipped.
- Every socket is an open file, and a shell's usual soft limit is 1,024 of them: past it, daphne
  cannot accept. `install()` raises the soft limit to the hard one (up to `OPEN_FILES`), as far
  as the operator's hard limit allows (`raise_open_files_limit`, with or without tuning).
- autobahn pretty-prints its configuration for a debug log line on every connection, even with
  debug logging off: a tenth of a worker's time in a crowd. `install()` makes that text lazy.

The listen queue can also be had without a patch, from daphne's endpoint string
(`daphne -e tcp:8001:interface=127.0.0.1:backlog=4096`, as deploy/ does), but the contract's
`daphne -b HOST -p PORT` gets 50 unless patched. Everything here but the open-files limit is a
fast path (chatsite/server/__init__.py).
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from typing import Any

from autobahn.websocket import protocol as autobahn_protocol
from prometheus_client import Gauge
from twisted.internet import endpoints

LISTEN_BACKLOG = 4096
OPEN_FILES = 1 << 20
# Enough to keep the database thread and Redis busy; more only slows each one down.
HANDSHAKES_AT_ONCE = 32

_twisted_listen = endpoints._TCPServerEndpoint.listen
_pformat = autobahn_protocol.pformat


def _listen_with_backlog(self: Any, protocol_factory: Any) -> Any:
    self._backlog = max(self._backlog, LISTEN_BACKLOG)
    return _twisted_listen(self, protocol_factory)


class _LazyPformat:
    """`pformat(obj)`, computed only if a log line is actually written (for its debug log line
    only: where autobahn returns pformat's text, it must stay text)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return str(_pformat(self.obj))


def _pformat_for_logs(obj: Any) -> Any:
    # The per-connection configuration dump (a list of tuples, in `_connectionMade`) is only
    # ever logged at debug level; elsewhere (`Timings.__str__`) autobahn returns the text.
    if isinstance(obj, list):
        return _LazyPformat(obj)
    return _pformat(obj)


def raise_open_files_limit() -> None:
    """Raise the soft limit of open files to the hard one (up to OPEN_FILES)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def install() -> None:
    """Lengthen daphne's listen queue and make autobahn's per-connection debug text lazy."""
    endpoints._TCPServerEndpoint.listen = _listen_with_backlog  # type: ignore[method-assign]
    autobahn_protocol.pformat = _pformat_for_logs  # type: ignore[assignment]


class HandshakeGate:
    """At most `limit` WebSocket handshakes of this worker in progress; the rest wait in line."""

    def __init__(self, limit: int = HANDSHAKES_AT_ONCE) -> None:
        self.limit = limit
        self.waiting = 0  # handshakes in line (chat_handshake_queue)
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.limit), loop
        return self._slots

    async def admit(self, socket: Any) -> Slot | None:
        """Wait for a slot for daphne's `socket`; None if the peer left meanwhile (then there is
        nothing to do)."""
        slots = self._semaphore()
        if not slots.locked():
            await slots.acquire()  # a slot is free: no wait, and no clock to pause
            return Slot(slots)
        timeout = _pause_handshake_clocks(socket)
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        slot = Slot(slots)
        if socket is not None and socket.state == socket.STATE_CLOSED:
            slot.release()
            return None
        _restart_handshake_clocks(socket, timeout)
        return slot


class Slot:
    """One admitted handshake; `release` (idempotent) lets the next one in."""

    __slots__ = ("_slots",)

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots: asyncio.Semaphore | None = slots

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()
            self._slots = None


def _pause_handshake_clocks(socket: Any) -> float | None:
    """Stop the two clocks that refuse a socket still connecting after daphne's
    `--websocket_connect_timeout`: autobahn's open-handshake timer (it drops the connection) and
    daphne's own check (403), which measures from `socket_opened`. Returns the timer's length."""
    if socket is None:
        return None
    socket.socket_opened = math.inf  # daphne: not connecting for too long, whatever the time
    call = getattr(socket, "openHandshakeTimeoutCall", None)
    if call is None:
        return None
    call.cancel()
    socket.openHandshakeTimeoutCall = None
    return float(socket.openHandshakeTimeout)


def _restart_handshake_clocks(socket: Any, timeout: float | None) -> None:
    if socket is None:
        return
    socket.socket_opened = time.time()
    if timeout and socket.state == socket.STATE_CONNECTING:
        socket.openHandshakeTimeoutCall = socket.factory._batched_timer.call_later(
            timeout, socket.onOpenHandshakeTimeout
        )


gate = HandshakeGate()
Gauge(
    "chat_handshake_queue", "WebSocket handshakes of this worker waiting in line for a slot."
).set_function(lambda: gate.waiting)
