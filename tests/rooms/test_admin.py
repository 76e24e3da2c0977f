"""Moderation in Django admin, through the real admin pages: every action changes what the
member can do, is written to the audit log with the staff member as its actor, and takes effect
live. alice owns #lobby, bob is a member, carol an outsider; `admin_user` is staff."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from rooms import fanout, moderation, services
from rooms.models import AuditEntry, Membership, Message, Restriction, Room

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/rooms/membership/"
RESTRICTIONS = "/admin/rooms/restriction/"
AUDIT_LOG = "/admin/rooms/auditentry/"


def membership(room: Room, user: Any) -> Membership:
    return Membership.objects.get(room=room, user=user)


def act(client: Client, url: str, action: str, *objects: Any) -> Any:
    """Run an admin action on the selected objects; the changelist it comes back to."""
    return client.post(
        url, {"action": action, "_selected_action": [str(o.pk) for o in objects]}, follow=True
    )


def shown(response: Any) -> list[tuple[str, str]]:
    """The admin messages on a page: (level, text)."""
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def log() -> list[tuple[str, str, str, str]]:
    return [
        (e.actor_name, e.action, e.target_name, e.room_slug)
        for e in AuditEntry.objects.order_by("id")
    ]


def form_data(page: Any) -> dict[str, Any]:
    """What the browser would post back, unchanged, from an admin add or change page: the main
    form and every inline formset."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else str(value)
    return data


def add_row(data: dict[str, Any], user: Any, role: str = "member") -> None:
    """Add a row to the room page's member list, as its "Add another" link does."""
    n = int(data["memberships-TOTAL_FORMS"])
    data.update(
        {
            "memberships-TOTAL_FORMS": str(n + 1),
            f"memberships-{n}-user": str(user.pk),
            f"memberships-{n}-role": role,
        }
    )


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The frames published on commit (with `django_capture_on_commit_callbacks`)."""
    frames: list[dict[str, Any]] = []

    def record(items: list[dict[str, Any]]) -> None:
        frames.extend({**item, "frame": json.loads(item["frame"])} for item in items)

    monkeypatch.setattr(fanout, "publish", record)
    return frames


def test_the_moderation_pages_load(admin_client, public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    mute = Restriction.objects.get()
    for url in (
        "/admin/rooms/room/add/",
        f"/admin/rooms/room/{public_room.pk}/change/",
        MEMBERSHIPS,
        f"{MEMBERSHIPS}add/",
        f"{MEMBERSHIPS}{membership(public_room, bob).pk}/change/",
        RESTRICTIONS,
        f"{RESTRICTIONS}add/",
        f"{RESTRICTIONS}{mute.pk}/change/",
        AUDIT_LOG,
        f"{AUDIT_LOG}{AuditEntry.objects.get().pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url


# --- membership actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "minutes"), [("mute_for_an_hour", 60), ("mute_for_a_day", 1440), ("mute", None)]
)
def test_a_member_muted_in_the_admin_cannot_post_until_unmuted(
    admin_client, admin_user, public_room, bob, action, minutes
):
    page = act(admin_client, MEMBERSHIPS, action, membership(public_room, bob))
    assert [level for level, _ in shown(page)] == ["success"]
    with pytest.raises(services.Muted):
        services.post_message(author=bob, room=public_room, body="hi")
    until = Restriction.objects.get(room=public_room, user=bob, kind="mute").until
    if minutes is None:
        assert until is None
    else:
        left = until - timezone.now()
        assert timedelta(minutes=minutes - 1) < left <= timedelta(minutes=minutes)
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target, entry.room) == (
        admin_user,
        "mute",
        bob,
        public_room,
    )
    assert entry.details == ({"minutes": minutes} if minutes else {})

    act(admin_client, MEMBERSHIPS, "unmute", membership(public_room, bob))
    assert services.post_message(author=bob, room=public_room, body="hi").message.seq == 1
    assert log()[-1] == ("admin", "unmute", "bob", "lobby")


def test_a_member_kicked_in_the_admin_is_out_and_may_join_again(
    admin_client, admin_user, public_room, bob
):
    act(admin_client, MEMBERSHIPS, "kick", membership(public_room, bob))
    assert not Membership.objects.filter(room=public_room, user=bob).exists()
    with pytest.raises(services.Forbidden):
        services.post_message(author=bob, room=public_room, body="hi")
    assert AuditEntry.objects.get().actor == admin_user
    assert log() == [("admin", "kick", "bob", "lobby")]
    services.join_room(user=bob, room=public_room)


def test_a_member_banned_in_the_admin_cannot_join_nor_be_added_back(
    admin_client, admin_user, public_room, bob
):
    act(admin_client, MEMBERSHIPS, "ban", membership(public_room, bob))
    assert not Membership.objects.filter(room=public_room, user=bob).exists()
    with pytest.raises(services.Banned):
        services.join_room(user=bob, room=public_room)
    assert AuditEntry.objects.get().actor == admin_user

    # Not through the membership admin…
    page = admin_client.post(
        f"{MEMBERSHIPS}add/", {"user": bob.pk, "room": public_room.pk, "role": "member"}
    )
    assert page.status_code == 200
    assert "bob is banned from this room" in str(page.context["adminform"].form.errors["user"])
    # …nor through the room's member list.
    room_page = f"/admin/rooms/room/{public_room.pk}/change/"
    data = form_data(admin_client.get(room_page))
    add_row(data, bob)
    page = admin_client.post(room_page, data)
    assert page.status_code == 200 and b"bob is banned from this room" in page.content
    assert not Membership.objects.filter(room=public_room, user=bob).exists()
    assert log() == [("admin", "ban", "bob", "lobby")]


def test_promote_and_demote_in_the_admin(admin_client, public_room, bob):
    act(admin_client, MEMBERSHIPS, "promote", membership(public_room, bob))
    assert membership(public_room, bob).role == "moderator"
    act(admin_client, MEMBERSHIPS, "demote", membership(public_room, bob))
    assert membership(public_room, bob).role == "member"
    assert log() == [("admin", "promote", "bob", "lobby"), ("admin", "demote", "bob", "lobby")]


def test_one_refusal_stops_none_of_the_other_selected_memberships(
    admin_client, admin_user, public_room, alice, bob, carol
):
    services.join_room(user=admin_user, room=public_room)
    dm, _ = services.get_or_create_direct_room(sender=alice, recipient=carol)
    selected = [
        membership(public_room, admin_user),
        membership(dm, carol),
        membership(public_room, bob),
    ]
    page = act(admin_client, MEMBERSHIPS, "mute_for_an_hour", *selected)
    assert sorted(shown(page)) == [
        ("error", "admin in #lobby: You cannot moderate yourself."),
        ("error", "carol in alice & carol: A direct room has no moderators."),
        ("success", "Mute for 1 hour: bob in #lobby."),
    ]
    assert list(Restriction.objects.values_list("user__username", flat=True)) == ["bob"]
    assert log() == [("admin", "mute", "bob", "lobby")]


def test_memberships_added_changed_and_deleted_in_the_admin_go_through_moderation(
    admin_client, public_room, bob, carol
):
    page = admin_client.post(
        f"{MEMBERSHIPS}add/", {"user": carol.pk, "room": public_room.pk, "role": "member"}
    )
    assert page.status_code == 302
    carols = membership(public_room, carol)
    assert carols.last_read == public_room.last_seq

    change = f"{MEMBERSHIPS}{carols.pk}/change/"
    assert admin_client.post(change, {"role": "moderator"}).status_code == 302
    assert membership(public_room, carol).role == "moderator"

    delete = f"{MEMBERSHIPS}{carols.pk}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Membership.objects.filter(room=public_room, user=carol).exists()
    assert log() == [
        ("admin", "add", "carol", "lobby"),
        ("admin", "promote", "carol", "lobby"),
        ("admin", "kick", "carol", "lobby"),
    ]
    # Bulk deletion is the "Kick" action, which reports refusals; Django's would not.
    page = admin_client.get(MEMBERSHIPS)
    assert b'value="delete_selected"' not in page.content and b'value="kick"' in page.content


def test_the_room_member_list_kicks_invites_and_sets_roles(
    admin_client, public_room, alice, bob, carol, published, django_capture_on_commit_callbacks
):
    room_page = f"/admin/rooms/room/{public_room.pk}/change/"
    data = form_data(admin_client.get(room_page))
    rows = {data[f"memberships-{n}-user"]: n for n in range(2)}
    data[f"memberships-{rows[str(bob.pk)]}-DELETE"] = "on"
    data[f"memberships-{rows[str(alice.pk)]}-role"] = "moderator"
    add_row(data, carol)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(room_page, data).status_code == 302
    roles = dict(public_room.memberships.values_list("user__username", "role"))
    assert roles == {"alice": "moderator", "carol": "member"}
    assert log() == [
        ("admin", "kick", "bob", "lobby"),
        ("admin", "demote", "alice", "lobby"),
        ("admin", "add", "carol", "lobby"),
    ]
    to_bob = [i["frame"] for i in published if i.get("user") == bob.pk]
    assert to_bob == [{"type": "room_removed", "room": "lobby"}]
    to_carol = [i["frame"]["type"] for i in published if i.get("user") == carol.pk]
    assert to_carol == ["room_added"]


def test_a_refused_change_in_the_member_list_saves_nothing(admin_client, admin_user, public_room):
    services.join_room(user=admin_user, room=public_room)
    room_page = f"/admin/rooms/room/{public_room.pk}/change/"
    data = form_data(admin_client.get(room_page))
    data["topic"] = "Changed"
    mine = next(n for n in range(3) if data[f"memberships-{n}-user"] == str(admin_user.pk))
    data[f"memberships-{mine}-DELETE"] = "on"
    page = admin_client.post(room_page, data, follow=True)
    assert ("error", "You cannot moderate yourself.") in shown(page)
    public_room.refresh_from_db()
    assert public_room.topic == "Say hi" and membership(public_room, admin_user)
    assert not AuditEntry.objects.exists()

    mine = membership(public_room, admin_user)
    page = admin_client.post(f"{MEMBERSHIPS}{mine.pk}/delete/", {"post": "yes"}, follow=True)
    assert page.redirect_chain == [(f"{MEMBERSHIPS}{mine.pk}/change/", 302)]
    assert shown(page) == [("error", "You cannot moderate yourself.")]
    assert membership(public_room, admin_user) and not AuditEntry.objects.exists()


# --- rooms -----------------------------------------------------------------------------------


def test_room_settings_edited_in_the_admin_reach_the_room_live(
    admin_client, public_room, published, django_capture_on_commit_callbacks
):
    room_page = f"/admin/rooms/room/{public_room.pk}/change/"
    data = form_data(admin_client.get(room_page))
    data.update({"topic": "Be kind", "slow_mode": "30", "name": "Big lobby"})
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(room_page, data).status_code == 302
    public_room.refresh_from_db()
    assert (public_room.topic, public_room.slow_mode, public_room.name) == (
        "Be kind",
        30,
        "Big lobby",
    )
    (update,) = [i["frame"] for i in published if i.get("room") == public_room.pk]
    assert update["type"] == "room_updated"
    assert update["room"]["topic"] == "Be kind" and update["room"]["slow_mode"] == 30
    entry = AuditEntry.objects.get()
    assert entry.action == "room_settings"
    assert entry.details == {"topic": "Be kind", "slow_mode": 30}

    data.update({"slow_mode": str(moderation.MAX_SLOW_MODE_SECONDS + 1)})
    page = admin_client.post(room_page, data)
    assert page.status_code == 200 and "slow_mode" in page.context["adminform"].form.errors


def test_archive_and_unarchive_actions(admin_client, public_room, bob):
    page = act(admin_client, "/admin/rooms/room/", "archive_rooms", public_room)
    assert shown(page) == [("success", "Archived: #lobby.")]
    with pytest.raises(services.Forbidden, match="archived"):
        services.post_message(author=bob, room=public_room, body="hi")
    act(admin_client, "/admin/rooms/room/", "unarchive_rooms", public_room)
    assert services.post_message(author=bob, room=public_room, body="hi").message.seq == 1
    assert [(e.action, e.details) for e in AuditEntry.objects.order_by("id")] == [
        ("room_settings", {"archived": True}),
        ("room_settings", {"archived": False}),
    ]
    assert b"slow_mode" in admin_client.get("/admin/rooms/room/").content


def test_a_room_made_in_the_admin_is_owned_by_its_creator(admin_client, admin_user, alice):
    page = admin_client.post(
        "/admin/rooms/room/add/",
        {
            "name": "Garden",
            "slug": "garden",
            "kind": "public",
            "slow_mode": "0",
            "created_by": str(alice.pk),
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert page.status_code == 302
    room = Room.objects.get(slug="garden")
    assert membership(room, alice).role == "owner"
    assert log() == [("admin", "add", "alice", "garden")]


# --- mutes and bans --------------------------------------------------------------------------


def test_a_mute_added_in_the_admin_ends_when_it_says(admin_client, admin_user, public_room, bob):
    until = timezone.now() + timedelta(hours=2)
    page = admin_client.post(
        f"{RESTRICTIONS}add/",
        {
            "room": public_room.pk,
            "user": bob.pk,
            "kind": "mute",
            "until_0": until.strftime("%Y-%m-%d"),
            "until_1": until.strftime("%H:%M:%S"),
        },
    )
    assert page.status_code == 302
    mute = Restriction.objects.get()
    assert mute.by == admin_user
    assert timedelta(0) <= mute.until - until.replace(microsecond=0) <= timedelta(minutes=1)
    with pytest.raises(services.Muted):
        services.post_message(author=bob, room=public_room, body="hi")
    assert AuditEntry.objects.get().details == {"minutes": 120}


def test_a_ban_added_in_the_admin_removes_and_keeps_out(admin_client, public_room, bob):
    add = f"{RESTRICTIONS}add/"
    ban = {"room": public_room.pk, "user": bob.pk, "kind": "ban"}
    page = admin_client.post(add, {**ban, "until_0": "2099-01-01", "until_1": "00:00:00"})
    assert page.status_code == 200
    assert "A ban lasts until it is lifted" in str(page.context["adminform"].form.errors)
    assert admin_client.post(add, ban).status_code == 302
    assert not Membership.objects.filter(room=public_room, user=bob).exists()
    with pytest.raises(services.Banned):
        services.join_room(user=bob, room=public_room)
    assert log() == [("admin", "ban", "bob", "lobby")]


def test_mutes_and_bans_are_lifted_not_edited(admin_client, public_room, alice, bob, carol):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    moderation.moderate(actor=alice, room=public_room, target=carol, action="ban")
    mute, ban = Restriction.objects.get(kind="mute"), Restriction.objects.get(kind="ban")

    change = f"{RESTRICTIONS}{mute.pk}/change/"
    assert b'name="_save"' not in admin_client.get(change).content
    assert admin_client.post(change, {"kind": "ban"}).status_code == 403

    page = admin_client.post(f"{RESTRICTIONS}{mute.pk}/delete/", {"post": "yes"}, follow=True)
    assert [level for level, _ in shown(page)] == ["success"]
    page = act(admin_client, RESTRICTIONS, "lift", ban)
    assert shown(page) == [("success", f"Lifted: {ban}.")]
    assert not Restriction.objects.exists()
    services.post_message(author=bob, room=public_room, body="unmuted")
    services.join_room(user=carol, room=public_room)
    assert log()[-2:] == [("admin", "unmute", "bob", "lobby"), ("admin", "unban", "carol", "lobby")]


def test_the_restriction_list_filters_and_searches(admin_client, public_room, alice, bob, carol):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    moderation.moderate(actor=alice, room=public_room, target=carol, action="ban")
    for query, expected in (
        ("?kind__exact=ban", ["carol"]),
        (f"?room__id__exact={public_room.pk}", ["bob", "carol"]),
        ("?q=bob", ["bob"]),
    ):
        page = admin_client.get(RESTRICTIONS + query)
        assert sorted(r.user.username for r in page.context["cl"].result_list) == expected


# --- the audit log ---------------------------------------------------------------------------


def test_the_audit_log_filters_by_room_actor_and_action(
    admin_client, admin_user, public_room, alice, bob, carol
):
    other = services.create_room(creator=alice, name="Other", slug="other")
    services.join_room(user=carol, room=other)
    moderation.moderate(actor=alice, room=public_room, target=bob, action="mute")
    moderation.moderate(actor=admin_user, room=public_room, target=bob, action="kick")
    moderation.moderate(actor=admin_user, room=other, target=carol, action="kick")

    def listed(query: str) -> list[tuple[str, str, str, str]]:
        page = admin_client.get(AUDIT_LOG + query)
        assert page.status_code == 200, query
        entries = sorted(page.context["cl"].result_list, key=lambda e: e.pk)
        return [(e.actor_name, e.action, e.target_name, e.room_slug) for e in entries]

    assert listed(f"?room__id__exact={other.pk}") == [("admin", "kick", "carol", "other")]
    assert listed(f"?actor__id__exact={alice.pk}") == [("alice", "mute", "bob", "lobby")]
    assert listed("?action=kick") == [
        ("admin", "kick", "bob", "lobby"),
        ("admin", "kick", "carol", "other"),
    ]
    assert listed("?q=carol") == [("admin", "kick", "carol", "other")]
    assert len(listed(f"?created_at__year={timezone.now().year}")) == 3


def test_the_audit_log_cannot_be_added_changed_or_deleted(admin_client, public_room, alice, bob):
    moderation.moderate(actor=alice, room=public_room, target=bob, action="kick")
    entry = AuditEntry.objects.get()
    changelist = admin_client.get(AUDIT_LOG).content
    assert f'href="{AUDIT_LOG}add/"'.encode() not in changelist
    assert b'value="delete_selected"' not in changelist
    assert admin_client.get(f"{AUDIT_LOG}add/").status_code == 403
    view = admin_client.get(f"{AUDIT_LOG}{entry.pk}/change/")
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert admin_client.post(f"{AUDIT_LOG}{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert admin_client.post(f"{AUDIT_LOG}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    act(admin_client, AUDIT_LOG, "delete_selected", entry)
    entry.refresh_from_db()
    assert entry.action == "kick"


# --- messages --------------------------------------------------------------------------------


def test_deleting_other_peoples_messages_in_the_admin_is_audited(
    admin_client, admin_user, public_room, alice
):
    services.join_room(user=admin_user, room=public_room)
    spam = services.post_message(author=alice, room=public_room, body="spam").message
    own = services.post_message(author=admin_user, room=public_room, body="mine").message
    page = act(admin_client, "/admin/rooms/message/", "soft_delete_messages", spam, own)
    assert shown(page) == [("success", "Deleted 2 message(s).")]
    assert all(m.is_deleted for m in Message.objects.all())
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target, entry.room) == (
        admin_user,
        "delete_message",
        alice,
        public_room,
    )
    assert entry.details == {"id": spam.pk, "seq": 1}


# --- live: what the admin does reaches open sockets -----------------------------------------


db = sync_to_async


@pytest.mark.django_db(transaction=True)
async def test_a_kick_in_the_admin_removes_the_room_from_the_kicked_users_tabs(
    connect, admin_client, public_room, alice, bob
):
    a = await connect(alice)
    b = await connect(bob)
    bobs = await db(membership)(public_room, bob)
    await db(act)(admin_client, MEMBERSHIPS, "kick", bobs)
    assert await b.recv_type("room_removed", room="lobby")
    frame = await a.recv_type("moderated", action="kick")
    assert (frame["room"], frame["user"], frame["by"]) == ("lobby", "bob", "admin")
    await a.request(type="send", room="lobby", body="after bob")
    assert [f for f in await b.frames() if f["type"] == "message"] == []


@pytest.mark.django_db(transaction=True)
async def test_a_mute_in_the_admin_is_told_to_the_room(
    connect, admin_client, public_room, alice, bob
):
    a = await connect(alice)
    b = await connect(bob)
    bobs = await db(membership)(public_room, bob)
    await db(act)(admin_client, MEMBERSHIPS, "mute_for_an_hour", bobs)
    for tab in (a, b):
        frame = await tab.recv_type("moderated", action="mute")
        assert (frame["user"], frame["by"]) == ("bob", "admin") and frame["until"]
    reply = await b.request(type="send", room="lobby", body="hello?")
    assert reply["type"] == "error" and reply["code"] == "muted"
