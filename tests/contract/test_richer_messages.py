"""Contract §7, richer messages, against two real workers of one site: replies, reactions,
mentions, search and attachments.

Personas: alice owns the room (worker 1), bob is a member (worker 2), carol an outsider of the
private rooms (worker 2). Every expectation between people crosses workers; HTTP requests go
to the worker the person's socket is not on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.files import pdf, png, program
from tests.wsclient import Socket

from .conftest import Person, Site
from .frames import assert_error, is_, quiet, send

pytestmark = pytest.mark.redis


@dataclass
class Room:
    slug: str
    alice: Person
    bob: Person
    carol: Person
    a1: Socket
    b2: Socket
    c2: Socket


async def shared_room(site: Site, *, private: bool = False) -> Room:
    alice, bob, carol = await site.people("alice", "bob", "carol")
    slug = await alice.create_room(site.unique("rich"), private=private)
    a1, b2, c2 = await alice.tab(1), await bob.tab(2), await carol.tab(2)
    if private:
        await a1.request(type="invite", room=slug, user=bob.name)
        await b2.wait_for(is_("room_added", slug))
    else:
        for tab in (a1, b2, c2):
            assert (await tab.request(type="join", room=slug))["type"] == "joined"
    await quiet(a1, b2, c2)
    return Room(slug, alice, bob, carol, a1, b2, c2)


def message_of(ack: dict[str, Any]) -> Any:
    """A wait_for predicate: the `message` event of the acked message."""
    return lambda f: f["type"] == "message" and f["message"]["id"] == ack["id"]


def http(person: Person, worker: int, path: str, **options: Any) -> Any:
    """A request of the person's browser session to worker n (1 or 2)."""
    base = person.site.urls[worker - 1]
    return asyncio.to_thread(person.account.send_request, path, base=base, **options)


def upload(person: Person, worker: int, slug: str, name: str, content: bytes) -> Any:
    base = person.site.urls[worker - 1]
    return asyncio.to_thread(person.account.upload, slug, name, content, base)


async def history(person: Person, worker: int, slug: str) -> list[dict[str, Any]]:
    status, _, body = await http(person, worker, f"/api/rooms/{slug}/messages")
    assert status == 200
    return json.loads(body)["messages"]


async def test_a_reply_quotes_its_message_and_reactions_toggle(site):
    r = await shared_room(site)
    question = await send(r.a1, r.slug, "Who has the keys?")
    answer = await r.b2.request(type="send", room=r.slug, body="I do", reply_to=question["id"])
    assert answer["type"] == "ack"
    event = await r.a1.wait_for(message_of(answer))
    assert event["message"]["reply_to"] == {
        "id": question["id"],
        "seq": question["seq"],
        "author": r.alice.name,
        "excerpt": "Who has the keys?",
    }
    elsewhere = await send(r.a1, r.slug, "unrelated")  # a message of another room is refused
    other = await site.people("dora")
    slug = await other[0].create_room(site.unique("other"))
    d1 = await other[0].tab(1)
    refused = await d1.request(type="send", room=slug, body="x", reply_to=elsewhere["id"])
    assert_error(refused, "not_found", refused["ref"])

    await quiet(r.a1, r.b2)
    await r.b2.send(type="react", id=question["id"], emoji="👍")
    for on in (True, False):
        for tab in (r.a1, r.b2, r.c2):
            event = await tab.wait_for(is_("reaction", r.slug))
            assert event == {
                "type": "reaction",
                "room": r.slug,
                "id": question["id"],
                "seq": question["seq"],
                "emoji": "👍",
                "user": r.bob.name,
                "on": on,
            }
        if on:
            (first,) = [m for m in await history(r.alice, 2, r.slug) if m["id"] == question["id"]]
            assert first["reactions"] == {"👍": [r.bob.name]}
            await r.b2.send(type="react", id=question["id"], emoji="👍")
    refused = await r.b2.request(type="react", id=question["id"], emoji="thumbs up")
    assert_error(refused, "bad_frame", refused["ref"])


async def test_mentions_mark_messages_and_count_until_read(site):
    r = await shared_room(site)
    # A name matches written as the username is or in other case, if it is a member's.
    ping = await send(r.b2, r.slug, f"@{r.alice.name.upper()}, and @nobody, look")
    event = await r.a1.wait_for(message_of(ping))
    assert event["message"]["mentions"] == [r.alice.name]
    # A member's @room mentions nobody; the owner's mentions everyone.
    plain = await send(r.b2, r.slug, "@room lunch?")

    def counts(hello: dict[str, Any]) -> tuple[int, int]:
        (room,) = [x for x in hello["rooms"] if x["slug"] == r.slug]
        return room["unread"], room["mentions"]

    a2 = await r.alice.tab(2)
    assert counts(a2.hello) == (2, 1)
    everyone = await send(r.a1, r.slug, "@room standup now")
    messages = {m["id"]: m for m in await history(r.carol, 1, r.slug)}
    assert messages[plain["id"]]["mentions"] == []
    assert messages[everyone["id"]]["mentions"] == ["room"]
    assert counts((await r.alice.tab(2)).hello) == (0, 0)  # her own message marks all read

    c1 = await r.carol.tab(1)
    assert counts(c1.hello) == (3, 1)
    read = await r.c2.request(type="read", room=r.slug, seq=ping["seq"])
    assert (read["type"], read["count"], read["mentions"]) == ("unread", 2, 1)
    read = await r.c2.request(type="read", room=r.slug, seq=everyone["seq"])
    assert (read["count"], read["mentions"]) == (0, 0)
    told = await c1.wait_for(lambda f: f["type"] == "unread" and f["count"] == 0)
    assert told["mentions"] == 0


async def test_search_finds_words_in_rooms_the_user_may_see_only(site):
    secret = await shared_room(site, private=True)
    word = f"zebra{site.unique('w').replace('-', '')}"
    found = await send(secret.a1, secret.slug, f"The {word} crossing is closed")

    status, _, body = await http(secret.bob, 1, f"/api/search?q={word}")
    assert status == 200
    results = json.loads(body)
    assert [(x["room"], x["message"]["id"]) for x in results["results"]] == [
        (secret.slug, found["id"])
    ]
    assert results["has_more"] is False
    status, _, body = await http(secret.carol, 1, f"/api/search?q={word}")
    assert (status, json.loads(body)["results"]) == (200, [])
    status, _, _ = await http(secret.carol, 1, f"/api/search?q={word}&room={secret.slug}")
    assert status == 403


async def test_attachments_reach_the_room_and_only_those_who_may_see_it(site):
    r = await shared_room(site, private=True)
    picture = png(8, 8)
    status, attachment = await upload(r.alice, 2, r.slug, "red square.png", picture)
    assert status == 201, attachment
    assert attachment == {
        "id": attachment["id"],
        "name": "red square.png",
        "size": len(picture),
        "content_type": "image/png",
        "url": attachment["url"],
    }
    ack = await r.a1.request(type="send", room=r.slug, body="", attachments=[attachment["id"]])
    assert ack["type"] == "ack", ack
    event = await r.b2.wait_for(message_of(ack))
    assert (event["message"]["body"], event["message"]["attachments"]) == ("", [attachment])

    status, headers, body = await http(r.bob, 1, attachment["url"])
    assert (status, body, headers["Content-Type"]) == (200, picture, "image/png")
    assert not headers["Content-Disposition"].startswith("attachment")
    status, _, _ = await http(r.carol, 1, attachment["url"])
    assert status == 403
    # The same file may not be sent twice.
    again = await r.a1.request(type="send", room=r.slug, body="x", attachments=[attachment["id"]])
    assert_error(again, "not_found", again["ref"])

    status, document = await upload(r.bob, 1, r.slug, "plan.pdf", pdf("plan"))
    assert (status, document["content_type"]) == (201, "application/pdf")
    await send_with(r.b2, r.slug, document["id"])
    status, headers, _ = await http(r.alice, 2, document["url"])
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="plan.pdf"'

    for name, content, code, error in (
        ("cat.png", program(), 415, "unsupported_type"),
        ("big.png", png(8, 8) + b"\0" * (10 * 1024 * 1024), 413, "too_large"),
    ):
        status, refused = await upload(r.alice, 1, r.slug, name, content)
        assert (status, refused["error"]) == (code, error)
    status, refused = await upload(r.carol, 1, r.slug, "x.png", picture)
    assert (status, refused["error"]) == (403, "forbidden")


async def send_with(tab: Socket, slug: str, attachment_id: int) -> None:
    ack = await tab.request(type="send", room=slug, body="the plan", attachments=[attachment_id])
    assert ack["type"] == "ack", ack
