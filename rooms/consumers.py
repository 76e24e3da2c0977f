"""The WebSocket endpoint /ws/chat/: a transport for the chat session, nothing more.

One connection per browser tab carries every room of its user; the session (rooms/session.py)
does the chat. Connections have no channel-layer channel of their own: the worker's Hub
(rooms/fanout.py) writes room events to the session.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from .session import ChatSession
from .sockets import server_socket


class ChatConsumer(AsyncWebsocketConsumer):
    """A tab's WebSocket: hands its frames to a `ChatSession` and sends the session's out."""

    session: ChatSession | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the socket: like AsyncConsumer's, minus what a hub-fed socket does not use.

        No channel-layer channel (the Hub fans out), no extra task per socket to await it, and
        no database-thread hop per frame to close old connections (every query goes through
        database_sync_to_async, which does that already).
        """
        self.scope = scope
        self.base_send = send
        server = server_socket(scope)
        try:
            while True:
                message = await receive()
                server.frame_taken()
                if message["type"] == "websocket.receive":
                    # A client that asks without reading gets its next answer once it has read
                    # the last one (rooms/sockets.py).
                    await server.wait_for_output()
                await getattr(self, get_handler_name(message))(message)
        except StopConsumer:
            pass

    async def connect(self) -> None:
        """Start the session: `hello`, or the handshake refused."""
        server = server_socket(self.scope)
        # The session keeps the user; the scope need not (every idle socket would hold both).
        user = self.scope.pop("user", None)
        self.session = ChatSession(self, server, user, self.scope.get("session_key"))
        try:
            await self.session.open()
        finally:
            server.handshake_over()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is not None:
            await self.session.receive(text_data, bytes_data)

    async def disconnect(self, code: int) -> None:
        if self.session is not None:
            await self.session.end()

    def hello_fields(self) -> dict[str, Any]:
        return {}

    async def send_text(self, text: str) -> None:
        """The session's frames out (`Transport`)."""
        await self.base_send({"type": "websocket.send", "text": text})
