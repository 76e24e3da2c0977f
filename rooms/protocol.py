"""The wire format of /ws/chat/ in one place: frame parsing, payload builders, error codes.

docs/protocol.md describes the same frames for people; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

if TYPE_CHECKING:
    from .models import Message, Room

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

# Errors that count towards closing a socket for abuse (4008).
MALFORMED_CODES = frozenset({BAD_JSON, BAD_FRAME, UNKNOWN_TYPE})

# Close codes of the contract.
CLOSE_ABUSE = 4008
CLOSE_TOO_BIG = 4009
CLOSE_SHUTDOWN = 4012
CLOSE_REVOKED = 4403


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
FRAME_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "join": {"room": (_STR, True)},
    "leave": {"room": (_STR, True)},
    "send": {"room": (_STR, True), "body": (_STR, True)},
    "history": {
        "room": (_STR, True),
        "before": (_INT, False),
        "after": (_INT, False),
        "limit": (_INT, False),
    },
    "read": {"room": (_STR, True), "seq": (_INT, True)},
    "typing": {"room": (_STR, True)},
    "direct": {"to": (_STR, True), "body": (_STR, True)},
    "edit": {"id": (_INT, True), "body": (_STR, True)},
    "delete": {"id": (_INT, True)},
    "ping": {},
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
    if ref is not None and (not isinstance(ref, str) or len(ref) > LIMITS["MAX_REF_CHARS"]):
        raise ProtocolError(BAD_FRAME, "`ref` must be a string of at most 64 characters.")
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
        if not isinstance(value, types) or isinstance(value, bool):
            expected = "a string" if types is _STR else "an integer"
            raise ProtocolError(BAD_FRAME, f"`{name}` must be {expected}.", ref)
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise ProtocolError(BAD_FRAME, f"`{name}` is out of range.", ref)
    return frame


def encode(payload: dict[str, Any]) -> str:
    """Encode one server frame; called once per event, never per recipient."""
    return orjson.dumps(payload).decode()


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def message_payload(message: Message, author: str) -> dict[str, Any]:
    """A message as every frame and the JSON API show it."""
    deleted = message.deleted_at is not None
    return {
        "id": message.pk,
        "seq": message.seq,
        "author": author,
        "body": "" if deleted else message.body,
        "created_at": timestamp(message.created_at),
        "edited_at": timestamp(message.edited_at),
        "ref": message.ref,
        "deleted": deleted,
    }


def room_payload(room: Room, *, viewer: Any = None, last_read: int | None = None) -> dict[str, Any]:
    """A room as `hello`, `joined` and `room_added` show it, named for the viewer."""
    payload: dict[str, Any] = {
        "slug": room.slug,
        "name": room.display_name_for(viewer),
        "kind": room.kind,
        "topic": room.topic,
        "last_seq": room.last_seq,
    }
    if last_read is not None:
        payload["unread"] = max(room.last_seq - last_read, 0)
    return payload


def unread_payload(room: Room, last_read: int) -> dict[str, Any]:
    return {
        "type": "unread",
        "room": room.slug,
        "count": max(room.last_seq - last_read, 0),
        "last_read": last_read,
    }


@dataclass(frozen=True)
class HistoryPage:
    room: str
    messages: list[dict[str, Any]]
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"room": self.room, "messages": self.messages, "has_more": self.has_more}


def error(code: str, detail: str, ref: str | None = None) -> dict[str, Any]:
    payload = {"type": "error", "code": code, "detail": detail}
    if ref is not None:
        payload["ref"] = ref
    return payload
