"""Moderation in Django admin.

Every change users must see goes through rooms/moderation.py (messages: through
`moderation.delete_messages`), with the staff member as the actor: it takes effect live, exactly
as the same action taken from a socket, and is written to the audit log, which the admin shows
and never lets anyone edit. What the rules refuse is shown as an error; nothing is half-saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from . import moderation, services
from .models import AuditEntry, Membership, Message, Restriction, Room
from .services import ChatError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

T = TypeVar("T")


def actor_of(request: HttpRequest) -> User:
    """The staff member acting: the admin lets no one else in."""
    return cast("User", request.user)


class ModerationAdmin(admin.ModelAdmin):
    """An admin whose saves and deletions go through the moderation rules.

    The admin runs a save or a deletion in one transaction: a refusal (`ChatError`) raised
    anywhere in it rolls all of it back, the events it registered on commit included, and is
    shown as an error instead of a 500.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ChatError as refused:
            self.message_user(request, refused.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ChatError as refused:
            self.message_user(request, refused.detail, messages.ERROR)
            opts = self.opts
            change = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change"
            return HttpResponseRedirect(reverse(change, args=[object_id]))

    def apply_each(
        self,
        request: HttpRequest,
        objects: Iterable[T],
        act: Callable[[T], object],
        done: str,
        label: Callable[[T], str] = str,
    ) -> None:
        """Act on each object in a transaction of its own (moderation's functions are atomic)
        and report what was done and each refusal: one refusal stops none of the others."""
        names: list[str] = []
        for obj in objects:
            try:
                act(obj)
            except ChatError as refused:
                self.message_user(request, f"{label(obj)}: {refused.detail}", messages.ERROR)
            else:
                names.append(label(obj))
        if names:
            self.message_user(request, f"{done}: {', '.join(names)}.", messages.SUCCESS)


# --- rooms and their members -----------------------------------------------------------------


class MembershipForm(forms.ModelForm):
    """A membership added here is an invitation: a banned user is refused on the form, with
    the reason, before anything is saved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "user" in self.fields:
            # A membership is someone's: remove it and add the other person instead.
            self.fields["user"].disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        room, user = cleaned.get("room"), cleaned.get("user")
        # A room being created has no bans yet.
        if self.instance.pk is None and room is not None and room.pk is not None and user:
            try:
                services.check_not_banned(user, room, whom=f"{user.get_username()} is")
            except services.Banned as refused:
                self.add_error("user", f"{refused.detail} Lift the ban (Restrictions) first.")
        return cleaned


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "joined_at", "last_read"]
    readonly_fields = ["joined_at", "last_read"]


class RoomForm(forms.ModelForm):
    """The room's settings as members see them: `archived` is a flag, set (with its time) by
    moderation.update_room_settings."""

    slow_mode = forms.IntegerField(
        min_value=0,
        max_value=moderation.MAX_SLOW_MODE_SECONDS,
        initial=0,
        help_text="Seconds a member must wait between messages (owners, moderators and staff "
        "are exempt); 0: off.",
    )
    archived = forms.BooleanField(required=False, help_text="Read-only for everyone.")

    class Meta:
        model = Room
        fields = ["name", "slug", "kind", "topic", "slow_mode", "archived", "created_by"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["archived"].initial = self.instance.is_archived


# The room fields members see change live, through moderation.update_room_settings.
ROOM_SETTINGS = ("topic", "slow_mode", "archived")


@admin.register(Room)
class RoomAdmin(ModerationAdmin):
    form = RoomForm
    list_display = [
        "slug",
        "name",
        "kind",
        "member_count",
        "slow_mode",
        "last_seq",
        "created_at",
        "archived_at",
    ]
    list_filter = ["kind", ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name", "topic"]
    readonly_fields = ["last_seq", "created_at", "archived_at"]
    inlines = [MembershipInline]
    actions = ["archive_rooms", "unarchive_rooms"]

    @admin.display(description="members")
    def member_count(self, room: Room) -> int:
        return room.memberships.count()

    @admin.action(description="Archive the selected rooms (read-only from now on)")
    def archive_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        self._archive(request, queryset.filter(archived_at__isnull=True), True, "Archived")

    @admin.action(description="Unarchive the selected rooms (members may post again)")
    def unarchive_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        self._archive(request, queryset.filter(archived_at__isnull=False), False, "Unarchived")

    def _archive(
        self, request: HttpRequest, rooms: QuerySet[Room], archived: bool, done: str
    ) -> None:
        actor = actor_of(request)
        self.apply_each(
            request,
            rooms,
            lambda room: moderation.update_room_settings(actor=actor, room=room, archived=archived),
            done,
        )

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        """A room made here has an owner, as one made on the site (its creator); a room's
        settings change live for its members."""
        actor = actor_of(request)
        if not change:
            if obj.created_by is None:
                obj.created_by = actor
            if form.cleaned_data.get("archived"):
                obj.archived_at = timezone.now()
            super().save_model(request, obj, form, change)
            moderation.add_member(
                actor=actor, room=obj, target=obj.created_by, role=Membership.Role.OWNER
            )
            return
        others = [name for name in form.changed_data if name not in ROOM_SETTINGS]
        if others:
            obj.save(update_fields=others)
        changes = {
            name: form.cleaned_data[name] for name in ROOM_SETTINGS if name in form.changed_data
        }
        if changes:
            moderation.update_room_settings(actor=actor, room=obj, **changes)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Members removed here are kicked, added ones invited, and roles set, all live."""
        actor, room = actor_of(request), form.instance
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            moderation.moderate(
                actor=actor, room=room, target=membership.user, action=moderation.KICK
            )
        for membership, changed in formset.changed_objects:
            if "role" in changed:
                moderation.set_role(
                    actor=actor, room=room, target=membership.user, role=membership.role
                )
        for membership in formset.new_objects:
            moderation.add_member(
                actor=actor, room=room, target=membership.user, role=membership.role
            )


def _moderating(
    name: str, action: str, description: str, minutes: int | None = None
) -> Callable[[MembershipAdmin, HttpRequest, QuerySet[Membership]], None]:
    """An admin action taking `action` on each selected membership's user in its room."""

    def act(
        modeladmin: MembershipAdmin, request: HttpRequest, queryset: QuerySet[Membership]
    ) -> None:
        modeladmin.moderate_each(request, queryset, action, description, minutes)

    act.__name__ = name
    return admin.action(description=description)(act)


@admin.register(Membership)
class MembershipAdmin(ModerationAdmin):
    form = MembershipForm
    list_display = ["user", "room", "role", "joined_at", "last_read"]
    list_filter = ["role", "room__kind", ("room", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "room__slug"]
    list_select_related = ["user", "room"]
    autocomplete_fields = ["user", "room"]
    actions = [
        _moderating("mute_for_an_hour", moderation.MUTE, "Mute for 1 hour", 60),
        _moderating("mute_for_a_day", moderation.MUTE, "Mute for 1 day", 24 * 60),
        _moderating("mute", moderation.MUTE, "Mute until unmuted"),
        _moderating("unmute", moderation.UNMUTE, "Unmute"),
        _moderating("kick", moderation.KICK, "Kick"),
        _moderating("ban", moderation.BAN, "Ban"),
        _moderating("promote", moderation.PROMOTE, "Promote to moderator"),
        _moderating("demote", moderation.DEMOTE, "Demote to member"),
    ]

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        if obj is None:
            return ["user", "room", "role"]
        return ["user", "room", "role", "joined_at", "last_read", "last_posted"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        # Only the role changes here; the rest is the member's own doing.
        if obj is None:
            return []
        return ["user", "room", "joined_at", "last_read", "last_posted"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # "Kick" removes memberships, and says which the rules refused.
        actions.pop("delete_selected", None)
        return actions

    def moderate_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Membership],
        action: str,
        done: str,
        minutes: int | None = None,
    ) -> None:
        actor = actor_of(request)
        self.apply_each(
            request,
            list(queryset.select_related("room", "user")),
            lambda m: moderation.moderate(
                actor=actor, room=m.room, target=m.user, action=action, minutes=minutes
            ),
            done,
            label=lambda m: f"{m.user} in {m.room}",
        )

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        """A membership added here reaches the user's open tabs at once; a role change is told
        to the room."""
        actor = actor_of(request)
        if change:
            if "role" in form.changed_data:
                moderation.set_role(actor=actor, room=obj.room, target=obj.user, role=obj.role)
            return
        added = moderation.add_member(actor=actor, room=obj.room, target=obj.user, role=obj.role)
        obj.pk = added.pk  # the admin links to, and logs, the row moderation made

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        moderation.moderate(
            actor=actor_of(request), room=obj.room, target=obj.user, action=moderation.KICK
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        self.moderate_each(request, queryset, moderation.KICK, "Kicked")


# --- mutes and bans --------------------------------------------------------------------------


class RestrictionForm(forms.ModelForm):
    """A mute or ban as moderation.moderate takes it: a mute's end in whole minutes from now."""

    class Meta:
        model = Restriction
        fields = ["room", "user", "kind", "until"]
        help_texts = {
            "until": "When a mute ends (rounded up to the minute); empty: until unmuted. "
            "A ban lasts until it is lifted."
        }

    minutes: int | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        until = cleaned.get("until")
        if until is None:
            return cleaned
        if cleaned.get("kind") == Restriction.Kind.BAN:
            self.add_error("until", "A ban lasts until it is lifted: leave this empty.")
            return cleaned
        self.minutes = math.ceil((until - timezone.now()).total_seconds() / 60)
        if not 1 <= self.minutes <= moderation.MAX_MUTE_MINUTES:
            days = moderation.MAX_MUTE_MINUTES // (24 * 60)
            self.add_error("until", f"A mute ends in the future, at most {days} days from now.")
        return cleaned


@admin.register(Restriction)
class RestrictionAdmin(ModerationAdmin):
    form = RestrictionForm
    list_display = ["room", "user", "kind", "until", "by", "created_at"]
    list_filter = ["kind", ("room", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "room__slug"]
    list_select_related = ["room", "user", "by"]
    autocomplete_fields = ["room", "user"]
    actions = ["lift"]

    def has_change_permission(self, request: HttpRequest, obj: Restriction | None = None) -> bool:
        # A mute or ban is lifted (deleted) or taken again, never edited.
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # "Lift" removes restrictions, and says which the rules refused.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Lift the selected mutes and bans", permissions=["delete"])
    def lift(self, request: HttpRequest, queryset: QuerySet[Restriction]) -> None:
        actor = actor_of(request)
        self.apply_each(
            request,
            list(queryset.select_related("room", "user")),
            lambda r: moderation.moderate(
                actor=actor, room=r.room, target=r.user, action=_lifting(r)
            ),
            "Lifted",
        )

    def save_model(self, request: HttpRequest, obj: Restriction, form: Any, change: bool) -> None:
        moderation.moderate(
            actor=actor_of(request),
            room=obj.room,
            target=obj.user,
            action=obj.kind,
            minutes=form.minutes,
        )
        # The admin links to, and logs, the row moderation made.
        obj.pk = Restriction.objects.get(room=obj.room, user=obj.user, kind=obj.kind).pk

    def delete_model(self, request: HttpRequest, obj: Restriction) -> None:
        moderation.moderate(
            actor=actor_of(request), room=obj.room, target=obj.user, action=_lifting(obj)
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Restriction]) -> None:
        self.lift(request, queryset)


def _lifting(restriction: Restriction) -> str:
    """The moderation action that lifts a restriction."""
    return moderation.UNBAN if restriction.kind == Restriction.Kind.BAN else moderation.UNMUTE


# --- the audit log ---------------------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The moderation log: written by rooms/audit.py only, read here, never edited."""

    list_display = ["created_at", "actor_name", "action", "target_name", "room_slug", "details"]
    list_filter = [
        "action",
        ("room", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["actor_name", "target_name", "room_slug"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "actor",
        "actor_name",
        "action",
        "target",
        "target_name",
        "room",
        "room_slug",
        "details",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


# --- messages --------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "author", "preview", "created_at", "edited_at", "deleted_at"]
    list_filter = ["room", "created_at", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["body", "author__username"]
    list_select_related = ["room", "author"]
    readonly_fields = ["room", "author", "seq", "ref", "created_at", "edited_at", "deleted_at"]
    actions = ["soft_delete_messages"]
    date_hierarchy = "created_at"

    @admin.display(description="body")
    def preview(self, message: Message) -> str:
        return "(deleted)" if message.is_deleted else message.body[:80]

    @admin.action(description="Delete the selected messages for everyone (keeps their seq)")
    def soft_delete_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = moderation.delete_messages(
            actor=actor_of(request),
            messages=queryset.filter(deleted_at__isnull=True).select_related(
                "room", "author", "reply_to__author"
            ),
        )
        self.message_user(request, f"Deleted {count} message(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Messages need a seq: they are posted through the chat, not created here.
        return False

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        # A hard delete would leave a hole in the room's seq: soft-delete instead.
        moderation.delete_messages(actor=actor_of(request), messages=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self.soft_delete_messages(request, queryset)
