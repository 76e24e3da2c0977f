"""One WebSocket frame built once and written to every local socket of a room, under daphne.

An ASGI `websocket.send` costs daphne and autobahn a dispatch, a UTF-8 encode, the framing and
two log calls whose arguments are built even when debug logging is off: about a third of a
worker's event loop when fanning out (docs/performance.md). A broadcast is framed once with
autobahn's own `PreparedMessage` (its broadcast API), and `write` hands those bytes to the
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

from rooms.sockets import Broadcast

from .limits import BoundedWebSocketProtocol

_OPEN = WebSocketServerProtocol.STATE_OPEN


def wire(frame: Broadcast) -> bytes:
    """The frame as an unmasked, uncompressed text frame: built on first use, then kept."""
    if frame.wire is None:
        message = PreparedMessage(
            frame.text.encode(), isBinary=False, applyMask=False, doNotCompress=True
        )
        frame.wire = message.payloadHybi
    data: bytes = frame.wire
    return data


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


def write(socket: WebSocketServerProtocol, frame: Broadcast) -> bool:
    """Write the frame to an open socket now; False if it must go through ASGI instead."""
    if socket.state != _OPEN:
        return False
    transport: Any = socket.transport  # Twisted's TCP connection (zope-typed as ITransport)
    if transport is None or socket._perMessageCompress is not None or socket.send_queue:
        return False
    if isinstance(socket, BoundedWebSocketProtocol):
        socket.write_prepared(wire(frame))  # within its backlog cap
    else:
        transport.write(wire(frame))
    return True
