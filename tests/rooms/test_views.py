"""Pages, the JSON history API, /healthz and the admin."""

import re

import pytest
from django.test import Client

from rooms import services
from rooms.models import Room
from tests.accounts.test_accounts import post_form

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_home_shows_sign_in_to_visitors_and_rooms_to_members(alice, public_room):
    sign_in = Client().get("/")
    assert sign_in.status_code == 200 and b'name="password"' in sign_in.content
    page = signed_in(alice).get("/")
    assert page.status_code == 200 and b"Lobby" in page.content


def test_anonymous_visitors_are_sent_to_sign_in():
    for url in ("/rooms/", "/rooms/new/", "/rooms/lobby/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response.url == f"/accounts/login/?next={url}"


def test_room_list_shows_visible_rooms_with_unread_counts(
    alice, bob, carol, public_room, private_room
):
    services.post_message(author=alice, room=public_room, body="hi")
    services.post_message(author=alice, room=public_room, body="there")
    bob_page = signed_in(bob).get("/rooms/").content.decode()
    assert "Lobby" in bob_page and "Secret" in bob_page
    assert re.search(r'data-room="lobby"[\s\S]*?badge[^>]*>\s*2\s*<', bob_page)
    carol_page = signed_in(carol).get("/rooms/").content.decode()
    assert "Lobby" in carol_page and "Secret" not in carol_page


def test_create_room_through_the_form(alice):
    client = signed_in(alice)
    response = post_form(
        client, "/rooms/new/", {"name": "Book club", "topic": "Novels", "is_private": "on"}
    )
    room = Room.objects.get(name="Book club")
    assert response.status_code == 302 and response.url == f"/rooms/{room.slug}/"
    assert room.kind == Room.Kind.PRIVATE
    assert room.memberships.get().user == alice


def test_create_room_with_a_taken_slug_shows_an_error(alice, public_room):
    response = post_form(signed_in(alice), "/rooms/new/", {"name": "Another", "slug": "lobby"})
    assert response.status_code == 200 and b"taken" in response.content


def test_making_rooms_is_budgeted_and_the_form_says_so(alice, bob, settings, monkeypatch):
    monkeypatch.setitem(settings.CHAT, "ROOMS_CREATED_PER_HOUR", 3)
    client = signed_in(alice)
    for n in range(3):
        assert post_form(client, "/rooms/new/", {"name": f"Room {n}"}).status_code == 302
    response = post_form(client, "/rooms/new/", {"name": "One too many"})
    assert response.status_code == 200 and b"within the hour" in response.content
    assert not Room.objects.filter(name="One too many").exists()
    # Per person: bob may still make one.
    assert post_form(signed_in(bob), "/rooms/new/", {"name": "Bob's"}).status_code == 302


def test_a_user_in_too_many_rooms_is_told_so_by_the_form(alice, public_room, settings, monkeypatch):
    monkeypatch.setitem(settings.CHAT, "ROOMS_PER_USER", 1)
    response = post_form(signed_in(alice), "/rooms/new/", {"name": "Second"})
    assert response.status_code == 200 and b"leave some first" in response.content


def test_room_page_renders_history_escaped(alice, public_room):
    services.post_message(author=alice, room=public_room, body="<script>alert(1)</script>")
    page = signed_in(alice).get("/rooms/lobby/")
    assert page.status_code == 200
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
    assert "script-src 'self'" in page["Content-Security-Policy"]


def test_outsider_cannot_see_a_private_room(carol, private_room):
    assert signed_in(carol).get("/rooms/secret/").status_code == 403
    assert signed_in(carol).get("/rooms/nowhere/").status_code == 404


def test_history_api_has_the_websocket_shape(alice, public_room):
    for n in range(1, 5):
        services.post_message(author=alice, room=public_room, body=f"m{n}", ref=f"r{n}")
    client = signed_in(alice)
    page = client.get("/api/rooms/lobby/messages?limit=2").json()
    assert page["room"] == "lobby" and page["has_more"] is True
    assert [m["seq"] for m in page["messages"]] == [3, 4]
    first = page["messages"][0]
    assert set(first) >= {"id", "seq", "author", "body", "created_at", "edited_at", "ref"}
    after = client.get("/api/rooms/lobby/messages?after=2").json()
    assert [m["seq"] for m in after["messages"]] == [3, 4] and after["has_more"] is False
    before = client.get("/api/rooms/lobby/messages?before=3").json()
    assert [m["seq"] for m in before["messages"]] == [1, 2]


def test_history_api_refuses_outsiders_anonymous_and_junk(carol, alice, private_room):
    assert signed_in(carol).get("/api/rooms/secret/messages").status_code == 403
    assert signed_in(carol).get("/api/rooms/nowhere/messages").status_code == 404
    assert Client().get("/api/rooms/secret/messages").status_code == 403
    assert signed_in(alice).get("/api/rooms/secret/messages?limit=ten").status_code == 400


def test_healthz_reports_ok():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_admin_loads_for_staff_and_refuses_others(staff, alice, public_room):
    services.post_message(author=alice, room=public_room, body="moderate me")
    admin = signed_in(staff)
    for url in (
        "/admin/",
        "/admin/rooms/room/",
        f"/admin/rooms/room/{public_room.pk}/change/",
        "/admin/rooms/message/",
        "/admin/rooms/message/?q=moderate",
        "/admin/rooms/membership/",
        "/admin/auth/user/",
    ):
        assert admin.get(url).status_code == 200, url
    refused = signed_in(alice).get("/admin/rooms/room/")
    assert refused.status_code == 302 and "/admin/login/" in refused.url


def test_admin_soft_delete_action_keeps_seq(staff, alice, public_room):
    message = services.post_message(author=alice, room=public_room, body="spam").message
    response = post_form(
        signed_in(staff),
        "/admin/rooms/message/",
        {"action": "soft_delete_messages", "_selected_action": str(message.pk)},
    )
    assert response.status_code in (200, 302)
    message.refresh_from_db()
    assert message.is_deleted and message.body == "" and message.seq == 1
