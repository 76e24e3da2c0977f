"""Search: `GET /api/search` finds words in the rooms one may see, newest first, and nothing else.
alice owns #lobby (bob joined) and #secret (bob is a member), carol is in neither."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from rooms import moderation, services
from rooms.models import Room

pytestmark = pytest.mark.django_db


def post(room: Room, user: Any, body: str) -> int:
    return services.post_message(author=user, room=room, body=body).message.pk


def search(user: Any, **params: Any) -> tuple[int, dict[str, Any]]:
    client = Client()
    client.force_login(user)
    response = client.get("/api/search", params)
    return response.status_code, response.json()


def bodies(found: dict[str, Any]) -> list[str]:
    return [r["message"]["body"] for r in found["results"]]


def test_words_are_found_newest_first_with_their_room(public_room, private_room, alice, bob):
    post(public_room, alice, "The deploy is on Friday")
    post(private_room, bob, "friday deploy notes are in the wiki")
    post(public_room, bob, "lunch?")
    status, found = search(bob, q="deploy")
    assert status == 200
    assert [(r["room"], r["message"]["body"]) for r in found["results"]] == [
        ("secret", "friday deploy notes are in the wiki"),
        ("lobby", "The deploy is on Friday"),
    ]
    assert found["has_more"] is False
    assert set(found["results"][0]["message"]) >= {"id", "seq", "author", "body", "created_at"}


def test_words_match_as_words_not_inside_others(public_room, alice):
    post(public_room, alice, "a category of its own")
    post(public_room, alice, "the cat sat")
    assert bodies(search(alice, q="cat")[1]) == ["the cat sat"]


def test_every_word_must_match(public_room, alice):
    post(public_room, alice, "release notes")
    post(public_room, alice, "release party")
    assert bodies(search(alice, q="release party")[1]) == ["release party"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="stemming is PostgreSQL's")
def test_postgresql_matches_stemmed_words(public_room, alice):
    post(public_room, alice, "the builds are running")
    assert bodies(search(alice, q="build run")[1]) == ["the builds are running"]


def test_never_a_message_of_a_room_one_may_not_see(public_room, private_room, alice, carol):
    post(private_room, alice, "secret plans")
    post(public_room, alice, "public plans")
    # carol is in neither room: public rooms are open to her, private ones are not.
    assert bodies(search(carol, q="plans")[1]) == ["public plans"]
    status, _ = search(carol, q="plans", room="secret")
    assert status == 403


def test_a_banned_user_finds_nothing_of_the_room(public_room, alice, bob):
    post(public_room, alice, "house rules")
    moderation.moderate(actor=alice, room=public_room, target=bob, action="ban")
    assert bodies(search(bob, q="rules")[1]) == []
    assert search(bob, q="rules", room="lobby")[0] == 403


def test_deleted_messages_are_not_found(public_room, alice):
    message = post(public_room, alice, "oops wrong password hunter2")
    services.delete_message(user=alice, message_id=message)
    assert bodies(search(alice, q="hunter2")[1]) == []


def test_pages_of_twenty_go_back_with_before(public_room, alice):
    ids = [post(public_room, alice, f"standup {n}") for n in range(25)]
    status, first = search(alice, q="standup")
    assert len(first["results"]) == 20 and first["has_more"] is True
    assert [r["message"]["id"] for r in first["results"]] == ids[::-1][:20]
    _, rest = search(alice, q="standup", before=first["results"][-1]["message"]["id"])
    assert [r["message"]["id"] for r in rest["results"]] == ids[::-1][20:]
    assert rest["has_more"] is False


def test_one_room_only(public_room, private_room, alice):
    post(public_room, alice, "agenda for lobby")
    post(private_room, alice, "agenda for secret")
    assert bodies(search(alice, q="agenda", room="secret")[1]) == ["agenda for secret"]


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "x" * 201}, {"q": "a", "before": "z"}])
def test_bad_queries_are_refused_with_a_reason(alice, params):
    status, answer = search(alice, **params)
    assert status == 400 and answer["detail"]


def test_signed_out_search_is_refused(client):
    assert client.get("/api/search", {"q": "anything"}).status_code == 403


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index is PostgreSQL's")
def test_postgresql_serves_search_from_the_gin_index(public_room, alice):
    from rooms import search as search_module

    post(public_room, alice, "indexed words")
    query = search_module._matching(search_module.Message.objects.all(), "indexed")
    assert query is not None
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_body_search" in plan, plan
