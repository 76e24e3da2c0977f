"""One signed-in connection of the chat, whatever carries its frames.

A `ChatSession` is the chat's side of a connection: it greets the user, parses client frames,
calls services, writes replies, and is what the worker's Hub (rooms/fanout.py) delivers room
events to. The transport beneath it (the WebSocket consumer of rooms/consumers.py, or the HTTP
stream of rooms/streams.py) only moves text both ways: a transport adds no chat logic.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from . import fanout, metrics, moderation, presence, protocol, ratelimit, selectors, services
from .models import Room
from .protocol import ProtocolError
from .sockets import Broadcast, ServerSocket

logger = logging.getLogger(__name__)
LIMITS = settings.CHAT

Handler = Callable[["ChatSession", dict[str, Any]], Awaitable[None]]


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


class Transport(Protocol):
    """What a session needs of the connection that carries it."""

    async def accept(self) -> None:
        """Open the connection (a WebSocket's handshake answered)."""
        ...

    async def send_text(self, text: str) -> None:
        """Send one encoded server frame."""
        ...

    async def close(self, code: int | None = None) -> None:
        """Close with this code; before `accept`, refuse (HTTP 403)."""
        ...

    def hello_fields(self) -> dict[str, Any]:
        """What the transport adds to `hello` (an HTTP stream's ID)."""
        ...


class ChatSession:
    """A signed-in user's connection: parses frames, calls services, writes replies.

    Slots, not a dict: every idle connection of a worker holds one.
    """

    __slots__ = (
        "transport",
        "server",
        "user",
        "user_id",
        "username",
        "conn_id",
        "session_key",
        "rooms",
        "malformed",
        "closed",
        "hub",
        "pace_tokens",
        "pace_at",
        "typing_at",
    )
    handlers: dict[str, Handler] = {}
    hub: fanout.Hub  # this worker's, from `open()` on

    def __init__(
        self, transport: Transport, server: ServerSocket, user: Any, session_key: str | None
    ) -> None:
        self.transport = transport
        self.server = server
        self.user = user
        self.user_id: int = 0
        self.username = ""
        self.conn_id = uuid.uuid4().hex
        self.session_key = session_key  # the HTTP session it was opened with (sign-out)
        self.rooms: dict[str, Room] = {}
        # Times of recent malformed frames; made on the first one (most never send one).
        self.malformed: deque[float] | None = None
        self.closed = False
        # This connection's frame budget (`_pace`), and when it last relayed `typing`, per room.
        self.pace_tokens = float(LIMITS["SOCKET_FRAME_BURST"])
        self.pace_at = 0.0
        self.typing_at: dict[int, float] | None = None

    async def open(self) -> None:
        """Greet the user with `hello`, or refuse the connection: 403 before it is accepted
        (anonymous, inactive), a close code after (4012, 4029, 4403)."""
        user = self.user
        if user is None or not user.is_authenticated or not user.is_active:
            await self.transport.close()
            return
        self.user_id = user.pk
        self.username = user.get_username()

        self.hub = await fanout.Hub.get()
        presence.watch(self.hub)
        try:
            if self.hub.draining or not await self.hub.wait_ready():
                raise ConnectionError("this worker cannot reach the channel layer")
            # Held (and the user's group joined) before the rooms are read, so nothing
            # published for the user meanwhile passes it by.
            await self.hub.hold(self)
            memberships, lean_user = await _db(selectors.connection_state)(user)
            joined = await self.hub.enter(self, [m.room_id for m in memberships])
            if joined:
                # What those rooms said before this worker was in their groups passed it by:
                # `hello` reports it, so the client asks for it.
                await _db(selectors.refresh_last_seq)([m.room for m in memberships], joined)
        except Exception:
            # The handshake was fine; this worker is not: go elsewhere (or retry) and resume.
            logger.warning("refusing a socket: worker unavailable", exc_info=True)
            self.hub.unregister(self)
            await self.transport.accept()
            await self.close_with(protocol.CLOSE_SHUTDOWN)
            return
        if lean_user is None or self.closed:
            # Deactivated (or signed out) while connecting: refuse the handshake.
            self.hub.unregister(self)
            await self.close_with(protocol.CLOSE_REVOKED)
            return
        # The session keeps the lean copy; the full user of the handshake can go.
        self.user = user = lean_user
        await self.transport.accept()
        self.server.opened()  # what the server kept of the handshake may go
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
            protocol.hello(
                self.username,
                [
                    protocol.room_payload(
                        m.room,
                        viewer=user,
                        last_read=m.last_read,
                        mentions=m.unread_mentions,
                        role=m.role,
                    )
                    for m in memberships
                ],
                **self.transport.hello_fields(),
            )
        )
        for m in memberships:
            self.rooms[m.room.slug] = _shared(m.room)
        await self.write(hello)
        await self.hub.release(self)
        if first:
            # The rooms just read: no query, so no database-thread hop.
            services.announce_presence(
                user_id=self.user_id,
                username=self.username,
                event="online",
                rooms=[(m.room_id, m.room.slug) for m in memberships],
            )

    async def end(self) -> None:
        """Forget the connection; the user's last one going takes them offline."""
        self.closed = True
        if getattr(self, "hub", None) is None:
            return  # refused before it reached the hub
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
            await self.transport.send_text(frame)

    def push(self, frame: Broadcast) -> bool:
        """Write a frame framed once for many sockets, straight to the transport if it can."""
        return self.closed or self.server.push(frame)

    async def close_with(self, code: int) -> None:
        """Close the socket (before the handshake is accepted, that refuses it: HTTP 403)."""
        if not self.closed:
            self.closed = True
            await self.transport.close(code)

    # --- client frames ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one client frame, run its handler, and answer errors with an `error` frame."""
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
            metrics.frame_received(frame["type"])
            ref = frame.get("ref")
            await self.handlers[frame["type"]](self, frame)
        except ProtocolError as exc:
            metrics.frame_received(None)
            await self.reply_error(exc.code, exc.detail, exc.ref)
            if exc.code in protocol.MALFORMED_CODES:
                await self._count_malformed()
        except services.ChatError as exc:
            await self.reply_error(exc.code, exc.detail, ref, **exc.fields)
        except Exception:
            logger.exception("frame failed")
            await self.reply_error(protocol.INTERNAL, "The server failed; retrying is safe.", ref)

    async def reply(self, payload: dict[str, Any], ref: str | None = None) -> None:
        if ref is not None:
            payload["ref"] = ref
        await self.write(protocol.encode(payload))

    async def reply_error(self, code: str, detail: str, ref: str | None, **fields: Any) -> None:
        await self.write(protocol.encode(protocol.error(code, detail, ref, **fields)))

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
        tokens = min(LIMITS["SOCKET_FRAME_BURST"], self.pace_tokens + (now - self.pace_at) * rate)
        if tokens < 1:
            await asyncio.sleep((1 - tokens) / rate)
            now, tokens = time.monotonic(), 1.0
        self.pace_tokens, self.pace_at = tokens - 1, now

    async def room(self, slug: str) -> Room:
        room = self.rooms.get(slug)
        if room is None:
            room = _shared(await _db(services.get_room)(slug))
            self.rooms[slug] = room
        return room

    async def _check_rate(self) -> None:
        """Take one of the user's actions (send, direct, edit, delete, react, join, leave, and
        the moderation frames), or answer `rate_limited`."""
        if not await ratelimit.allow(self.user_id):
            raise services.RateLimited("Too many messages: slow down and retry shortly.")

    async def _pace_queries(self) -> None:
        """Wait for one of the user's queries (history, read): across all their tabs, a client
        asking faster waits its turn instead of taking the worker's database thread."""
        await ratelimit.wait_for(self.user_id, ratelimit.queries())

    # --- handlers, one per frame type -------------------------------------------------------

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.reply(protocol.pong(), frame.get("ref"))

    async def on_join(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        # Fresh from the database: the reply carries the room's current last_seq.
        room = await _db(services.get_room)(frame["room"])
        self.rooms[room.slug] = _shared(room)
        membership, _ = await _db(services.join_room)(
            user=self.user, room=room, origin=self.conn_id
        )
        # In the room's group before the reply: the history the client asks next and the live
        # events after it leave no gap.
        await self.hub.follow(self, room.pk)
        members, count = await _db(selectors.listed_members)(room)
        roles = await _db(selectors.roles_in)(room)
        you = await _db(selectors.standing)(self.user, membership)
        online = await presence.backend().online(pk for pk, _ in members)
        joined = protocol.joined(
            protocol.room_payload(room, viewer=self.user),
            members=[name for _, name in members],
            online=[name for pk, name in members if pk in online],
            member_count=count,
            roles=roles,
            you=you,
        )
        await self.reply(joined, frame.get("ref"))

    async def on_leave(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        room = await self.room(frame["room"])
        await _db(services.leave_room)(user=self.user, room=room, origin=self.conn_id)
        self.hub.unsubscribe(self, room.pk)
        await self.reply(protocol.left(room.slug), frame.get("ref"))

    async def on_send(self, frame: dict[str, Any]) -> None:
        files = frame.get("attachments") or ()
        services.clean_body(frame["body"], may_be_empty=bool(files))
        await self._check_rate()
        room = await self.room(frame["room"])
        result = await _db(services.post_message)(
            author=self.user,
            room=room,
            body=frame["body"],
            ref=frame.get("ref"),
            reply_to=frame.get("reply_to"),
            attachments=files,
        )
        await self._ack(room.slug, result.message, frame.get("ref"))

    async def on_direct(self, frame: dict[str, Any]) -> None:
        services.clean_body(frame["body"])
        await self._check_rate()
        room, result = await _db(services.send_direct)(
            sender=self.user,
            recipient_name=frame["to"],
            body=frame["body"],
            ref=frame.get("ref"),
            reply_to=frame.get("reply_to"),
        )
        self.rooms[room.slug] = _shared(room)
        # Subscribe now: the hub's `room_added` may arrive after the client's next frame.
        # A new room for this connection: the message may have passed it by.
        await self.hub.follow(self, room.pk, catch_up_after=result.message.seq - 1)
        await self._ack(room.slug, result.message, frame.get("ref"))

    async def _ack(self, slug: str, message: Any, ref: str | None) -> None:
        await self.reply(protocol.ack(slug, message), ref)

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
        await self.reply(protocol.history(page), frame.get("ref"))

    async def on_read(self, frame: dict[str, Any]) -> None:
        await self._pace_queries()
        room = await self.room(frame["room"])
        unread = await _db(services.mark_read)(
            user=self.user, room=room, seq=frame["seq"], origin=self.conn_id
        )
        await self.reply(unread, frame.get("ref"))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        room = self.rooms.get(frame["room"])
        if room is None or not self.hub.is_subscribed(self, room.pk):
            # Not one of the socket's rooms (yet): asking the database is a query.
            await self._pace_queries()
            room = await self.room(frame["room"])
            await _db(services.membership_of)(self.user, room)
            await self.hub.follow(self, room.pk)
        # Relayed once per TYPING_INTERVAL_SECONDS per user and room; repeats are dropped
        # silently, first by this socket (no Redis round trip), then across tabs and workers.
        now = time.monotonic()
        if self.typing_at is None:
            self.typing_at = {}
        if now - self.typing_at.get(room.pk, -1e9) < LIMITS["TYPING_INTERVAL_SECONDS"]:
            return
        self.typing_at[room.pk] = now
        if not await ratelimit.first_typing(self.user_id, room.pk):
            return
        typing = protocol.encode(protocol.typing(room.slug, self.username))
        fanout.publish([{"room": room.pk, "skip_user": self.user_id, "frame": typing}])

    async def on_edit(self, frame: dict[str, Any]) -> None:
        services.clean_body(frame["body"])
        await self._check_rate()
        await _db(services.edit_message)(user=self.user, message_id=frame["id"], body=frame["body"])

    async def on_delete(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        await _db(services.delete_message)(user=self.user, message_id=frame["id"])

    async def on_react(self, frame: dict[str, Any]) -> None:
        services.clean_emoji(frame["emoji"])
        await self._check_rate()
        await _db(services.react)(user=self.user, message_id=frame["id"], emoji=frame["emoji"])

    async def on_moderate(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        room = await self.room(frame["room"])
        event = await _db(moderation.moderate)(
            actor=self.user,
            room=room,
            target=frame["user"],
            action=frame["action"],
            minutes=frame.get("minutes"),
            origin=self.conn_id,
        )
        await self.reply(event, frame.get("ref"))

    async def on_invite(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        room = await self.room(frame["room"])
        invited = await _db(moderation.invite)(actor=self.user, room=room, target=frame["user"])
        await self.reply(invited, frame.get("ref"))

    async def on_room_settings(self, frame: dict[str, Any]) -> None:
        await self._check_rate()
        room = await self.room(frame["room"])
        updated = await _db(moderation.update_room_settings)(
            actor=self.user,
            room=room,
            slow_mode=frame.get("slow_mode"),
            archived=frame.get("archived"),
            topic=frame.get("topic"),
            origin=self.conn_id,
        )
        await self.reply(updated, frame.get("ref"))


fanout.read_missed_with(_db(services.missed_messages))
ChatSession.handlers = {kind: getattr(ChatSession, f"on_{kind}") for kind in protocol.FRAME_FIELDS}
