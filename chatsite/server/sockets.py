"""Each WebSocket's `ServerSocket` under daphne (rooms/sockets.py), and the ASGI middleware that
gives it one: the only place where the chat's sockets meet daphne's."""

from __future__ import annotations

from typing import Any

from rooms.sockets import SCOPE_KEY, Broadcast, PlainSocket

from . import crowds, lean_sockets, prepared_frames
from .crowds import Slot
from .limits import BoundedWebSocketProtocol
from .switch import fell_back, tuned


class LimitedSocket(PlainSocket):
    """A daphne socket with the limits of chatsite/server/limits.py, and no fast path."""

    __slots__ = ("protocol",)

    def __init__(self, protocol: BoundedWebSocketProtocol) -> None:
        self.protocol = protocol

    def frame_taken(self) -> None:
        self.protocol.frame_taken()

    async def wait_for_output(self) -> None:
        await self.protocol.wait_for_output()


class TunedSocket(LimitedSocket):
    """With the fast paths: broadcasts framed once, the handshake let go, crowds in turn."""

    __slots__ = ("slot",)

    def __init__(self, protocol: BoundedWebSocketProtocol, slot: Slot) -> None:
        super().__init__(protocol)
        self.slot = slot

    def push(self, frame: Broadcast) -> bool:
        try:
            return prepared_frames.write(self.protocol, frame)
        except Exception:
            fell_back("a broadcast framed once could not be written")
            return False

    def handshake_over(self) -> None:
        self.slot.release()

    def opened(self) -> None:
        try:
            lean_sockets.release_handshake(self.protocol)
        except Exception:
            fell_back("what daphne keeps of a handshake could not be let go")


class ServerSocketMiddleware:
    """Give the WebSocket its ServerSocket in the scope; tuned, admit it in turn first.

    It wraps the session middleware (chatsite/websocket_auth.py), so a crowd's database reads
    wait in line too. Under another server, or another protocol class, it passes through.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        protocol = prepared_frames.socket_behind(send)
        if not isinstance(protocol, BoundedWebSocketProtocol):
            return await self.inner(scope, receive, send)
        socket: LimitedSocket
        if tuned():
            slot = await crowds.gate.admit(protocol)
            if slot is None:
                return None  # the peer left while waiting
            lean_sockets.trim_queue(receive)
            socket = TunedSocket(protocol, slot)
        else:
            socket = LimitedSocket(protocol)
        scope[SCOPE_KEY] = socket
        try:
            return await self.inner(scope, receive, send)
        finally:
            socket.handshake_over()
