"""Keeping order in a room: roles, mutes, kicks, bans, invitations and room settings.

Every moderation write goes through here, whoever asks: a frame (rooms/session.py) or the admin
(rooms/admin.py). Who may do what to whom is decided once (`refusal`), every action is written
to the audit log (rooms/audit.py) in its transaction, and what the site must hear is published
on commit, so the admin's actions take effect live exactly as the frames do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import audit, fanout, protocol, services
from .models import MUTED_FOR_GOOD, Membership, Message, Restriction, Room
from .services import ChatError, Forbidden

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LIMITS = settings.CHAT

MUTE, UNMUTE, KICK, BAN, UNBAN, PROMOTE, DEMOTE = (
    "mute",
    "unmute",
    "kick",
    "ban",
    "unban",
    "promote",
    "demote",
)
ACTIONS = (MUTE, UNMUTE, KICK, BAN, UNBAN, PROMOTE, DEMOTE)
OWNER_ACTIONS = frozenset({PROMOTE, DEMOTE})
MAX_MUTE_MINUTES = 366 * 24 * 60
MAX_SLOW_MODE_SECONDS = 6 * 3600
MAX_TOPIC_CHARS = Room._meta.get_field("topic").max_length or 200

# Who outranks whom. Staff act as owners in every room, and above them: only staff may act on
# an owner or on staff.
MEMBER_RANK, MODERATOR_RANK, OWNER_RANK, STAFF_RANK = 0, 1, 2, 3
_ROLE_RANK: dict[str | None, int] = {
    None: MEMBER_RANK,
    Membership.Role.MEMBER: MEMBER_RANK,
    Membership.Role.MODERATOR: MODERATOR_RANK,
    Membership.Role.OWNER: OWNER_RANK,
}


class BadRequest(ChatError, ValueError):
    code = protocol.BAD_FRAME


class NotMember(ChatError, LookupError):
    code = protocol.NOT_FOUND


def refusal(action: str, *, actor_rank: int, target_rank: int, on_self: bool) -> str | None:
    """Why the rules refuse `action` to an actor of `actor_rank` on a target of `target_rank`;
    None if they allow it. Every moderation action asks this, and only this."""
    if actor_rank < MODERATOR_RANK:
        return "Only the room's owners and moderators may do that."
    if on_self:
        return "You cannot moderate yourself."
    if action in OWNER_ACTIONS and actor_rank < OWNER_RANK:
        return "Only the room's owners may promote or demote."
    if target_rank >= actor_rank and actor_rank < STAFF_RANK:
        if actor_rank == MODERATOR_RANK:
            return "A moderator cannot act on an owner or on another moderator."
        return "An owner cannot act on another owner, or on staff."
    return None


def rank_in(user: User, room: Room) -> int:
    """The user's rank in the room, staff status read live."""
    if services.is_staff_now(user):
        return STAFF_RANK
    role = Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()
    return _ROLE_RANK[role]


def _check_moderator(actor: User, room: Room, what: str = "do that") -> int:
    """The actor's rank, if they may moderate the room at all."""
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("A direct room has no moderators.")
    rank = rank_in(actor, room)
    if rank < MODERATOR_RANK:
        raise Forbidden(f"Only the room's owners and moderators may {what}.")
    return rank


def _check_room_allowance(user: User) -> None:
    if Membership.objects.filter(user=user).count() >= LIMITS["ROOMS_PER_USER"]:
        raise Forbidden(f"{user.get_username()} belongs to too many rooms to join another.")


def _target(target: User | str) -> User:
    return services.find_user(target) if isinstance(target, str) else target


# --- moderate: one frame, seven actions ------------------------------------------------------


@transaction.atomic
def moderate(
    *,
    actor: User,
    room: Room,
    target: User | str,
    action: str,
    minutes: int | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """Mute, unmute, kick, ban, unban, promote or demote `target` in `room`; returns the
    `moderated` event the room gets (the actor's connection `origin` gets it as its reply)."""
    if action not in ACTIONS:
        raise BadRequest(f"`action` must be one of {', '.join(ACTIONS)}.")
    if minutes is not None and action != MUTE:
        raise BadRequest("`minutes` goes with `mute` only.")
    if minutes is not None and not 1 <= minutes <= MAX_MUTE_MINUTES:
        raise BadRequest(f"`minutes` must be from 1 to {MAX_MUTE_MINUTES}.")
    actor_rank = _check_moderator(actor, room)
    target = _target(target)
    membership = Membership.objects.select_for_update().filter(room=room, user=target).first()
    target_rank = (
        STAFF_RANK
        if services.is_staff_now(target)
        else _ROLE_RANK[membership.role if membership else None]
    )
    why = refusal(action, actor_rank=actor_rank, target_rank=target_rank, on_self=actor == target)
    if why:
        raise Forbidden(why)

    until = None
    role = None
    if action == MUTE:
        until = timezone.now() + timedelta(minutes=minutes) if minutes else None
        Restriction.objects.update_or_create(
            room=room,
            user=target,
            kind=Restriction.Kind.MUTE,
            defaults={"until": until, "by": actor},
        )
        if membership is not None:
            membership.muted_until = until or MUTED_FOR_GOOD
            membership.save(update_fields=["muted_until"])
    elif action in (UNMUTE, UNBAN):
        kind = Restriction.Kind.MUTE if action == UNMUTE else Restriction.Kind.BAN
        lifted, _ = Restriction.objects.filter(room=room, user=target, kind=kind).delete()
        if membership is not None and action == UNMUTE:
            membership.muted_until = None
            membership.save(update_fields=["muted_until"])
        if not lifted:
            # Nothing to lift: harmless, and nothing for the log or the room.
            return protocol.moderated(
                room.slug, target.get_username(), action, actor.get_username()
            )
    elif action == BAN:
        Restriction.objects.get_or_create(
            room=room, user=target, kind=Restriction.Kind.BAN, defaults={"by": actor}
        )
        if membership is not None:
            _remove(membership)
    else:
        if membership is None:
            raise NotMember(f"{target.get_username()} is not a member of this room.")
        if action == KICK:
            _remove(membership)
        else:
            role = _change_role(membership, action)

    details: dict[str, Any] = {}
    if minutes:
        details["minutes"] = minutes
    if role:
        details["role"] = role
    audit.record(actor=actor, action=action, room=room, target=target, **details)
    event = protocol.moderated(
        room.slug, target.get_username(), action, actor.get_username(), until=until, role=role
    )
    fanout.publish_on_commit(
        [{"room": room.pk, "frame": protocol.encode(event), "skip_conn": origin}]
    )
    return event


def _remove(membership: Membership) -> None:
    """Take a kicked or banned member out: their connections get `room_removed` and nothing
    more of the room, on every worker."""
    membership.delete()
    services.publish_membership_ended(user=membership.user, room=membership.room, removed=True)


def _change_role(membership: Membership, action: str) -> str:
    """Promote a member to moderator, or demote anyone to member; returns the role after."""
    if action == PROMOTE and membership.role == Membership.Role.MEMBER:
        membership.role = Membership.Role.MODERATOR
    elif action == DEMOTE:
        membership.role = Membership.Role.MEMBER
    membership.save(update_fields=["role"])
    return membership.role


# --- memberships: invitations, and the admin's adds, removals and roles ----------------------


@transaction.atomic
def invite(*, actor: User, room: Room, target: User | str) -> dict[str, Any]:
    """Add `target` to the room (private ones above all); returns the `invited` reply."""
    _check_moderator(actor, room, "invite")
    target = _target(target)
    services.check_not_banned(target, room, whom=f"{target.get_username()} is")
    if not Membership.objects.filter(room=room, user=target).exists():
        _check_room_allowance(target)
        services.add_membership(user=target, room=room)
        audit.record(actor=actor, action="invite", room=room, target=target)
    return protocol.invited(room.slug, target.get_username())


@transaction.atomic
def add_member(
    *, actor: User, room: Room, target: User, role: str = Membership.Role.MEMBER
) -> Membership:
    """Add someone with a role (owners and staff; the admin): as an invitation, never a ban's
    way around."""
    if _check_moderator(actor, room, "add members") < OWNER_RANK:
        raise Forbidden("Only the room's owners can add members.")
    services.check_not_banned(target, room, whom=f"{target.get_username()} is")
    existing = Membership.objects.filter(room=room, user=target).first()
    if existing is not None:
        return existing
    _check_room_allowance(target)
    membership = services.add_membership(user=target, room=room, role=role)
    audit.record(actor=actor, action="add", room=room, target=target, role=role)
    return membership


@transaction.atomic
def set_role(*, actor: User, room: Room, target: User, role: str) -> None:
    """Give a member any role (staff; the admin), told to the room as a promotion or demotion."""
    if _check_moderator(actor, room) < STAFF_RANK:
        raise Forbidden("Only staff may set any role.")
    membership = Membership.objects.select_for_update().filter(room=room, user=target).first()
    if membership is None:
        raise NotMember(f"{target.get_username()} is not a member of this room.")
    if membership.role == role:
        return
    action = PROMOTE if _ROLE_RANK[role] > _ROLE_RANK[membership.role] else DEMOTE
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(actor=actor, action=action, room=room, target=target, role=role)
    event = protocol.moderated(
        room.slug, target.get_username(), action, actor.get_username(), role=role
    )
    fanout.publish_on_commit([{"room": room.pk, "frame": protocol.encode(event)}])


# --- room settings ---------------------------------------------------------------------------


@transaction.atomic
def update_room_settings(
    *,
    actor: User,
    room: Room,
    slow_mode: int | None = None,
    archived: bool | None = None,
    topic: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """Change the room's slow mode, archive flag or topic; returns the `room_updated` event the
    room gets (the actor's connection `origin` gets it as its reply)."""
    if slow_mode is not None and not 0 <= slow_mode <= MAX_SLOW_MODE_SECONDS:
        raise BadRequest(f"`slow_mode` must be from 0 to {MAX_SLOW_MODE_SECONDS} seconds.")
    if topic is not None:
        topic = topic.strip()
        if len(topic) > MAX_TOPIC_CHARS:
            raise BadRequest(f"A topic may have at most {MAX_TOPIC_CHARS} characters.")
    _check_moderator(actor, room, "change its settings")
    room = Room.objects.select_for_update().get(pk=room.pk)
    changes: dict[str, Any] = {}
    if slow_mode is not None and slow_mode != room.slow_mode:
        room.slow_mode = changes["slow_mode"] = slow_mode
    if archived is not None and archived != room.is_archived:
        room.archived_at = timezone.now() if archived else None
        changes["archived"] = archived
    if topic is not None and topic != room.topic:
        room.topic = changes["topic"] = topic
    if changes:
        fields = {"archived": "archived_at"}
        room.save(update_fields=[fields.get(name, name) for name in changes])
        audit.record(actor=actor, action="room_settings", room=room, **changes)
    event = protocol.room_updated(protocol.room_payload(room))
    if changes:
        fanout.publish_on_commit(
            [{"room": room.pk, "frame": protocol.encode(event), "skip_conn": origin}]
        )
    return event


# --- messages ---------------------------------------------------------------------------------


@transaction.atomic
def delete_messages(*, actor: User, messages: Iterable[Message]) -> int:
    """Delete messages for everyone (staff, in the admin; the caller checks the right); deleting
    someone else's is a moderation action, written to the audit log. Returns how many."""
    count = 0
    for message in messages:
        if not message.is_deleted:
            services.soft_delete(message, by=actor)
            count += 1
    return count
