"""What one WebSocket may cost its worker under daphne: bounded input, bounded output.

daphne reads whatever a client sends into an unbounded queue, buffers whatever the application
writes in Twisted's unbounded send buffer, and answers a frame over its own 1 MiB cap by
dropping the connection without a close code. One signed-in client could so grow a worker by
gigabytes (docs/security.md). `BoundedWebSocketProtocol` is daphne's protocol with three limits,
built on public hooks only (autobahn's frame callbacks, Twisted's producer/consumer interfaces,
daphne's `application_queue`):

- **Input.** Past `INPUT_QUEUE_FRAMES` frames waiting for the application, the protocol stops
  reading the socket (TCP pushes back on the client) until the application has taken half of
  them. A frame larger than `MAX_FRAME_BYTES` is refused as its header arrives: close 4009, and
  its payload is discarded as it streams in instead of being held.
- **Output.** The protocol is the transport's streaming producer: Twisted pauses it when its send
  buffer passes 64 KiB and resumes it when the buffer is empty. The application waits for that
  before answering the socket's next frame (`wait_for_output`), so a client that asks without
  reading holds one reply at most. What is pushed to it meanwhile (room events) counts towards
  `SOCKET_BACKLOG_BYTES`; past it the socket is closed with 4013 (the client resumes by `seq`)
  and dropped `BACKLOG_CLOSE_SECONDS` later if it still does not read, which frees its buffers.
- The application learns of both closes through daphne's usual `websocket.disconnect`.
- With glibc, buffers of 256 KiB and more get mappings of their own, so what large frames took
  goes back to the system once freed (`_return_large_buffers`).

`install()` makes daphne build its WebSockets with this class, with or without the fast paths
(chatsite/server/__init__.py): it rebinds nothing but the factory's public `protocol`. Under any
other server (tests' communicators) nothing changes, and the consumer's own checks still apply.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from daphne import ws_protocol
from django.conf import settings
from twisted.web.http import HTTPChannel

from rooms.protocol import CLOSE_SLOW_READER, CLOSE_TOO_BIG

logger = logging.getLogger(__name__)

LIMITS = settings.CHAT
# glibc's mallopt() parameter, and the size from which buffers get mappings of their own.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024


class BoundedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """daphne's WebSocket protocol with a bounded input queue, a bounded send backlog and
    oversized frames refused with 4009 (see the module docstring)."""

    # Class defaults: an idle socket keeps no per-instance state for them.
    reading_paused = False
    output_paused = False
    backlog = 0  # bytes pushed while the send buffer was full
    overflowed = False
    _sending_close = False
    _drained: asyncio.Future[None] | None = None
    _incoming = 0  # bytes of the message being received
    _oversized = False

    # --- input --------------------------------------------------------------------------------

    def onOpen(self) -> None:
        super().onOpen()
        transport: Any = self.transport
        try:
            producer = getattr(transport, "producer", None)
            channel = getattr(producer, "wrappedProtocol", producer)  # Twisted may wrap it
            if isinstance(channel, HTTPChannel):
                # The HTTP channel the socket was upgraded from: it never pauses an upgraded
                # connection (its request never ends), so it makes way for the socket, and
                # with it the request it holds goes (a fifth of an idle socket's memory).
                transport.unregisterProducer()
            if getattr(transport, "producer", None) is None:
                self.registerProducer(self, True)
        except Exception:
            # A Twisted unlike the tested one: the socket works, only without the output cap.
            logger.warning("socket output left unbounded", exc_info=True)

    def onMessageBegin(self, isBinary: bool) -> None:
        self._incoming = 0
        self._oversized = False
        super().onMessageBegin(isBinary)

    def onMessageFrameBegin(self, length: int) -> None:
        self._incoming += length
        if self._oversized:
            return
        if self._incoming > LIMITS["MAX_FRAME_BYTES"]:
            # Refused from its header: nothing of it is kept (autobahn would hold up to its own
            # cap, then drop the connection without a code).
            self._oversized = True
            if self.state == AutobahnProtocol.STATE_OPEN:
                self.sendClose(CLOSE_TOO_BIG)
            self._resume_reading()  # the client's close reply must get through
            return
        super().onMessageFrameBegin(length)

    def onMessageFrameData(self, payload: bytes) -> None:
        if not self._oversized:
            super().onMessageFrameData(payload)

    def onMessageFrameEnd(self) -> None:
        if not self._oversized:
            super().onMessageFrameEnd()

    def onMessageEnd(self) -> None:
        if not self._oversized:
            super().onMessageEnd()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        super().onMessage(payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if (
            queue is not None
            and not self.reading_paused
            and queue.qsize() >= LIMITS["INPUT_QUEUE_FRAMES"]
            and self.state == AutobahnProtocol.STATE_OPEN
        ):
            self.reading_paused = True
            self.transport.pauseProducing()

    def frame_taken(self) -> None:
        """The application took a frame: read again once half the queue is free."""
        if self.reading_paused:
            queue = getattr(self, "application_queue", None)
            if queue is None or queue.qsize() <= LIMITS["INPUT_QUEUE_FRAMES"] // 2:
                self._resume_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            transport: Any = self.transport
            if transport is not None and transport.connected and not transport.disconnecting:
                transport.resumeProducing()

    # --- output: Twisted's IPushProducer, as the transport's producer --------------------------

    def pauseProducing(self) -> None:
        self.output_paused = True

    def resumeProducing(self) -> None:
        self.output_paused = False
        self.backlog = 0
        self._wake()

    def stopProducing(self) -> None:
        self.output_paused = False
        self._wake()

    def _wake(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def wait_for_output(self) -> None:
        """Return once the send buffer has room (at once unless the client is behind)."""
        if self.output_paused and self.state == AutobahnProtocol.STATE_OPEN:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def admit_output(self, size: int) -> bool:
        """Count `size` bytes about to be written; False (and close 4013) past the backlog cap."""
        if self._sending_close:
            return True
        if self.overflowed:
            return False
        if self.output_paused:
            self.backlog += size
            if self.backlog > LIMITS["SOCKET_BACKLOG_BYTES"]:
                self._close_slow_reader()
                return False
        return True

    def _close_slow_reader(self) -> None:
        self.overflowed = True
        logger.info("closing a socket that does not read (%d bytes behind)", self.backlog)
        if self.state == AutobahnProtocol.STATE_OPEN:
            # Its close frame waits behind what is buffered: a slow reader gets to it, and one
            # that never reads is dropped when the close handshake times out.
            self.closeHandshakeTimeout = LIMITS["BACKLOG_CLOSE_SECONDS"]
            self._sending_close = True
            try:
                self.sendClose(CLOSE_SLOW_READER)
            finally:
                self._sending_close = False
        self._resume_reading()
        self._wake()

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if self.admit_output(len(data)):
            super().sendData(data, sync, chopsize)

    def write_prepared(self, wire: bytes) -> None:
        """Write an already framed message (chatsite/server/prepared_frames.py), within the cap."""
        if self.admit_output(len(wire)):
            self.transport.write(wire)


def _return_large_buffers() -> None:
    """Let glibc give large freed buffers back to the system at once.

    glibc serves allocations above a threshold with their own mappings, returned on free; but it
    raises that threshold to the size of the largest buffer freed (up to 32 MiB), after which
    such buffers come from the heap and stay with the process. A worker's large buffers are
    frames and send buffers of a megabyte or so: a fixed threshold returns them when the sockets
    that needed them are gone. Elsewhere than glibc, nothing changes.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        logger.debug("mallopt unavailable; large buffers stay with the allocator")


def install() -> None:
    """Make daphne build its WebSockets as `BoundedWebSocketProtocol` (idempotent)."""
    ws_protocol.WebSocketFactory.protocol = BoundedWebSocketProtocol
    _return_large_buffers()
