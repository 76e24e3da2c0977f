"""Mentions: `@username` names a member of the room, `@room` (by an owner, moderator or staff)
every member. A mention marks the message for them: its payload lists them, and each member's
unread mentions are counted beside their unread messages (`hello`, `unread`).

Only a body with an "@" pays anything: one query to find who it names, and one insert of a
`Mention` row per member named (at most MENTIONS_PER_MESSAGE). `@room` is a flag on the
message, not a row per member, so it costs a room of thousands nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import IntegerField, Q
from django.db.models.expressions import RawSQL

from .models import Membership, Mention, Message

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The name `@room` is written with; no user may take it (accounts/validators.py).
ROOM = "room"
# Names looked up per message: a body of a thousand `@x` costs no more than one of twenty.
MENTIONS_PER_MESSAGE = 20

# "@" at the start or after anything but a word character (not "alice@example.com"), then the
# characters of a username (Django's: letters, digits and . + - _).
_MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")


@dataclass(frozen=True)
class Found:
    """Who a body mentions: (user pk, username) of the members it names, in the order it first
    names them, and whether it mentions the whole room."""

    members: list[tuple[int, str]] = field(default_factory=list)
    room: bool = False

    def __bool__(self) -> bool:
        return bool(self.members) or self.room

    @property
    def names(self) -> list[str]:
        """The message payload's `mentions`."""
        return [name for _, name in self.members] + ([ROOM] if self.room else [])


NOBODY = Found()


def written_names(body: str) -> list[str]:
    """The names a body writes after "@", each once, in order, at most MENTIONS_PER_MESSAGE.

    A name may end a sentence ("thanks @bob."): the name without its trailing punctuation is
    looked for too.
    """
    names: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        written = match.group(1)
        for name in (written, written.rstrip(".+-")):
            if name:
                names.setdefault(name, None)
        if len(names) >= MENTIONS_PER_MESSAGE:
            break
    return list(names)[:MENTIONS_PER_MESSAGE]


def find(*, body: str, room_id: int, author: User, is_staff: Callable[[User], bool]) -> Found:
    """The members of the room the body mentions (never the author), in one query.

    A name finds a username spelled as written, all in lower case or capitalised ("@ALICE",
    "@alice" and "@Alice" find a user alice or Alice): the look-up stays on the username's
    unique index. `@room` counts
    only from an owner or moderator of the room, or staff (`is_staff`, read live).
    """
    written = written_names(body) if "@" in body else []
    if not written:
        return NOBODY
    wants_room = any(name.lower() == ROOM for name in written)
    spellings = {spelling for name in written for spelling in (name, name.lower(), name.title())}
    rows = Membership.objects.filter(room_id=room_id).filter(
        Q(user__username__in=spellings) | Q(user_id=author.pk)
    )
    members: dict[str, tuple[int, str]] = {}
    author_role = None
    for user_id, username, role in rows.values_list("user_id", "user__username", "role"):
        if user_id == author.pk:
            author_role = role
        else:
            members[username.lower()] = (user_id, username)
    named: dict[int, tuple[int, str]] = {}
    for name in written:
        member = members.get(name.lower())
        if member is not None:
            named.setdefault(member[0], member)
    mentions_room = wants_room and (
        author_role in (Membership.Role.OWNER, Membership.Role.MODERATOR) or is_staff(author)
    )
    return Found(members=list(named.values()), room=mentions_room)


def store(message: Message, found: Found) -> None:
    """Write the message's mentions (its `mentions_room` is saved with the message)."""
    if found.members:
        Mention.objects.bulk_create(
            Mention(message=message, user_id=user_id, room_id=message.room_id, seq=message.seq)
            for user_id, _ in found.members
        )


def replace(message: Message, found: Found) -> None:
    """Mentions of an edited (or deleted: NOBODY) message: those of its new body."""
    Mention.objects.filter(message=message).delete()
    store(message, found)
    if message.mentions_room != found.room:
        message.mentions_room = found.room
        message.save(update_fields=["mentions_room"])


def stored_names(message: Message) -> list[str]:
    """The payload's `mentions` of a message loaded `for_payload`."""
    names = [mention.user.get_username() for mention in message.mentions.all()]
    return names + ([ROOM] if message.mentions_room else [])


# A member's unread mentions, for a query of memberships: rows naming them, and `@room` messages
# of others. Written once, as the posting condition is (rooms/services.py): built with the ORM,
# the two correlated subqueries cost a millisecond of Python on every connection's `hello`.
_UNREAD_SQL = f"""
(SELECT COUNT(*) FROM {Mention._meta.db_table} n
 WHERE n.user_id = {Membership._meta.db_table}.user_id
 AND n.room_id = {Membership._meta.db_table}.room_id
 AND n.seq > {Membership._meta.db_table}.last_read)
+ (SELECT COUNT(*) FROM {Message._meta.db_table} e
 WHERE e.room_id = {Membership._meta.db_table}.room_id AND e.mentions_room
 AND e.seq > {Membership._meta.db_table}.last_read
 AND e.author_id <> {Membership._meta.db_table}.user_id)
"""  # noqa: S608 - the table names are the models', nothing else is interpolated


def unread_expression() -> RawSQL:
    """For a Membership queryset: the member's unread messages that mention them (by name, or
    `@room`: the partial index `message_room_mentions` serves the second count)."""
    return RawSQL(_UNREAD_SQL, (), output_field=IntegerField())  # noqa: S611 - no input in it


def unread_count(membership: Membership, last_seq: int) -> int:
    """The member's unread mentions (no query when they have read everything)."""
    if membership.last_read >= last_seq:
        return 0
    found = Membership.objects.filter(pk=membership.pk).annotate(n=unread_expression())
    return int(found.values_list("n", flat=True).first() or 0)
