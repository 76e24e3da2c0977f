"""The wire format of /ws/chat/ in one place: frame parsing, payload builders, error codes.

docs/protocol.md describes the same frames for people; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .models import Attachment, Message, Reaction, Room

LIMITS = settings.CHAT

# Error codes of the contract.
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
EMPTY = "empty"
TOO_LONG = "too_long"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
RATE_LIMITED = "rate_limited"
INTERNAL = "internal"
MUTED = "muted"  # with `until`
SLOW_MODE = "slow_mode"  # with `retry_after`
BANNED = "banned"

# Errors that count towards closing a socket for abuse (4008).
MALFORMED_CODES = frozenset({BAD_JSON, BAD_FRAME, UNKNOWN_TYPE})

# Close codes of the contract.
CLOSE_ABUSE = 4008
CLOSE_TOO_BIG = 4009
CLOSE_SHUTDOWN = 4012
CLOSE_SLOW_READER = 4013
CLOSE_TOO_MANY_SOCKETS = 4029
CLOSE_REVOKED = 4403

# C0 and C1 control characters and DEL; a body may hold tabs and newlines. PostgreSQL refuses a
# NUL outright, and the rest have no business in a chat.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def for_the_client() -> dict[str, Any]:
    """The codes and limits the browser client needs, served with every chat page
    (templates/rooms/app.html; static/js/protocol.js reads them), never copied into it."""
    return {
        "close": {
            "abuse": CLOSE_ABUSE,
            "too_big": CLOSE_TOO_BIG,
            "shutdown": CLOSE_SHUTDOWN,
            "slow_reader": CLOSE_SLOW_READER,
            "too_many_sockets": CLOSE_TOO_MANY_SOCKETS,
            "revoked": CLOSE_REVOKED,
        },
        "max_body_chars": LIMITS["MAX_BODY_CHARS"],
        "max_attachment_bytes": LIMITS["ATTACHMENT_MAX_BYTES"],
        "attachments_per_message": LIMITS["ATTACHMENTS_PER_MESSAGE"],
        "history_max": LIMITS["HISTORY_MAX"],
        "typing_interval_ms": int(LIMITS["TYPING_INTERVAL_SECONDS"] * 1000),
    }


class ProtocolError(Exception):
    """A frame the server cannot act on; becomes an `error` frame, never a crash."""

    def __init__(self, code: str, detail: str, ref: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ref = ref


# Integers a client sends (ids, seqs, limits) must fit a database bigint; JSON's safe range.
MAX_INT = 2**53

# Client frame types and their fields: name -> (accepted types, required).
_STR = (str,)
_INT = (int,)
_BOOL = (bool,)
_IDS = (list,)  # of positive integers
FRAME_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "join": {"room": (_STR, True)},
    "leave": {"room": (_STR, True)},
    "send": {
        "room": (_STR, True),
        "body": (_STR, True),
        "reply_to": (_INT, False),
        "attachments": (_IDS, False),
    },
    "history": {
        "room": (_STR, True),
        "before": (_INT, False),
        "after": (_INT, False),
        "limit": (_INT, False),
    },
    "read": {"room": (_STR, True), "seq": (_INT, True)},
    "typing": {"room": (_STR, True)},
    "direct": {"to": (_STR, True), "body": (_STR, True), "reply_to": (_INT, False)},
    "edit": {"id": (_INT, True), "body": (_STR, True)},
    "delete": {"id": (_INT, True)},
    "react": {"id": (_INT, True), "emoji": (_STR, True)},
    "moderate": {
        "room": (_STR, True),
        "user": (_STR, True),
        "action": (_STR, True),
        "minutes": (_INT, False),
    },
    "invite": {"room": (_STR, True), "user": (_STR, True)},
    "room_settings": {
        "room": (_STR, True),
        "slow_mode": (_INT, False),
        "archived": (_BOOL, False),
        "topic": (_STR, False),
    },
    "ping": {},
}
_TYPE_NAMES: dict[tuple[type, ...], str] = {
    _STR: "a string",
    _INT: "an integer",
    _BOOL: "true or false",
    _IDS: f"a list of at most {LIMITS['ATTACHMENTS_PER_MESSAGE']} ids",
}


def parse(text: str | None, data: bytes | None = None) -> dict[str, Any]:
    """Decode and validate one client frame; raise ProtocolError with the contract's code."""
    try:
        frame = orjson.loads(text if text is not None else (data or b""))
    except orjson.JSONDecodeError:
        raise ProtocolError(BAD_JSON, "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError(BAD_FRAME, "A frame must be a JSON object.")
    ref = frame.get("ref")
    if ref is not None and (
        not isinstance(ref, str) or len(ref) > LIMITS["MAX_REF_CHARS"] or _CONTROL.search(ref)
    ):
        raise ProtocolError(
            BAD_FRAME, "`ref` must be a string of at most 64 characters, without control ones."
        )
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(BAD_FRAME, "A frame needs a string `type`.", ref)
    fields = FRAME_FIELDS.get(kind)
    if fields is None:
        raise ProtocolError(UNKNOWN_TYPE, f"Unknown frame type {kind[:40]!r}.", ref)
    for name, (types, required) in fields.items():
        value = frame.get(name)
        if value is None:
            if required:
                raise ProtocolError(BAD_FRAME, f"`{name}` is required for {kind}.", ref)
            continue
        # bool is an int in Python, never in our protocol.
        if not isinstance(value, types) or (isinstance(value, bool) and types is not _BOOL):
            raise ProtocolError(BAD_FRAME, f"`{name}` must be {_TYPE_NAMES[types]}.", ref)
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise ProtocolError(BAD_FRAME, f"`{name}` is out of range.", ref)
        if types is _IDS and not _are_ids(value):
            raise ProtocolError(BAD_FRAME, f"`{name}` must be {_TYPE_NAMES[types]}.", ref)
    for name, value in frame.items():
        if isinstance(value, str) and (_BODY_CONTROL if name == "body" else _CONTROL).search(value):
            raise ProtocolError(BAD_FRAME, f"`{name[:40]}` holds a control character.", ref)
    return frame


def _are_ids(value: Any) -> bool:
    return len(value) <= LIMITS["ATTACHMENTS_PER_MESSAGE"] and all(
        type(n) is int and 0 < n <= MAX_INT for n in value
    )


def encode(payload: dict[str, Any]) -> str:
    """Encode one server frame; called once per event, never per recipient."""
    return orjson.dumps(payload).decode()


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


# How much of the replied-to message a reply shows.
EXCERPT_CHARS = 140


def message_payload(
    message: Message,
    author: str,
    reactions: Iterable[Reaction] = (),
    mentions: Iterable[str] = (),
    attachments: Iterable[Attachment] = (),
) -> dict[str, Any]:
    """A message as every frame and the JSON API show it: load messages `for_payload`, for a
    reply's `reply_to`, `reactions` (`message.reactions.all()`; a new message has none),
    `mentions` (usernames, and "room" for `@room`: rooms/mentions.py) and `attachments`."""
    deleted = message.deleted_at is not None
    payload = {
        "id": message.pk,
        "seq": message.seq,
        "author": author,
        "body": "" if deleted else message.body,
        "created_at": timestamp(message.created_at),
        "edited_at": timestamp(message.edited_at),
        "ref": message.ref,
        "deleted": deleted,
        "mentions": [] if deleted else list(mentions),
        "attachments": [] if deleted else [attachment_payload(a) for a in attachments],
    }
    payload["reactions"], counts = reactions_payload(reactions)
    if counts:
        payload["reaction_counts"] = counts
    if message.reply_to_id is not None and message.reply_to is not None:
        payload["reply_to"] = replied(message.reply_to)
    return payload


def attachment_payload(attachment: Attachment) -> dict[str, Any]:
    """An uploaded file: the upload's answer, and an entry of a message's `attachments`."""
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "url": attachment.url,
    }


# Usernames listed per emoji: a message of a room of thousands must still fit a frame.
REACTORS_LISTED = 100


def reactions_payload(
    reactions: Iterable[Reaction],
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """{emoji: [usernames…]}, each emoji in the order it was first given, with at most
    REACTORS_LISTED names each; and how many reacted with each emoji whose list was cut."""
    grouped: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for reaction in reactions:
        names = grouped.setdefault(reaction.emoji, [])
        if len(names) < REACTORS_LISTED:
            names.append(reaction.user.get_username())
        else:
            counts[reaction.emoji] = counts.get(reaction.emoji, REACTORS_LISTED) + 1
    return grouped, counts


def reaction(slug: str, message: Message, emoji: str, user: str, on: bool) -> dict[str, Any]:
    """A user's emoji added to (`on`) or taken from a message of the room."""
    return {
        "type": "reaction",
        "room": slug,
        "id": message.pk,
        "seq": message.seq,
        "emoji": emoji,
        "user": user,
        "on": on,
    }


def replied(message: Message) -> dict[str, Any]:
    """The message a reply answers, as the reply shows it: the start of its body (nothing once
    it was deleted)."""
    return {
        "id": message.pk,
        "seq": message.seq,
        "author": message.author.get_username(),
        "excerpt": "" if message.deleted_at is not None else message.body[:EXCERPT_CHARS],
    }


def room_payload(
    room: Room,
    *,
    viewer: Any = None,
    last_read: int | None = None,
    mentions: int = 0,
    role: str | None = None,
) -> dict[str, Any]:
    """A room as `hello`, `joined`, `room_added` and `room_updated` show it, named for the
    viewer; with their unread count, unread mentions and role when they are a member."""
    payload: dict[str, Any] = {
        "slug": room.slug,
        "name": room.display_name_for(viewer),
        "kind": room.kind,
        "topic": room.topic,
        "last_seq": room.last_seq,
        "slow_mode": room.slow_mode,
        "archived": room.archived_at is not None,
    }
    if last_read is not None:
        payload["unread"] = max(room.last_seq - last_read, 0)
        payload["mentions"] = mentions
    if role is not None:
        payload["role"] = role
    return payload


# --- server frames: one builder each (tests/rooms/test_protocol.py holds the code to them) ---


def hello(user: str, rooms: list[dict[str, Any]], **transport: Any) -> dict[str, Any]:
    """The first frame of every connection: the user and every room of theirs (`room_payload`),
    and what its transport adds (an HTTP stream's `stream`)."""
    return {"type": "hello", "user": user, "rooms": rooms, **transport}


def closed(code: int) -> dict[str, Any]:
    """The last event of an HTTP stream: it ended as a socket closes with `code`."""
    return {"type": "close", "code": code}


def joined(
    room: dict[str, Any],
    members: list[str],
    online: list[str],
    member_count: int,
    *,
    roles: dict[str, str],
    you: dict[str, Any],
) -> dict[str, Any]:
    """The reply to `join`; `member_count` only when `members` does not list them all.

    `roles`: the owners and moderators by username; `you`: the joining user's standing
    (`you_payload`).
    """
    frame: dict[str, Any] = {
        "type": "joined",
        "room": room,
        "members": members,
        "online": online,
        "roles": roles,
        "you": you,
    }
    if member_count > len(members):
        frame["member_count"] = member_count
    return frame


def you_payload(
    role: str, *, staff: bool, muted: bool, muted_until: datetime | None
) -> dict[str, Any]:
    """What `joined` tells a user of their own standing in the room: what their client may
    offer (moderation menus) and refuse (a muted composer)."""
    return {"role": role, "staff": staff, "muted": muted, "muted_until": timestamp(muted_until)}


def room_removed(slug: str) -> dict[str, Any]:
    """To a kicked or banned user's connections: nothing more of the room follows."""
    return {"type": "room_removed", "room": slug}


def room_updated(room: dict[str, Any]) -> dict[str, Any]:
    """A room's settings changed (`room_payload`)."""
    return {"type": "room_updated", "room": room}


def moderated(
    slug: str,
    user: str,
    action: str,
    by: str,
    *,
    until: datetime | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """A moderation action in the room; `until` for a mute that ends, `role` (the role after)
    for a promotion or demotion."""
    frame: dict[str, Any] = {
        "type": "moderated",
        "room": slug,
        "user": user,
        "action": action,
        "by": by,
    }
    if until is not None:
        frame["until"] = timestamp(until)
    if role is not None:
        frame["role"] = role
    return frame


def invited(slug: str, user: str) -> dict[str, Any]:
    """The reply to `invite`."""
    return {"type": "invited", "room": slug, "user": user}


def left(slug: str) -> dict[str, Any]:
    return {"type": "left", "room": slug}


def room_added(room: dict[str, Any]) -> dict[str, Any]:
    return {"type": "room_added", "room": room}


def presence(slug: str, user: str, event: str) -> dict[str, Any]:
    """`event`: joined, left (membership), online, offline (connections)."""
    return {"type": "presence", "room": slug, "user": user, "event": event}


def typing(slug: str, user: str) -> dict[str, Any]:
    return {"type": "typing", "room": slug, "user": user}


def ack(slug: str, message: Message) -> dict[str, Any]:
    """A stored message, for the connection that sent it (its `ref` is added as a reply's)."""
    return {
        "type": "ack",
        "room": slug,
        "id": message.pk,
        "seq": message.seq,
        "created_at": timestamp(message.created_at),
    }


def message(slug: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A new message of the room (`payload`: `message_payload`)."""
    return {"type": "message", "room": slug, "message": payload}


def message_changed(event: str, slug: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`message_edited` or `message_deleted`, with the message after the change."""
    return {
        "type": event,
        "room": slug,
        "id": payload["id"],
        "seq": payload["seq"],
        "message": payload,
    }


def history(page: HistoryPage) -> dict[str, Any]:
    return {"type": "history", **page.as_dict()}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def unread_payload(room: Room, last_read: int, mentions: int = 0) -> dict[str, Any]:
    """The user's unread messages of a room, and how many of them mention the user."""
    return {
        "type": "unread",
        "room": room.slug,
        "count": max(room.last_seq - last_read, 0),
        "last_read": last_read,
        "mentions": mentions,
    }


# Room for the rest of a `history` frame around its messages: type, room, has_more, ref.
_HISTORY_ENVELOPE_BYTES = 1024
# No text character takes more than this many bytes in JSON (a control character's \uXXXX).
_MAX_BYTES_PER_CHAR = 6


def fitting_messages(messages: list[dict[str, Any]], *, keep_newest: bool) -> list[dict[str, Any]]:
    """As many of `messages` as one frame holds (MAX_SERVER_FRAME_BYTES), kept from the newest
    end or the oldest; at least one, since one message is far smaller than a frame."""
    budget = LIMITS["MAX_SERVER_FRAME_BYTES"] - _HISTORY_ENVELOPE_BYTES
    # Most pages are far below the limit: a bound on their size spares encoding them twice.
    bound = (
        sum(
            _MAX_BYTES_PER_CHAR * (len(m["body"]) + len(m["author"]) + len(m["ref"] or "")) + 256
            for m in messages
        )
        + sum(
            _MAX_BYTES_PER_CHAR * (EXCERPT_CHARS + 150) + 100 for m in messages if "reply_to" in m
        )
        + sum(
            _MAX_BYTES_PER_CHAR * (len(emoji) + sum(len(name) + 3 for name in names)) + 20
            for m in messages
            for emoji, names in m["reactions"].items()
        )
    )
    if bound <= budget:
        return messages
    total = kept = 0
    for message in reversed(messages) if keep_newest else messages:
        size = len(orjson.dumps(message)) + 1  # and its comma
        if kept and total + size > budget:
            break
        total += size
        kept += 1
    return messages[len(messages) - kept :] if keep_newest else messages[:kept]


@dataclass(frozen=True)
class HistoryPage:
    room: str
    messages: list[dict[str, Any]]
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"room": self.room, "messages": self.messages, "has_more": self.has_more}


def error(code: str, detail: str, ref: str | None = None, **fields: Any) -> dict[str, Any]:
    """An `error` frame; `fields`: what its code adds (`until`, `retry_after`)."""
    payload = {"type": "error", "code": code, "detail": detail, **fields}
    if ref is not None:
        payload["ref"] = ref
    return payload
