"""Rooms, memberships and messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class RoomQuerySet(models.QuerySet["Room"]):
    def active(self) -> RoomQuerySet:
        return self.filter(archived_at__isnull=True)

    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> RoomQuerySet:
        """Public rooms, and private or direct rooms the user belongs to."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(kind=Room.Kind.PUBLIC) | Q(memberships__user=user)).distinct()

    def of_member(self, user: AbstractBaseUser) -> RoomQuerySet:
        return self.filter(memberships__user=user)


class Room(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DIRECT = "direct"

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=80)
    topic = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Members (not owners, moderators or staff) may post once per this many seconds; 0: off.
    slow_mode = models.PositiveIntegerField(default=0)
    # The seq of the newest message; messages are numbered 1, 2, 3… per room, without gaps.
    last_seq = models.PositiveBigIntegerField(default=0)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_rooms"
    )

    objects = RoomQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"#{self.slug}" if self.kind != Room.Kind.DIRECT else self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def group_name(self) -> str:
        """The channel-layer group of the room, built from its primary key."""
        return f"room.{self.pk}"

    def display_name_for(self, user: AbstractBaseUser | None) -> str:
        """A direct room is called after the other person; other rooms by their name."""
        if self.kind == Room.Kind.DIRECT and user is not None:
            names = [n for n in self.name.split(" & ") if n != user.get_username()]
            return names[0] if names else self.name
        return self.name


# `Membership.muted_until` of a mute without end (the Restriction says NULL).
MUTED_FOR_GOOD = datetime(9999, 1, 1, tzinfo=UTC)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MODERATOR = "moderator"
        MEMBER = "member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    # The seq up to which the user has read; unread = room.last_seq - last_read.
    last_read = models.PositiveBigIntegerField(default=0)
    # When the member last posted, in Unix seconds: slow mode compares it with the room's
    # `slow_mode` inside the statement that stores a message, the same SQL on every database.
    last_posted = models.FloatField(default=0)
    # The end of the member's mute, copied from their Restriction (which outlives the
    # membership) so that posting checks it on the row it updates anyway; MUTED_FOR_GOOD for
    # a mute without end. NULL: not muted.
    muted_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="membership_unique_user_room")
        ]
        ordering = ["room", "joined_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"

    @property
    def moderates(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.MODERATOR)


class RestrictionQuerySet(models.QuerySet["Restriction"]):
    def in_force(self, now: datetime | None = None) -> RestrictionQuerySet:
        """Bans, and mutes that have not expired (an expired mute needs no job to lift it)."""
        return self.filter(Q(until__isnull=True) | Q(until__gt=now or timezone.now()))


class Reaction(models.Model):
    """One user's emoji on one message (`react` toggles it)."""

    message = models.ForeignKey("Message", on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_reactions"
    )
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_unique_message_user_emoji"
            )
        ]
        ordering = ["message", "id"]

    def __str__(self) -> str:
        return f"{self.user} {self.emoji} on {self.message_id}"


class Mention(models.Model):
    """A member named with `@username` in a message: what counts their unread mentions
    (`@room` is the message's `mentions_room`, not a row per member)."""

    message = models.ForeignKey("Message", on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The message's room and seq, so that counting a user's unread mentions reads this table only.
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="mention_unique_message_user")
        ]
        indexes = [models.Index(fields=["user", "room", "seq"], name="mention_user_room_seq")]
        ordering = ["message", "id"]

    def __str__(self) -> str:
        return f"@{self.user} in {self.message_id}"


class Restriction(models.Model):
    """A mute or a ban of one user in one room. Kept apart from the membership so that it
    outlives it: leaving and joining again lifts neither."""

    class Kind(models.TextChoices):
        MUTE = "mute"
        BAN = "ban"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="restrictions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_restrictions"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # A mute ends then (checked when the user posts); NULL: until lifted. Bans never expire.
    until = models.DateTimeField(null=True, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = RestrictionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "user", "kind"], name="restriction_unique_room_user_kind"
            )
        ]
        ordering = ["room", "-created_at"]

    def __str__(self) -> str:
        until = f" until {self.until:%Y-%m-%d %H:%M}" if self.until else ""
        return f"{self.kind} of {self.user} in {self.room}{until}"


class AuditEntry(models.Model):
    """One moderation action, whoever took it and however (a frame, a page, the admin).

    Names are copied: the log still says who and where after a user or room is deleted.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, db_index=True)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_name = models.CharField(max_length=150, blank=True)
    room = models.ForeignKey(
        Room, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    room_slug = models.CharField(max_length=80, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        whom = f" {self.target_name}" if self.target_name else ""
        when = f"{self.created_at:%Y-%m-%d %H:%M}"
        return f"{when} {self.actor_name}: {self.action}{whom} in #{self.room_slug}"


def _attachment_path(attachment: Attachment, filename: str) -> str:
    """Where a file is stored: a random name under its room, never the uploader's name."""
    return f"attachments/{attachment.room_id}/{uuid.uuid4().hex}{Path(filename).suffix}"


class Attachment(models.Model):
    """A file uploaded to a room, then sent with one message (`send`'s `attachments`).

    The file lives in Django's default storage (the file system, or S3 and the like through
    django-storages), under a random name; its row keeps the name the uploader gave it and the
    type its content showed (rooms/attachments.py).
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # NULL until sent; a message keeps its attachments until it is deleted.
    message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=_attachment_path, max_length=255)
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["uploader", "message"], name="attachment_uploader_message")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_type}, {self.size} bytes)"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    @property
    def url(self) -> str:
        return reverse("attachment_file", args=[self.pk, self.name])


class MessageQuerySet(models.QuerySet["Message"]):
    def for_payload(self) -> MessageQuerySet:
        """With what a message's payload shows: its author, the message it replies to, its
        reactions, mentions and attachments (one query more each, for the lot)."""
        reactions = Reaction.objects.select_related("user").order_by("id")
        mentions = Mention.objects.select_related("user").order_by("id")
        return self.select_related("author", "reply_to__author").prefetch_related(
            models.Prefetch("reactions", queryset=reactions),
            models.Prefetch("mentions", queryset=mentions),
            models.Prefetch("attachments", queryset=Attachment.objects.order_by("id")),
        )


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    # PROTECT: deleting a user would punch holes in every room's seq; deactivate them instead.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chat_messages"
    )
    seq = models.PositiveBigIntegerField()
    body = models.TextField(max_length=4000)
    # NULL, not "": messages without a ref must not collide in the unique constraint below.
    ref = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The message of the same room this one answers (`reply_to` of `send`).
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # `@room` by an owner, moderator or staff: a mention of every member (rooms/mentions.py).
    mentions_room = models.BooleanField(default=False, db_default=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_unique_room_seq"),
            # A client retrying a send with the same ref must never store it twice.
            models.UniqueConstraint(
                fields=["room", "author", "ref"], name="message_unique_room_author_ref"
            ),
            models.CheckConstraint(condition=Q(seq__gte=1), name="message_seq_positive"),
        ]
        indexes = [
            models.Index(
                fields=["room", "seq"],
                condition=Q(mentions_room=True),
                name="message_room_mentions",
            )
        ]
        ordering = ["room", "seq"]

    def __str__(self) -> str:
        preview = "(deleted)" if self.is_deleted else self.body[:40]
        return f"{self.room} #{self.seq} {self.author}: {preview}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
