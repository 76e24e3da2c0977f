"""Every write to rooms and messages, whoever calls it (views, the API, the WebSocket consumer).

Functions are sync and atomic; what the rest of the site must hear is published with
`transaction.on_commit`, so nobody is ever told about a write that was rolled back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import emoji as emoji_data
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from . import audit, fanout, mentions, protocol
from .invisible import shows_nothing
from .models import (
    MUTED_FOR_GOOD,
    Attachment,
    Membership,
    Message,
    Reaction,
    Restriction,
    Room,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LIMITS = settings.CHAT
DIRECT_SLUG_PREFIX = "dm-"


class ChatError(Exception):
    """A request the rules refuse; `code` is the contract's error code, `fields` what its
    `error` frame adds."""

    code = protocol.INTERNAL

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields


class RoomNotFound(ChatError, LookupError):
    code = protocol.NOT_FOUND


class MessageNotFound(ChatError, LookupError):
    code = protocol.NOT_FOUND


class Forbidden(ChatError, PermissionError):
    code = protocol.FORBIDDEN


class EmptyBody(ChatError, ValueError):
    code = protocol.EMPTY


class BodyTooLong(ChatError, ValueError):
    code = protocol.TOO_LONG


class RateLimited(ChatError):
    code = protocol.RATE_LIMITED


class SlugTaken(ChatError, ValueError):
    code = protocol.BAD_FRAME


class DirectToSelf(ChatError, ValueError):
    code = protocol.BAD_FRAME


class Muted(ChatError, PermissionError):
    code = protocol.MUTED

    def __init__(self, until: datetime | None) -> None:
        if until is None:
            detail = "You are muted in this room until a moderator unmutes you."
        else:
            minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
            detail = f"You are muted in this room for {minutes} more minute(s)."
        super().__init__(detail, until=protocol.timestamp(until))


class SlowMode(ChatError, PermissionError):
    code = protocol.SLOW_MODE

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Slow mode: you may post again in {retry_after} s.", retry_after=retry_after
        )


class Banned(ChatError, PermissionError):
    code = protocol.BANNED


class AttachmentNotFound(ChatError, LookupError):
    code = protocol.NOT_FOUND


class NotAnEmoji(ChatError, ValueError):
    code = protocol.BAD_FRAME


@dataclass(frozen=True)
class PostResult:
    message: Message
    created: bool


# --- reads the write path needs -------------------------------------------------------------


def get_room(slug: str) -> Room:
    """The room with this slug, or RoomNotFound."""
    try:
        return Room.objects.get(slug=slug)
    except Room.DoesNotExist:
        raise RoomNotFound(f"No room {slug[:80]!r}.") from None


def can_view(user: User, room: Room) -> bool:
    """Public rooms are open to every signed-in user they have not banned; private and direct
    ones to members."""
    if not user.is_active:
        return False
    if room.kind == Room.Kind.PUBLIC:
        return not is_banned(user, room)
    return Membership.objects.filter(room=room, user=user).exists()


def is_banned(user: User, room: Room) -> bool:
    return Restriction.objects.filter(room=room, user=user, kind=Restriction.Kind.BAN).exists()


def check_not_banned(user: User, room: Room, *, whom: str = "You are") -> None:
    if is_banned(user, room):
        raise Banned(f"{whom} banned from this room.")


def check_can_view(user: User, room: Room) -> None:
    if not can_view(user, room):
        if room.kind == Room.Kind.PUBLIC and user.is_active:
            raise Forbidden("You are banned from this room.")
        raise Forbidden("You are not a member of this room.")


def membership_of(user: User, room: Room) -> Membership:
    try:
        return Membership.objects.get(room=room, user=user)
    except Membership.DoesNotExist:
        if is_banned(user, room):
            # `forbidden`, as for anyone else the room refuses; `banned` answers `join`.
            raise Forbidden("You are banned from this room.") from None
        if room.kind == Room.Kind.PUBLIC:
            raise Forbidden("Join the room before writing to it.") from None
        raise Forbidden("You are not a member of this room.") from None


def clean_body(body: str, *, may_be_empty: bool = False) -> str:
    """Strip surrounding blanks; refuse empty (or invisible) and over-long bodies. A message
    with attachments `may_be_empty`."""
    body = body.strip()
    if may_be_empty and not body:
        return body
    if not body or shows_nothing(body):
        raise EmptyBody("The message is empty.")
    if len(body) > LIMITS["MAX_BODY_CHARS"]:
        raise BodyTooLong(f"A message may have at most {LIMITS['MAX_BODY_CHARS']} characters.")
    return body


# --- rooms and memberships ------------------------------------------------------------------


def check_room_allowance(user: User) -> None:
    """Refuse one more room to a user who belongs to ROOMS_PER_USER already: `hello` lists
    every room of its user and, like every server frame, must stay under 1 MiB."""
    if Membership.objects.filter(user=user).count() >= LIMITS["ROOMS_PER_USER"]:
        raise Forbidden(
            f"You belong to {LIMITS['ROOMS_PER_USER']} rooms, the most one may: leave some first."
        )


def _free_slug(base: str) -> str:
    base = (base or "room")[:70].strip("-") or "room"
    if base.startswith(DIRECT_SLUG_PREFIX):
        base = "room-" + base
    slug, n = base, 1
    while Room.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_room(
    *, creator: User, name: str, slug: str = "", topic: str = "", is_private: bool = False
) -> Room:
    """Create a public or private room; the creator becomes its owner and a member."""
    name = name.strip()
    check_room_allowance(creator)
    # Every public room is listed for everyone: making them is budgeted, leaving them is not.
    made = Room.objects.filter(
        created_by=creator, created_at__gte=timezone.now() - timedelta(hours=1)
    ).count()
    if made >= LIMITS["ROOMS_CREATED_PER_HOUR"]:
        raise RateLimited(
            f"You made {made} rooms within the hour, the most one may: try again later."
        )
    if slug:
        slug = slugify(slug)
        if not slug or slug.startswith(DIRECT_SLUG_PREFIX):
            raise SlugTaken("Choose another address: that one is reserved.")
        if Room.objects.filter(slug=slug).exists():
            raise SlugTaken(f"The address {slug!r} is taken.")
    else:
        slug = _free_slug(slugify(name))
    room = Room.objects.create(
        slug=slug,
        name=name,
        topic=topic.strip(),
        kind=Room.Kind.PRIVATE if is_private else Room.Kind.PUBLIC,
        created_by=creator,
    )
    add_membership(user=creator, room=room, role=Membership.Role.OWNER)
    return room


def add_membership(
    *, user: User, room: Room, role: str = Membership.Role.MEMBER, origin: str | None = None
) -> Membership:
    """Create the membership and tell the user's connections (but `origin`) and the room.

    A mute the user left with holds again: leaving and joining does not lift it."""
    mute = (
        Restriction.objects.filter(room=room, user=user, kind=Restriction.Kind.MUTE)
        .in_force()
        .first()
    )
    membership = Membership.objects.create(
        user=user,
        room=room,
        role=role,
        last_read=room.last_seq,
        muted_until=(mute.until or MUTED_FOR_GOOD) if mute else None,
    )
    room_added = protocol.encode(
        protocol.room_added(
            protocol.room_payload(
                room, viewer=user, last_read=membership.last_read, role=membership.role
            )
        )
    )
    presence = protocol.encode(protocol.presence(room.slug, user.get_username(), "joined"))
    fanout.publish_on_commit(
        [
            {
                "user": user.pk,
                "subscribe": room.pk,
                "seq": room.last_seq,
                "frame": room_added,
                "skip_conn": origin,
            },
            {"room": room.pk, "skip_user": user.pk, "frame": presence},
        ]
    )
    return membership


@transaction.atomic
def join_room(*, user: User, room: Room, origin: str | None = None) -> tuple[Membership, bool]:
    """Join a public room (or a room one already belongs to); returns (membership, created).

    `origin` names the connection that asked: it gets its own reply instead of `room_added`.
    """
    existing = Membership.objects.filter(room=room, user=user).first()
    if existing is not None:
        return existing, False
    check_not_banned(user, room)
    if room.kind != Room.Kind.PUBLIC:
        raise Forbidden("This room is private: a member must add you.")
    if room.is_archived:
        raise Forbidden("This room is archived.")
    check_room_allowance(user)
    try:
        with transaction.atomic():
            return add_membership(user=user, room=room, origin=origin), True
    except IntegrityError:
        # Another tab joined at the same moment.
        return Membership.objects.get(room=room, user=user), False


@transaction.atomic
def leave_room(*, user: User, room: Room, origin: str | None = None) -> None:
    """Stop being a member; every connection of the user stops receiving the room."""
    deleted, _ = Membership.objects.filter(room=room, user=user).delete()
    if not deleted:
        # Not a member of a room one may see: leaving is harmless (the caller answers `left`),
        # and there is nothing to tell anyone.
        check_can_view(user, room)
        return
    publish_membership_ended(user=user, room=room, origin=origin)


def publish_membership_ended(
    *, user: User, room: Room, origin: str | None = None, removed: bool = False
) -> None:
    """Tell the user's connections (but `origin`) they left (or, `removed`, that they were
    kicked or banned), and the room they are gone; their connections hear nothing more of it."""
    ended = protocol.room_removed(room.slug) if removed else protocol.left(room.slug)
    presence = protocol.encode(protocol.presence(room.slug, user.get_username(), "left"))
    fanout.publish_on_commit(
        [
            {
                "user": user.pk,
                "frame": protocol.encode(ended),
                "unsubscribe": room.pk,
                "skip_conn": origin,
            },
            {"room": room.pk, "skip_user": user.pk, "frame": presence},
        ]
    )


def direct_room_slug(a: User, b: User) -> str:
    low, high = sorted([a.pk, b.pk])
    return f"{DIRECT_SLUG_PREFIX}{low}-{high}"


@transaction.atomic
def get_or_create_direct_room(*, sender: User, recipient: User) -> tuple[Room, bool]:
    """The direct room of two people, made on first use."""
    if not recipient.is_active:
        raise RoomNotFound(f"No user {recipient.get_username()!r}.")
    slug = direct_room_slug(sender, recipient)
    room = Room.objects.filter(slug=slug).first()
    if room is not None:
        # Either may have left the conversation; writing to them brings it back for both.
        present = set(room.memberships.values_list("user_id", flat=True))
        for person in (sender, recipient):
            if person.pk not in present:
                try:
                    with transaction.atomic():
                        add_membership(user=person, room=room)
                except IntegrityError:
                    pass  # another tab brought them back at the same moment
        return room, False
    check_room_allowance(sender)
    names = sorted({sender.get_username(), recipient.get_username()})
    try:
        with transaction.atomic():
            room = Room.objects.create(
                slug=slug, name=" & ".join(names), kind=Room.Kind.DIRECT, created_by=sender
            )
            for person in {sender.pk: sender, recipient.pk: recipient}.values():
                add_membership(user=person, room=room)
    except IntegrityError:
        return Room.objects.get(slug=slug), False
    return room, True


def find_user(username: str) -> User:
    user_model = get_user_model()
    try:
        return user_model.objects.get(username=username, is_active=True)
    except user_model.DoesNotExist:
        raise RoomNotFound(f"No user {username[:150]!r}.") from None


# --- messages -------------------------------------------------------------------------------

# Who may post, as the condition on the room row whose update takes the next seq: a member
# of a room that is not archived, who is not muted and, in slow mode, is an owner or moderator
# or has waited long enough since their last post. The rules are read from the rows themselves
# (callers may hold a Room loaded long ago), in the statement that stores the message: posting
# costs no query more for them, and a refusal is explained afterwards (`_refuse_post`). Both
# statements below use it; the same SQL runs on SQLite and PostgreSQL. Every subquery here costs
# PostgreSQL planning time on each post, so the mute is read from the membership row
# (`muted_until`), and staff, whom slow mode does not hold either, are let through only once a
# refusal found them to be staff (`exempt`): they rarely post in a slow room.
_MAY_POST_SQL = f"""
    id = %(room)s AND archived_at IS NULL
    AND EXISTS (
        SELECT 1 FROM {Membership._meta.db_table} m
        WHERE m.room_id = %(room)s AND m.user_id = %(user)s
        AND (m.muted_until IS NULL OR m.muted_until <= %(now)s)
        AND (
            {Room._meta.db_table}.slow_mode = 0 OR m.role <> 'member'
            OR m.last_posted <= %(now_ts)s - {Room._meta.db_table}.slow_mode OR %(exempt)s
        )
    )
"""  # noqa: S608 - the table names are the models', every value is a parameter

# One statement allocates the seq: the row lock it takes serialises concurrent posters, and a
# rollback returns the number, so seq stays gap-free. (SQLite 3.35+ and PostgreSQL.)
_NEXT_SEQ_SQL = f"""
UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1 WHERE {_MAY_POST_SQL} RETURNING last_seq
"""  # noqa: S608


def _post_params(
    *, author: User, room: Room, now: datetime, exempt: bool = False
) -> dict[str, Any]:
    return {
        "room": room.pk,
        "user": author.pk,
        "now": connection.ops.adapt_datetimefield_value(now),
        "now_ts": now.timestamp(),
        "exempt": exempt,
    }


def _next_seq(*, author: User, room: Room, now: datetime) -> int:
    exempt = False
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                _NEXT_SEQ_SQL, _post_params(author=author, room=room, now=now, exempt=exempt)
            )
            row = cursor.fetchone()
        if row is not None:
            room.last_seq = int(row[0])
            return room.last_seq
        if exempt:
            raise ChatError("The room's rules changed while posting; retrying is safe.")
        _refuse_post(author=author, room=room, now=now)
        exempt = True  # staff held by slow mode: the refusal let them through


def _refuse_post(*, author: User, room: Room, now: datetime) -> None:
    """Say why `_MAY_POST_SQL` refused the author's message (the common path never asks), or
    return if slow mode held a staff member, whom it must not."""
    state = Room.objects.filter(pk=room.pk).values("archived_at", "slow_mode").first()
    if state is None:
        raise RoomNotFound("The room no longer exists.")
    if state["archived_at"] is not None:
        raise Forbidden("This room is archived.")
    membership = membership_of(author, room)
    mute = (
        Restriction.objects.filter(room=room, user=author, kind=Restriction.Kind.MUTE)
        .in_force(now)
        .first()
    )
    if mute is not None:
        raise Muted(mute.until)
    wait = membership.last_posted + state["slow_mode"] - now.timestamp()
    if wait > 0:
        if is_staff_now(author):
            return
        raise SlowMode(max(1, math.ceil(wait)))
    # A mute lifted or slow mode changed between the two reads.
    raise ChatError("The room's rules changed while posting; retrying is safe.")


def post_message(
    *,
    author: User,
    room: Room,
    body: str,
    ref: str | None = None,
    reply_to: int | None = None,
    attachments: Sequence[int] = (),
) -> PostResult:
    """Store a message with the room's next seq, then broadcast it once, on commit.

    The same `ref` from the same author in the same room returns the first message instead.
    `reply_to`: the id of the message of the room it answers; `attachments`: ids of the
    author's unsent uploads to the room (rooms/attachments.py).
    """
    body = clean_body(body, may_be_empty=bool(attachments))
    now = timezone.now()
    replied = None if reply_to is None else _replied_message(room=room, message_id=reply_to)
    found = _mentions_in(body, room=room, author=author)
    try:
        files = _unsent_attachments(author=author, room=room, ids=attachments)
        message = None
        one_statement = not (found or files or connection.in_atomic_block)
        if connection.vendor == "postgresql" and one_statement:
            message = _store_message_in_one_statement(
                author=author, room=room, body=body, ref=ref, now=now, reply_to=replied
            )
        if message is None:  # not PostgreSQL, in a transaction, with mentions, or refused
            with transaction.atomic():
                message = _store_message(
                    author=author,
                    room=room,
                    body=body,
                    ref=ref,
                    now=now,
                    reply_to=replied,
                    found=found,
                    files=files,
                )
    except IntegrityError:
        # A retry of a ref already stored (or being stored): the unique constraint refused it
        # and the rollback returned the seq. Answer with the first message. Retries are rare,
        # so the common path pays no look-up for them.
        if ref is None:
            raise
        return PostResult(Message.objects.get(room=room, author=author, ref=ref), created=False)
    except (Muted, SlowMode, AttachmentNotFound):
        # A retry of a message stored a moment ago meets the slow mode its first copy started
        # (or a mute since, or its attachments sent): its ack is repeated, as for any retry.
        first = ref and Message.objects.filter(room=room, author=author, ref=ref).first()
        if first:
            return PostResult(first, created=False)
        raise
    return PostResult(message, created=True)


def _replied_message(*, room: Room, message_id: int) -> Message:
    """The message of the room a reply answers (only replies pay this query)."""
    replied = Message.objects.for_payload().filter(pk=message_id, room=room).first()
    if replied is None:
        raise MessageNotFound(f"No message {message_id} in this room to reply to.")
    return replied


def _unsent_attachments(*, author: User, room: Room, ids: Sequence[int]) -> list[Attachment]:
    """The author's uploads to the room not sent yet, one for each id (only a message with
    attachments pays this query)."""
    if not ids:
        return []
    unique = list(dict.fromkeys(ids))
    files = list(Attachment.objects.filter(pk__in=unique, uploader=author, room=room, message=None))
    if len(files) != len(unique):
        raise AttachmentNotFound(
            "An attachment is not one of your uploads to this room waiting to be sent."
        )
    files.sort(key=lambda f: unique.index(f.pk))
    return files


def _mentions_in(body: str, *, room: Room, author: User) -> mentions.Found:
    """Who the body mentions (rooms/mentions.py); only a body with an "@" pays a query."""
    if "@" not in body:
        return mentions.NOBODY
    return mentions.find(body=body, room_id=room.pk, author=author, is_staff=is_staff_now)


def _store_message(
    *,
    author: User,
    room: Room,
    body: str,
    ref: str | None,
    now: datetime,
    reply_to: Message | None = None,
    found: mentions.Found = mentions.NOBODY,
    files: Sequence[Attachment] = (),
) -> Message:
    seq = _next_seq(author=author, room=room, now=now)
    # The author's own message counts as read.
    Membership.objects.filter(room=room, user=author).update(
        last_read=seq, last_posted=now.timestamp()
    )
    message = Message.objects.create(
        room=room,
        author=author,
        seq=seq,
        body=body,
        ref=ref,
        created_at=now,
        reply_to=reply_to,
        mentions_room=found.room,
    )
    mentions.store(message, found)
    if files:
        # The same files sent twice at once: the second send finds them taken and rolls back.
        sent = Attachment.objects.filter(pk__in=[f.pk for f in files], message=None)
        if sent.update(message=message) != len(files):
            raise AttachmentNotFound("These attachments were just sent with another message.")
    _publish_new_message(message, found, files)
    return message


# The hot path on PostgreSQL: the three writes of `_store_message` without mentions in one
# statement: with the connection's health check, two round trips instead of six (the check,
# BEGIN, seq, read mark, insert, COMMIT). Under load every round trip waits for a core, and the
# worker's one database thread queues the messages behind it (docs/performance.md). The seq is
# taken only if the author may post (`_MAY_POST_SQL`); a statement is atomic, so a refused ref
# (unique constraint) returns the seq, as the rollback does in `_store_message`.
_STORE_MESSAGE_SQL = f"""
WITH next AS (
    UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1 WHERE {_MAY_POST_SQL}
    RETURNING last_seq
), read_mark AS (
    UPDATE {Membership._meta.db_table} SET last_read = next.last_seq, last_posted = %(now_ts)s
    FROM next WHERE room_id = %(room)s AND user_id = %(user)s
)
INSERT INTO {Message._meta.db_table} (room_id, author_id, seq, body, ref, created_at, reply_to_id)
SELECT %(room)s, %(user)s, next.last_seq, %(body)s, %(ref)s, %(now)s, %(reply_to)s FROM next
RETURNING id, seq
"""  # noqa: S608 - the table names are the models', every value is a parameter


def _store_message_in_one_statement(
    *,
    author: User,
    room: Room,
    body: str,
    ref: str | None,
    now: datetime,
    reply_to: Message | None = None,
) -> Message | None:
    """`_store_message` in one statement (PostgreSQL); None if the rules refused it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _STORE_MESSAGE_SQL,
            {
                **_post_params(author=author, room=room, now=now),
                "body": body,
                "ref": ref,
                "reply_to": reply_to.pk if reply_to is not None else None,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    message_id, seq = row
    room.last_seq = seq
    message = Message(
        id=message_id,
        room=room,
        author=author,
        seq=seq,
        body=body,
        ref=ref,
        created_at=now,
        reply_to=reply_to,
    )
    message._state.adding = False
    message._state.db = connection.alias
    _publish_new_message(message)
    return message


def stored_payload(message: Message) -> dict[str, Any]:
    """The payload of a message loaded `for_payload` (a new one has no reactions to read:
    `_publish_new_message`)."""
    return protocol.message_payload(
        message,
        message.author.get_username(),
        message.reactions.all(),
        mentions.stored_names(message),
        message.attachments.all(),
    )


def _publish_new_message(
    message: Message, found: mentions.Found = mentions.NOBODY, files: Sequence[Attachment] = ()
) -> None:
    payload = protocol.message_payload(
        message, message.author.get_username(), (), found.names, files
    )
    frame = protocol.encode(protocol.message(message.room.slug, payload))
    fanout.publish_on_commit([{"room": message.room_id, "seq": message.seq, "frame": frame}])


@transaction.atomic
def send_direct(
    *,
    sender: User,
    recipient_name: str,
    body: str,
    ref: str | None = None,
    reply_to: int | None = None,
) -> tuple[Room, PostResult]:
    """Post to the direct room of two people, making it (and telling both) on first use."""
    body = clean_body(body)
    recipient = find_user(recipient_name)
    if recipient.pk == sender.pk:
        # A deliberate choice: the site has no notes-to-self room, and the browser client
        # offers none; a direct message is to another person.
        raise DirectToSelf("A direct message goes to someone else.")
    room, _ = get_or_create_direct_room(sender=sender, recipient=recipient)
    return room, post_message(author=sender, room=room, body=body, ref=ref, reply_to=reply_to)


def _editable_message(*, user: User, message_id: int) -> Message:
    message = Message.objects.for_payload().select_related("room").filter(pk=message_id).first()
    if message is None or message.is_deleted:
        raise MessageNotFound(f"No message {message_id}.")
    check_can_view(user, message.room)
    if message.room.is_archived:
        raise Forbidden("This room is archived.")
    if message.author_id != user.pk and not is_staff_now(user):
        raise Forbidden("Only the author or staff may change this message.")
    return message


def is_staff_now(user: User) -> bool:
    """Staff rights read from the database, not from the user a socket loaded long ago: losing
    staff status takes effect on open sockets at once."""
    model = get_user_model()
    return model.objects.filter(pk=user.pk, is_staff=True, is_active=True).exists()


def _publish_message_change(message: Message, event: str) -> None:
    payload = stored_payload(message)
    frame = protocol.encode(protocol.message_changed(event, message.room.slug, payload))
    fanout.publish_on_commit([{"room": message.room_id, "frame": frame}])


@transaction.atomic
def edit_message(*, user: User, message_id: int, body: str) -> Message:
    """Change a message's body (author or staff) and tell the room."""
    body = clean_body(body)
    message = _editable_message(user=user, message_id=message_id)
    message.body = body
    message.edited_at = timezone.now()
    message.save(update_fields=["body", "edited_at"])
    # The edit's mentions are the author's (staff editing a member's message add no `@room`).
    mentions.replace(message, _mentions_in(body, room=message.room, author=message.author))
    message = Message.objects.for_payload().select_related("room").get(pk=message.pk)
    _publish_message_change(message, "message_edited")
    return message


@transaction.atomic
def delete_message(*, user: User, message_id: int) -> Message:
    """Soft-delete a message (author or staff): it keeps its seq, loses its body."""
    message = _editable_message(user=user, message_id=message_id)
    soft_delete(message, by=user)
    return message


def soft_delete(message: Message, *, by: User) -> None:
    """Blank a message and tell the room; used by authors, staff and the admin. Deleting
    someone else's is moderation: it is written to the audit log."""
    message.deleted_at = timezone.now()
    message.body = ""
    message.save(update_fields=["deleted_at", "body"])
    mentions.replace(message, mentions.NOBODY)  # a deleted message mentions nobody
    # and keeps no files (their storage is emptied on commit: rooms/signals.py).
    Attachment.objects.filter(message=message).delete()
    if message.author_id != by.pk:
        audit.record(
            actor=by,
            action="delete_message",
            room=message.room,
            target=message.author,
            id=message.pk,
            seq=message.seq,
        )
    _publish_message_change(message, "message_deleted")


# --- reactions -------------------------------------------------------------------------------

REACTION_MAX_BYTES = 32
REACTIONS_PER_MESSAGE = 20  # distinct emoji


def clean_emoji(emoji: str) -> str:
    """One emoji (a flag, a skin tone, a family joined by ZWJ…) of at most 32 bytes."""
    emoji = emoji.strip()
    if not emoji or len(emoji.encode()) > REACTION_MAX_BYTES or not emoji_data.is_emoji(emoji):
        raise NotAnEmoji(f"A reaction is one emoji, of at most {REACTION_MAX_BYTES} bytes.")
    return emoji


@transaction.atomic
def react(*, user: User, message_id: int, emoji: str) -> dict[str, Any]:
    """Toggle the user's emoji on a message of a room they may post in; returns the `reaction`
    event the room gets."""
    emoji = clean_emoji(emoji)
    # The lock orders the toggles of one message: the distinct-emoji cap holds under races.
    message = (
        Message.objects.select_for_update().select_related("room").filter(pk=message_id).first()
    )
    if message is None or message.is_deleted:
        raise MessageNotFound(f"No message {message_id}.")
    room = message.room
    membership = membership_of(user, room)
    if room.is_archived:
        raise Forbidden("This room is archived.")
    if membership.muted_until is not None and membership.muted_until > timezone.now():
        mute = Restriction.objects.filter(room=room, user=user, kind=Restriction.Kind.MUTE)
        raise Muted(mute.values_list("until", flat=True).first())
    removed, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
    if not removed:
        given = set(Reaction.objects.filter(message=message).values_list("emoji", flat=True))
        if emoji not in given and len(given) >= REACTIONS_PER_MESSAGE:
            raise Forbidden(
                f"This message has {REACTIONS_PER_MESSAGE} different reactions already: "
                "add one of those."
            )
        Reaction.objects.create(message=message, user=user, emoji=emoji)
    event = protocol.reaction(room.slug, message, emoji, user.get_username(), on=not removed)
    fanout.publish_on_commit([{"room": room.pk, "frame": protocol.encode(event)}])
    return event


@transaction.atomic
def mark_read(*, user: User, room: Room, seq: int, origin: str | None = None) -> dict[str, Any]:
    """Move the user's read marker forward (never back) and tell all their connections;
    returns the `unread` event they get."""
    membership = Membership.objects.select_for_update().filter(room=room, user=user).first()
    if membership is None:
        check_can_view(user, room)
        raise Forbidden("Join the room first.")
    room.refresh_from_db(fields=["last_seq"])
    seq = max(0, min(seq, room.last_seq))
    if seq > membership.last_read:
        membership.last_read = seq
        membership.save(update_fields=["last_read"])
    event = protocol.unread_payload(
        room, membership.last_read, mentions.unread_count(membership, room.last_seq)
    )
    fanout.publish_on_commit(
        [{"user": user.pk, "frame": protocol.encode(event), "skip_conn": origin}]
    )
    return event


def missed_messages(room_id: int, after: int) -> list[tuple[int, str]]:
    """The room's messages after `after`, as (seq, `message` frame), at most HISTORY_MAX: what
    a worker that has just joined the room's group may have missed (rooms/fanout.py)."""
    rows = (
        Message.objects.filter(room_id=room_id, seq__gt=after)
        .for_payload()
        .select_related("room")
        .order_by("seq")[: LIMITS["HISTORY_MAX"]]
    )
    return [
        (
            m.seq,
            protocol.encode(protocol.message(m.room.slug, stored_payload(m))),
        )
        for m in rows
    ]


def history(
    *,
    user: User,
    room: Room,
    before: int | None = None,
    after: int | None = None,
    limit: Any = None,
) -> protocol.HistoryPage:
    """A page of messages, oldest first: the newest before `before`, or the oldest after `after`."""
    check_can_view(user, room)
    if limit is None:
        limit = LIMITS["HISTORY_DEFAULT"]
    limit = max(1, min(int(limit), LIMITS["HISTORY_MAX"]))
    messages = Message.objects.filter(room=room).for_payload()
    if after is not None:
        rows = list(messages.filter(seq__gt=after).order_by("seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        if before is not None:
            messages = messages.filter(seq__lt=before)
        rows = list(messages.order_by("-seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit][::-1]
    payloads = [stored_payload(m) for m in rows]
    # Cut by size too: no frame may pass MAX_SERVER_FRAME_BYTES, and 100 messages of 4,000
    # emoji would. What is cut lies beyond, so `has_more` stays truthful.
    fitting = protocol.fitting_messages(payloads, keep_newest=after is None)
    return protocol.HistoryPage(
        room=room.slug,
        messages=fitting,
        has_more=has_more or len(fitting) < len(payloads),
    )


def announce_presence(
    *,
    user_id: int,
    event: str,
    username: str | None = None,
    rooms: Iterable[tuple[int, str]] | None = None,
) -> None:
    """Tell every room of the user that they came online or went offline.

    `rooms` ((pk, slug) of the user's rooms) spares the queries to a caller that has just read
    them: a socket saying `hello`.
    """
    if username is None:
        username = get_user_model().objects.get(pk=user_id).get_username()
    if rooms is None:
        rooms = Membership.objects.filter(user_id=user_id).values_list("room_id", "room__slug")
    frames: list[fanout.Item] = [
        {
            "room": room_id,
            "skip_user": user_id,
            "frame": protocol.encode(protocol.presence(slug, username, event)),
        }
        for room_id, slug in rooms
    ]
    if frames:
        fanout.publish(frames)


def deactivate_user(user: User) -> None:
    """Cut every live connection of a user who may no longer chat (any worker)."""
    fanout.publish_on_commit([{"user": user.pk, "close": protocol.CLOSE_REVOKED}])


def end_other_sessions(user: User, *, keep_session: str | None = None) -> None:
    """Close every connection of the user but those opened with `keep_session` (4403): their
    password changed, so every other session of theirs is signed out."""
    item: fanout.Item = {"user": user.pk, "close": protocol.CLOSE_REVOKED}
    if keep_session:
        item["skip_session"] = keep_session
    fanout.publish_on_commit([item])


def end_session(user: User, session_key: str | None) -> None:
    """Close the connections opened with one signed-out session."""
    if session_key:
        fanout.publish_on_commit(
            [{"user": user.pk, "session": session_key, "close": protocol.CLOSE_REVOKED}]
        )
