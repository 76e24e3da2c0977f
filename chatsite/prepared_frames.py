"""One WebSocket frame built once and written to every local socket of a room, under daphne.

An ASGI `websocket.send` costs daphne and autobahn a dispatch, a UTF-8 encode, the framing and
two log calls whose arguments are built even when debug logging is off: about a third of a
worker's event loop when fanning out (docs/performance.md). A `PreparedFrame` is framed once
with autobahn's own `PreparedMessage` (its broadcast API) and `write` hands those bytes to the
socket's transport. It writes only where the plain path would send the same bytes at once: an
open daphne socket without compression and without frames queued in autobahn. Elsewhere it
returns False and the caller sends through ASGI as usual, which keeps every other server, the
test communicators, closing sockets and the handshake on the standard path.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage

from chatsite.bounded_sockets import BoundedWebSocketProtocol

_OPEN = WebSocketServerProtocol.STATE_OPEN


class PreparedFrame:
    """A text frame, encoded for the wire on first use."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            message = PreparedMessage(
                self.text.encode(), isBinary=False, applyMask=False, doNotCompress=True
            )
            self._wire = message.payloadHybi
        return self._wire


def socket_behind(send: Any) -> WebSocketServerProtocol | None:
    """daphne's protocol object behind an ASGI `send` callable, or None under anything else.

    daphne gives each connection `partial(server.handle_reply, protocol)`.
    """
    if (
        isinstance(send, partial)
        and send.args
        and isinstance(send.args[0], WebSocketServerProtocol)
    ):
        return send.args[0]
    return None


def write(socket: WebSocketServerProtocol | None, frame: PreparedFrame) -> bool:
    """Write the frame to an open socket now; False if it must go through ASGI instead."""
    if socket is None or socket.state != _OPEN:
        return False
    transport: Any = socket.transport  # Twisted's TCP connection (zope-typed as ITransport)
    if transport is None or socket._perMessageCompress is not None or socket.send_queue:
        return False
    if isinstance(socket, BoundedWebSocketProtocol):
        socket.write_prepared(frame.wire)  # within its backlog cap
    else:
        transport.write(frame.wire)
    return True
