"""What one HTTP stream (rooms/streams.py) may cost its worker under daphne: bounded output.

daphne writes a streamed response into Twisted's unbounded send buffer: a client that opens a
stream and never reads it would hold every event of its rooms in the worker's memory. A
`LimitedStream` is the response's streaming producer (Twisted's public producer interface on
the request): Twisted pauses it when the send buffer passes 64 KiB and resumes it once it has
drained. Events written meanwhile count towards SOCKET_BACKLOG_BYTES, as for a WebSocket
(limits.py); past it the stream ends with 4013 and the connection is dropped
BACKLOG_CLOSE_SECONDS later if its client still has not read that far. The session waits for the
buffer to drain before handling the stream's next posted frame (`wait_for_output`).

With the server tuning on, a `TunedStream` also writes broadcasts straight to the response
(`write_now`): a fast path, as for sockets (prepared_frames.py).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from daphne.http_protocol import WebRequest
from django.conf import settings

from rooms.sockets import SCOPE_KEY, PlainStream

from .switch import fell_back, tuned

LIMITS = settings.CHAT


class LimitedStream(PlainStream):
    """A daphne HTTP response streamed with a bounded send backlog."""

    __slots__ = ("request", "paused", "backlog", "drained", "gone")

    def __init__(self, request: WebRequest) -> None:
        self.request = request
        self.paused = False
        self.backlog = 0  # bytes written while the send buffer was full
        self.drained: asyncio.Future[None] | None = None
        self.gone = False
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._finished)

    # --- Twisted's IPushProducer ----------------------------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.backlog = 0
        self._wake()

    def stopProducing(self) -> None:
        self._finished(None)

    def _finished(self, result: Any) -> None:
        """The response ended or its connection was lost: nothing waits for it any more."""
        self.gone = True
        self.paused = False
        self._wake()
        return None  # a lost connection is expected, not an error to log

    def _wake(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # --- ServerStream ---------------------------------------------------------------------------

    def admit(self, size: int) -> bool:
        if self.paused:
            self.backlog += size
            return self.backlog <= LIMITS["SOCKET_BACKLOG_BYTES"]
        return True

    async def wait_for_output(self) -> None:
        if self.paused and not self.gone:
            if self.drained is None:
                self.drained = asyncio.get_running_loop().create_future()
            await self.drained

    def finishing(self, overflowed: bool) -> None:
        request = self.request
        if request.channel is None:
            return  # the connection is already gone
        if request.producer is self:
            request.unregisterProducer()
        if overflowed:
            from twisted.internet import reactor as installed  # daphne's, installed by now

            reactor: Any = installed  # zope-typed
            transport = request.channel.transport
            reactor.callLater(LIMITS["BACKLOG_CLOSE_SECONDS"], _drop_if_connected, transport)


class TunedStream(LimitedStream):
    """With the fast path: a broadcast's event is written straight to the response, as daphne
    would write it, without an ASGI message and daphne's dispatch per stream."""

    __slots__ = ()

    def write_now(self, data: bytes) -> bool:
        request = self.request
        if self.gone or request.finished or request.channel is None:
            return True  # nobody to write to: the stream's end is on its way
        if not request.startedWriting:
            return False
        if self.paused and self.backlog + len(data) > LIMITS["SOCKET_BACKLOG_BYTES"]:
            return False  # over the cap: the ASGI path ends the stream with 4013
        try:
            self.admit(len(data))
            request.write(data)
        except Exception:
            fell_back("an event could not be written straight to its stream")
            return False
        return True


def _drop_if_connected(transport: Any) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()


def request_behind(send: Any) -> WebRequest | None:
    """daphne's request behind an ASGI `send` (`partial(server.handle_reply, request)`)."""
    if isinstance(send, partial) and send.args and isinstance(send.args[0], WebRequest):
        return send.args[0]
    return None


class ServerStreamMiddleware:
    """Give the HTTP stream its LimitedStream in the scope; under another server, pass through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        request = request_behind(send)
        if request is not None and request.channel is not None:
            scope[SCOPE_KEY] = TunedStream(request) if tuned() else LimitedStream(request)
        return await self.inner(scope, receive, send)
