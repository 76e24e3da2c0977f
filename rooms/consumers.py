"""The WebSocket endpoint /ws/chat/: transport only; the rules live in services.

One connection per browser tab carries every room of its user. Connections have no channel-layer
channel of their own: the worker's Hub (rooms/fanout.py) writes room events to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatsite import crowds, lean_sockets, prepared_frames
from chatsite.bounded_sockets import BoundedWebSocketProtocol

from . import fanout, presence, protocol, ratelimit, selectors, services
from .models import Room
from .protocol import ProtocolError

logger = logging.getLogger(__name__)
LIMITS = settings.CHAT

Handler = Callable[["ChatConsumer", dict[str, Any]], Awaitable[None]]


def _db(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return database_sync_to_async(func)


# The Room instances this worker's sockets hold, one per room: a user in ten rooms with three
# tabs would otherwise keep thirty copies. Rules that may change (archiving) are checked in the
# database, never on these.
_rooms: weakref.WeakValueDictionary[str, Room] = weakref.WeakValueDictionary()


def _shared(room: Room) -> Room:
    """This worker's copy of the room (a room deleted and made again under its slug replaces
    the copy)."""
    known = _rooms.get(room.slug)
    if known is not None and known.pk == room.pk:
        return known
    _rooms[room.slug] = room
    return room


class ChatConsumer(AsyncWebsocketConsumer):
    """A signed-in user's tab: parses frames, calls services, writes replies."""

    hub: fanout.Hub
    handlers: dict[str, Handler] = {}
    # This socket's frame budget (see `_pace`); class defaults until its first frame.
    _pace_tokens = float(LIMITS["SOCKET_FRAME_BURST"])
    _pace_at = 0.0
    # When this socket last relayed `typing`, per room pk; made on its first `typing`.
    _typing_at: dict[int, float] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the socket: like AsyncConsumer's, minus what a hub-fed socket does not use.

        No channel-layer channel (the Hub fans out, see the module docstring), no extra task
        per socket to await it, and no database-thread hop per frame to close old connections
        (every query here goes through database_sync_to_async, which does that already).
        """
        self.scope = scope
        self.base_send = send
        self.socket = prepared_frames.socket_behind(send)
        bounded = self.socket if isinstance(self.socket, BoundedWebSocketProtocol) else None
        lean_sockets.trim_queue(receive)
        try:
            while True:
                message = await receive()
                if bounded is not None:
                    bounded.frame_taken()
                    if message["type"] == "websocket.receive":
                        # A client that asks without reading gets its next answer once it has
                        # read the last one (chatsite/bounded_sockets.py).
                        await bounded.wait_for_output()
                await getattr(self, get_handler_name(message))(message)
        except StopConsumer:
            pass

    async def connect(self) -> None:
        """Refuse anonymous or inactive users (HTTP 403), else greet with `hello`."""
        try:
            await self._connect()
        finally:
            crowds.handshake_done(self.scope)

    async def _connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close()
            return
        self.user = user
        self.user_id: int = user.pk
        self.username: str = user.get_username()
        self.conn_id = uuid.uuid4().hex
        self.session_key: str | None = self.scope.get("session_key")
        self.rooms: dict[str, Room] = {}
        # Times of recent malformed frames; made on the first one (most sockets never send one).
        self.malformed: deque[float] | None = None
        self.closed = False

        self.hub = await fanout.Hub.get()
        try:
            if self.hub.draining or not await self.hub.wait_ready():
                raise ConnectionError("this worker cannot reach the channel layer")
            # Held before the rooms are read, so nothing published meanwhile passes it by.
            self.hub.hold(self)
            memberships, lean_user = await _db(selectors.connection_state)(user)
        except Exception:
            # The handshake was fine; this worker is not: go elsewhere (or retry) and resume.
            logger.warning("refusing a socket: worker unavailable", exc_info=True)
            self.hub.unregister(self)
            await self.accept()
            await self.close_with(protocol.CLOSE_SHUTDOWN)
            return
        if lean_user is None or self.closed:
            # Deactivated (or signed out) while connecting: refuse the handshake.
            self.hub.unregister(self)
            await self.close_with(protocol.CLOSE_REVOKED)
            return
        # The socket keeps the lean copy; the full user of the handshake can go.
        self.user = self.scope["user"] = user = lean_user
        await self.accept()
        if self.socket is not None:
            # Open now: what daphne kept of the handshake goes (the scope's headers too).
            lean_sockets.release_handshake(self.socket)
        try:
            first = await presence.backend().connect(self.user_id, self.conn_id)
        except presence.TooManySockets:
            self.hub.unregister(self)
            await self.close_with(protocol.CLOSE_TOO_MANY_SOCKETS)
            return
        except Exception:
            # Presence failed in a way it does not handle itself: the socket works without.
            logger.warning("presence unavailable", exc_info=True)
            first = False
        hello = protocol.encode(
            {
                "type": "hello",
                "user": self.username,
                "rooms": [
                    protocol.room_payload(m.room, viewer=user, last_read=m.last_read)
                    for m in memberships
                ],
            }
        )
        for m in memberships:
            self.rooms[m.room.slug] = _shared(m.room)
        await self.write(hello)
        await self.hub.release(self, [m.room_id for m in memberships])
        if first:
            # The rooms just read: no query, so no database-thread hop.
            services.announce_presence(
                user_id=self.user_id,
                username=self.username,
                event="online",
                rooms=[(m.room_id, m.room.slug) for m in memberships],
            )

    async def disconnect(self, code: int) -> None:
        """Forget the connection; the user's last one going takes them offline."""
        self.closed = True
        if not hasattr(self, "hub"):
            return
        self.hub.unregister(self)
        try:
            if self.hub.draining:
                # The user reconnects on another worker at once; letting this connection
                # expire from presence in a few seconds (instead of removing it) spares
                # everyone an offline/online flicker.
                await presence.backend().linger(self.user_id, self.conn_id)
            elif await presence.backend().disconnect(self.user_id, self.conn_id):
                await _db(services.announce_presence)(
                    user_id=self.user_id, username=self.username, event="offline"
                )
        except Exception:
            logger.warning("presence unavailable", exc_info=True)

    # --- what the hub calls -----------------------------------------------------------------

    async def write(self, frame: str) -> None:
        """Write an already-encoded frame (never an empty one: daphne drops those)."""
        if not self.closed and frame:
            await self.base_send({"type": "websocket.send", "text": frame})

    def push(self, frame: prepared_frames.PreparedFrame) -> bool:
        """Write a frame framed once for many sockets, straight to the transport if it can."""
        return self.closed or prepared_frames.write(self.socket, frame)

    async def close_with(self, code: int) -> None:
        """Close the socket (before the handshake is accepted, that refuses it: HTTP 403)."""
        if not self.closed:
            self.closed = True
            await self.close(code)

    # --- client frames ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one frame, run its handler, and answer errors with an `error` frame."""
        if self.closed:
            return  # the server closed the socket; frames still in flight are not acted on
        await self._pace()
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw) > LIMITS["MAX_FRAME_BYTES"] // 4 and (
            len(raw.encode() if isinstance(raw, str) else raw) > LIMITS["MAX_FRAME_BYTES"]
        ):
            await self.close_with(protocol.CLOSE_TOO_BIG)
            return
        ref = None
        try:
            frame = protocol.parse(text_data, bytes_data)
            ref = frame.get("ref")
            await self.handlers[frame["type"]](self, frame)
        except ProtocolError as exc:
            await self.reply_error(exc.code, exc.detail, exc.ref)
            if exc.code in protocol.MALFORMED_CODES:
                await self._count_malformed()
        except services.ChatError as exc:
            await self.reply_error(exc.code, exc.detail, ref)
        except Exception:
            logger.exception("frame failed")
            await self.reply_error(protocol.INTERNAL, "The server failed; retrying is safe.", ref)

    async def reply(self, payload: dict[str, Any], ref: str | None = None) -> None:
        if ref is not None:
            payload["ref"] = ref
        await self.write(protocol.encode(payload))

    async def reply_error(self, code: str, detail: str, ref: str | None) -> None:
        await self.write(protocol.encode(protocol.error(code, detail, ref)))

    async def _count_malformed(self) -> None:
        now = time.monotonic()
        if self.malformed is None:
            self.malformed = deque()
        window = self.malformed
        window.append(now)
        while window and window[0] < now - LIMITS["ABUSE_WINDOW_SECONDS"]:
            window.popleft()
        if len(window) > LIMITS["ABUSE_FRAMES"]:
            await self.close_with(protocol.CLOSE_ABUSE)

    async def _pace(self) -> None:
        """At most SOCKET_FRAMES_PER_SECOND frames of this socket a second (SOCKET_FRAME_BURST
        at once): a faster client's frames wait, in the end in its own kernel (TCP pushes
        back), whatever their type."""
        rate = LIMITS["SOCKET_FRAMES_PER_SECOND"]
        now = time.monotonic()
        tokens = min(LIMITS["SOCKET_FRAME_BURST"], self._pace_tokens + (now - self._pace_at) * rate)
        if tokens < 1:
            await asyncio.sleep((1 - tokens) / rate)
            now, tokens = time.monotonic(), 1.0
        self._pace_tokens, self._pace_at = tokens - 1, now

    async def room(self, slug: str) -> Room:
        room = self.rooms.get(slug)
        if room is None:
            room = _shared(await _db(services.get_room)(slug))
            self.rooms[slug] = room
        return room

    async def _check_rate(self) -> None:
        """Take one of the user's actions (send, direct, edit, delete, join, leave), or
        answer `rate_limited`."""
        if not await ratelimit.allow(self.user_id):
            raise services.RateLimited("Too many messages: slow down and retry shortly.")

    async def _pace_queries(self) -> None:
        """Wait for one of the user's queries (history, read): across all their tabs, a client
        asking faster waits its turn instead of taking the worker's database thread."""
        await ratelimit.wait_for(self.user_id, ratelimit.queries())

    # --- handlers, one per frame type -------------------------------------------------------

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.reply({"type": "pong"}, frame.get("ref"))

    async def on_join(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        # Fresh from the database: the reply carries the room's current last_seq.
        room = await _db(services.get_room)(frame["room"])
        self.rooms[room.slug] = _shared(room)
        membership, _ = await _db(services.join_room)(
            user=self.user, room=room, origin=self.conn_id
        )
        self.hub.subscribe(self, room.pk)
        members, count = await _db(selectors.listed_members)(room)
        online = await presence.backend().online(pk for pk, _ in members)
        joined = {
            "type": "joined",
            "room": protocol.room_payload(room, viewer=self.user),
            "members": [name for _, name in members],
            "online": [name for pk, name in members if pk in online],
        }
        if count > len(members):
            joined["member_count"] = count  # a room of thousands lists its first members
        await self.reply(joined, frame.get("ref"))

    async def on_leave(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        room = await self.room(frame["room"])
        await _db(services.leave_room)(user=self.user, room=room, origin=self.conn_id)
        self.hub.unsubscribe(self, room.pk)
        await self.reply({"type": "left", "room": room.slug}, frame.get("ref"))

    async def on_send(self, frame: dict[str, Any]) -> None:
        services.clean_body(frame["body"])
        await self._check_rate()
        room = await self.room(frame["room"])
        result = await _db(services.post_message)(
            author=self.user, room=room, body=frame["body"], ref=frame.get("ref")
        )
        await self._ack(room.slug, result.message, frame.get("ref"))

    async def on_direct(self, frame: dict[str, Any]) -> None:
        services.clean_body(frame["body"])
        await self._check_rate()
        room, result = await _db(services.send_direct)(
            sender=self.user, recipient_name=frame["to"], body=frame["body"], ref=frame.get("ref")
        )
        self.rooms[room.slug] = _shared(room)
        # Subscribe now: the hub's `room_added` may arrive after the client's next frame.
        self.hub.subscribe(self, room.pk)
        await self._ack(room.slug, result.message, frame.get("ref"))

    async def _ack(self, slug: str, message: Any, ref: str | None) -> None:
        await self.reply(
            {
                "type": "ack",
                "room": slug,
                "id": message.pk,
                "seq": message.seq,
                "created_at": protocol.timestamp(message.created_at),
            },
            ref,
        )

    async def on_history(self, frame: dict[str, Any]) -> None:
        await self._pace_queries()
        room = await self.room(frame["room"])
        page = await _db(services.history)(
            user=self.user,
            room=room,
            before=frame.get("before"),
            after=frame.get("after"),
            limit=frame.get("limit"),
        )
        await self.reply({"type": "history", **page.as_dict()}, frame.get("ref"))

    async def on_read(self, frame: dict[str, Any]) -> None:
        await self._pace_queries()
        room = await self.room(frame["room"])
        membership = await _db(services.mark_read)(
            user=self.user, room=room, seq=frame["seq"], origin=self.conn_id
        )
        await self.reply(protocol.unread_payload(room, membership.last_read), frame.get("ref"))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        room = self.rooms.get(frame["room"])
        if room is None or not self.hub.is_subscribed(self, room.pk):
            # Not one of the socket's rooms (yet): asking the database is a query.
            await self._pace_queries()
            room = await self.room(frame["room"])
            await _db(services.membership_of)(self.user, room)
            self.hub.subscribe(self, room.pk)
        # Relayed once per TYPING_INTERVAL_SECONDS per user and room; repeats are dropped
        # silently, first by this socket (no Redis round trip), then across tabs and workers.
        now = time.monotonic()
        if self._typing_at is None:
            self._typing_at = {}
        if now - self._typing_at.get(room.pk, -1e9) < LIMITS["TYPING_INTERVAL_SECONDS"]:
            return
        self._typing_at[room.pk] = now
        if not await ratelimit.first_typing(self.user_id, room.pk):
            return
        typing = protocol.encode({"type": "typing", "room": room.slug, "user": self.username})
        fanout.publish([{"room": room.pk, "skip_user": self.user_id, "frame": typing}])

    async def on_edit(self, frame: dict[str, Any]) -> None:
        services.clean_body(frame["body"])
        await self._check_rate()
        await _db(services.edit_message)(user=self.user, message_id=frame["id"], body=frame["body"])

    async def on_delete(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        await _db(services.delete_message)(user=self.user, message_id=frame["id"])


ChatConsumer.handlers = {
    kind: getattr(ChatConsumer, f"on_{kind}") for kind in protocol.FRAME_FIELDS
}
