"""Reads needed by more than one caller: pages, the JSON API and the WebSocket consumer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import OuterRef, Subquery

from . import mentions, protocol, services
from .models import Membership, Restriction, Room

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class RoomEntry:
    """A room as one user sees it in a list: with their unread count, if a member."""

    room: Room
    name: str
    is_member: bool
    last_read: int

    @property
    def unread(self) -> int:
        return max(self.room.last_seq - self.last_read, 0) if self.is_member else 0


def memberships_of(user: User) -> list[Membership]:
    """The user's memberships with their rooms (archived rooms included: history stays), each
    with its `unread_mentions`."""
    return list(
        Membership.objects.filter(user=user)
        .select_related("room")
        .annotate(unread_mentions=mentions.unread_expression())
        .order_by("room__name")
    )


# What a socket needs of its user for its lifetime: every idle socket holds one.
SOCKET_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def connection_state(user: User) -> tuple[list[Membership], User | None]:
    """What a new socket needs: the user's memberships, and the user read again with only the
    fields a socket uses (None if they were deactivated since the handshake read them)."""
    # A slice, not first(): no ORDER BY to build for a look-up by primary key.
    found = type(user).objects.only(*SOCKET_USER_FIELDS).filter(pk=user.pk, is_active=True)[:1]
    return memberships_of(user), next(iter(found), None)


def refresh_last_seq(rooms: list[Room], room_ids: list[int]) -> None:
    """Read `last_seq` again for those of the rooms in `room_ids` (one query)."""
    fresh = dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))
    for room in rooms:
        if room.pk in fresh:
            room.last_seq = fresh[room.pk]


def rooms_for(user: User) -> list[RoomEntry]:
    """Every room the user may see, with unread counts for the ones they belong to: rooms
    that banned them left out, archived ones only if they belong to them (as `hello` lists)."""
    last_read = Membership.objects.filter(room=OuterRef("pk"), user=user).values("last_read")[:1]
    banned_from = Restriction.objects.filter(user=user, kind=Restriction.Kind.BAN)
    rooms = (
        Room.objects.visible_to(user)
        .exclude(pk__in=banned_from.values("room_id"))
        .annotate(my_last_read=Subquery(last_read))
        .exclude(archived_at__isnull=False, my_last_read__isnull=True)
        .order_by("kind", "name")
    )
    return [
        RoomEntry(
            room=room,
            name=room.display_name_for(user),
            is_member=room.my_last_read is not None,
            last_read=room.my_last_read or 0,
        )
        for room in rooms
    ]


def listed_members(room: Room) -> tuple[list[tuple[int, str]], int]:
    """(user pk, username) of the room's first MEMBERS_LISTED members by name, and how many
    members it has: a `joined` frame or a page of a room of thousands stays small."""
    limit = settings.CHAT["MEMBERS_LISTED"]
    listed = list(
        room.memberships.order_by("user__username").values_list("user_id", "user__username")[:limit]
    )
    count = len(listed) if len(listed) < limit else room.memberships.count()
    return listed, count


def roles_in(room: Room) -> dict[str, str]:
    """The room's owners and moderators by username (at most MEMBERS_LISTED): `joined`'s
    `roles`; everyone else is a member."""
    return dict(
        room.memberships.exclude(role=Membership.Role.MEMBER)
        .order_by("user__username")
        .values_list("user__username", "role")[: settings.CHAT["MEMBERS_LISTED"]]
    )


def standing(user: User, membership: Membership) -> dict[str, Any]:
    """`joined`'s `you`: the member's role, staff status (read live) and mute."""
    mute = (
        Restriction.objects.filter(
            room_id=membership.room_id, user=user, kind=Restriction.Kind.MUTE
        )
        .in_force()
        .first()
    )
    return protocol.you_payload(
        membership.role,
        staff=services.is_staff_now(user),
        muted=mute is not None,
        muted_until=mute.until if mute else None,
    )
