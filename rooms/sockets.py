"""What the chat asks of the server beneath a connection beyond ASGI; rooms/ imports no server.

The site's composition root (chatsite/asgi.py) gives each WebSocket a `ServerSocket`, and each
HTTP stream (rooms/streams.py) a `ServerStream`, in its scope (under SCOPE_KEY). Under daphne
they write broadcasts framed once straight to the transport and bound what a client may cost
(chatsite/server/); anywhere else, the test communicators included, `PlainSocket` and
`PlainStream` stand in and everything goes through ASGI.
"""

from __future__ import annotations

from typing import Any, Protocol

SCOPE_KEY = "chat.server_socket"


class Broadcast:
    """One encoded server frame written to many connections; the server may keep its wire form
    (framed once for all sockets) in `wire`, the HTTP stream its event (`rooms/streams.py`) in
    `event`."""

    __slots__ = ("text", "wire", "event")

    def __init__(self, text: str) -> None:
        self.text = text
        self.wire: Any = None
        self.event: bytes | None = None


class ServerSocket(Protocol):
    """A WebSocket as its server holds it."""

    def push(self, frame: Broadcast) -> bool:
        """Write the frame at once if the server can; False: send it through ASGI instead."""
        ...

    def handshake_over(self) -> None:
        """The handshake ended (greeted or refused): the next socket may be admitted."""
        ...

    def opened(self) -> None:
        """The socket is open: the server may let go of what it kept of the handshake."""
        ...

    def frame_taken(self) -> None:
        """The application took a client frame off the socket's queue."""
        ...

    async def wait_for_output(self) -> None:
        """Return once the client has read what it was sent (at once unless it is behind)."""
        ...


class PlainSocket:
    """ASGI only: nothing beyond it to ask of the server."""

    __slots__ = ()

    def push(self, frame: Broadcast) -> bool:
        return False

    def handshake_over(self) -> None:
        return None

    def opened(self) -> None:
        return None

    def frame_taken(self) -> None:
        return None

    async def wait_for_output(self) -> None:
        return None


class ServerStream(ServerSocket, Protocol):
    """An HTTP response streamed for as long as the connection lasts, as its server holds it."""

    def admit(self, size: int) -> bool:
        """Count `size` bytes about to be written; False past the backlog cap: the stream must
        close (4013)."""
        ...

    def finishing(self, overflowed: bool) -> None:
        """The response is about to end; `overflowed`: its client stopped reading, so drop the
        connection if it still has not read the end a little later."""
        ...

    def write_now(self, data: bytes) -> bool:
        """Write part of the body at once if the server can (within the backlog cap); False:
        send it through ASGI instead."""
        ...


class PlainStream(PlainSocket):
    """ASGI only: writes are not counted."""

    __slots__ = ()

    def admit(self, size: int) -> bool:
        return True

    def finishing(self, overflowed: bool) -> None:
        return None

    def write_now(self, data: bytes) -> bool:
        return False


PLAIN = PlainSocket()
PLAIN_STREAM = PlainStream()


def server_socket(scope: dict[str, Any]) -> ServerSocket:
    """The scope's ServerSocket, or the plain one."""
    socket: ServerSocket = scope.get(SCOPE_KEY, PLAIN)
    return socket


def server_stream(scope: dict[str, Any]) -> ServerStream:
    """The scope's ServerStream, or the plain one."""
    stream: ServerStream = scope.get(SCOPE_KEY, PLAIN_STREAM)
    return stream
