"""The moderation audit log: one row per action, written inside the action's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import AuditEntry, Room

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def record(
    *, actor: User, action: str, room: Room, target: User | None = None, **details: Any
) -> AuditEntry:
    """Log that `actor` took `action` in `room` (on `target`); `details` are JSON-able."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username(),
        action=action,
        target=target,
        target_name=target.get_username() if target is not None else "",
        room=room,
        room_slug=room.slug,
        details=details,
    )
