"""Moderation in Django admin; every change that users must see goes through services."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Membership, Message, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "joined_at", "last_read"]
    readonly_fields = ["joined_at", "last_read"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "member_count", "last_seq", "created_at", "archived_at"]
    list_filter = ["kind", ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name", "topic"]
    readonly_fields = ["last_seq", "created_at"]
    inlines = [MembershipInline]
    actions = ["archive_rooms"]

    @admin.display(description="members")
    def member_count(self, room: Room) -> int:
        return room.memberships.count()

    @admin.action(description="Archive the selected rooms (read-only from now on)")
    def archive_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        from django.utils import timezone

        count = queryset.filter(archived_at__isnull=True).update(archived_at=timezone.now())
        self.message_user(request, f"Archived {count} room(s).", messages.SUCCESS)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Members removed here stop receiving the room live (services.remove_member)."""
        instances = formset.save(commit=False)
        for membership in formset.deleted_objects:
            services.remove_member(room=membership.room, user=membership.user)
        for membership in instances:
            if membership.pk is None:
                services.add_member(
                    room=form.instance, user=membership.user, by=request.user, role=membership.role
                )
            else:
                membership.save()

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        """A room made here has an owner, as one made on the site: its creator."""
        if not change and obj.created_by is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change and obj.created_by is not None:
            services.add_member(
                room=obj, user=obj.created_by, by=request.user, role=Membership.Role.OWNER
            )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "role", "joined_at", "last_read"]
    list_filter = ["role", "room__kind"]
    search_fields = ["user__username", "room__slug"]
    autocomplete_fields = ["user", "room"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        """A membership added here reaches the user's open tabs at once (services.add_member)."""
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.add_member(room=obj.room, user=obj.user, by=request.user, role=obj.role)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.remove_member(room=obj.room, user=obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("room", "user"):
            services.remove_member(room=membership.room, user=membership.user)


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
        count = 0
        for message in queryset.filter(deleted_at__isnull=True).select_related("room", "author"):
            services.soft_delete(message)
            count += 1
        self.message_user(request, f"Deleted {count} message(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Messages need a seq: they are posted through the chat, not created here.
        return False

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        # A hard delete would leave a hole in the room's seq: soft-delete instead.
        services.soft_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        self.soft_delete_messages(request, queryset)
