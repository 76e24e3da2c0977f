"""Finding old messages: `GET /api/search`, over the rooms the user may see and nothing else.

On PostgreSQL words are matched as stemmed words (full-text search, `websearch_to_tsquery`:
quoted phrases, `-word` to leave out), served by a GIN index on the same expression
(migration 0003). On SQLite each word must appear as a whole word, case aside. Either way
results come newest first, a page at a time, paged by message id (`before`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet

from . import services
from .models import Message, Restriction, Room

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PAGE = 20
MAX_QUERY_CHARS = 200
# Words beyond these are ignored on SQLite: each is one more regular expression per row.
MAX_WORDS = 8
# The text search configuration of the index and of every query: they must be the same for the
# index to serve the query.
CONFIG = "english"
# The expression the GIN index is built on (migration 0003) and every search filters on.
BODY_VECTOR = SearchVector("body", config=CONFIG)
_WORD = re.compile(r"\w+", re.UNICODE)


class BadQuery(ValueError):
    """A query the search cannot run (empty, too long)."""


@dataclass(frozen=True)
class Results:
    results: list[dict[str, Any]]
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"results": self.results, "has_more": self.has_more}


def searchable_rooms(user: User) -> QuerySet[Room]:
    """The rooms whose messages the user may find: public ones that have not banned them, and
    those they belong to."""
    banned_from = Restriction.objects.filter(user=user, kind=Restriction.Kind.BAN)
    return (
        Room.objects.filter(Q(kind=Room.Kind.PUBLIC) | Q(memberships__user=user))
        .exclude(pk__in=banned_from.values("room_id"))
        .distinct()
    )


def search_messages(
    *, user: User, query: str, room: Room | None = None, before: int | None = None
) -> Results:
    """The newest PAGE messages matching `query` (in `room` only, if given) older than message
    id `before`, of rooms the user may see."""
    query = query.strip()
    if not query:
        raise BadQuery("Say what to search for.")
    if len(query) > MAX_QUERY_CHARS:
        raise BadQuery(f"A search may have at most {MAX_QUERY_CHARS} characters.")
    messages = Message.objects.for_payload().filter(deleted_at__isnull=True)
    if room is not None:
        messages = messages.filter(room=room)
    else:
        messages = messages.filter(room__in=searchable_rooms(user))
    if before is not None:
        messages = messages.filter(pk__lt=before)
    matching = _matching(messages, query)
    if matching is None:
        return Results([], False)
    rows = list(matching.select_related("room").order_by("-pk")[: PAGE + 1])
    return Results(
        [
            {
                "room": m.room.slug,
                "message": services.stored_payload(m),
            }
            for m in rows[:PAGE]
        ],
        has_more=len(rows) > PAGE,
    )


def _matching(messages: QuerySet[Message], query: str) -> QuerySet[Message] | None:
    if connection.vendor == "postgresql":
        return messages.alias(search=BODY_VECTOR).filter(
            search=SearchQuery(query, config=CONFIG, search_type="websearch")
        )
    words = _WORD.findall(query)
    if not words:
        return None
    for word in words[:MAX_WORDS]:
        messages = messages.filter(body__iregex=rf"\b{re.escape(word)}\b")
    return messages
