"""Contract §4, frame by frame, against two real workers of one site.

Personas per test: alice and bob are members of the test's room, carol is an outsider. Alice has
a tab on each worker; bob and carol sit on the worker that makes every expectation between
people cross workers. Each assertion quotes the frame the contract (or docs/protocol.md) gives.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.wsclient import Frame, Socket, connect

from .conftest import STAFF, STAFF_PASSWORD, Person, Site
from .frames import assert_error, assert_nothing_about, frames_about, is_, quiet, send

pytestmark = pytest.mark.redis

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# `deleted` is docs/protocol.md's extension; `reactions`, `mentions` and `attachments` are
# contract section 7's.
MESSAGE_KEYS = {
    "id",
    "seq",
    "author",
    "body",
    "created_at",
    "edited_at",
    "ref",
    "deleted",
    "reactions",
    "mentions",
    "attachments",
}
# `topic`, `slow_mode`, `archived` and the user's `role` are docs/protocol.md's extensions;
# `mentions` is contract section 7's.
HELLO_ROOM_KEYS = {
    "slug",
    "name",
    "kind",
    "topic",
    "last_seq",
    "slow_mode",
    "archived",
    "unread",
    "mentions",
    "role",
}


def assert_message_shape(message: Frame) -> None:
    assert set(message) == MESSAGE_KEYS
    assert isinstance(message["id"], int) and isinstance(message["seq"], int)
    assert TIMESTAMP.match(message["created_at"]), message["created_at"]


@dataclass
class Scene:
    """#room: alice (owner; tabs a1 on worker 1, a2 on worker 2), bob (member; b2 on worker 2),
    carol (outsider; c1 on worker 1). Every tab has fallen quiet."""

    room: str
    alice: Person
    bob: Person
    carol: Person
    a1: Socket
    a2: Socket
    b2: Socket
    c1: Socket


async def scene(site: Site) -> Scene:
    alice, bob, carol = await site.people("alice", "bob", "carol")
    room = await alice.create_room(site.unique("room"), topic="Say hi")
    b2 = await bob.tab(2)
    assert (await b2.request(type="join", room=room))["type"] == "joined"
    a1, a2, c1 = await alice.tab(1), await alice.tab(2), await carol.tab(1)
    await quiet(a1, a2, b2, c1, seconds=0.2)
    return Scene(room, alice, bob, carol, a1, a2, b2, c1)


# --- handshake ----------------------------------------------------------------------------------


async def handshake_status(url: str, cookie: str | None, origin: str | None) -> int | None:
    """The HTTP status of a refused handshake, or None if the socket opened."""
    try:
        ws = await connect("ws" + url.removeprefix("http"), cookie, origin)
    except InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return None


async def test_handshake_without_a_session_or_with_a_foreign_origin_is_refused_with_403(site):
    (alice,) = await site.people("alice")
    cookie = alice.account.cookie
    for url in site.urls:
        assert await handshake_status(url, None, url) == 403  # no cookie
        assert await handshake_status(url, "sessionid=forged", url) == 403
        assert await handshake_status(url, cookie, "http://evil.example") == 403
        assert await handshake_status(url, cookie, "https://127.0.0.1.evil.example") == 403
        # docs/protocol.md: a missing Origin is refused; hosts are matched by name only.
        assert await handshake_status(url, cookie, None) == 403
        assert await handshake_status(url, cookie, "http://localhost:9") is None


async def test_hello_is_the_first_frame_and_lists_the_users_rooms(site):
    alice, bob = await site.people("alice", "bob")
    lobby = await alice.create_room(site.unique("lobby"), topic="Say hi")
    secret = await alice.create_room(site.unique("secret"), private=True)
    b1 = await bob.tab(1)
    assert b1.hello == {"type": "hello", "user": bob.name, "rooms": []}
    a2 = await alice.tab(2)
    assert a2.hello is not None
    assert a2.hello["user"] == alice.name
    assert sorted(a2.hello["rooms"], key=lambda r: r["slug"]) == [
        {
            "slug": lobby,
            "name": f"Room {lobby}",
            "kind": "public",
            "topic": "Say hi",
            "last_seq": 0,
            "slow_mode": 0,
            "archived": False,
            "unread": 0,
            "mentions": 0,
            "role": "owner",
        },
        {
            "slug": secret,
            "name": f"Room {secret}",
            "kind": "private",
            "topic": "",
            "last_seq": 0,
            "slow_mode": 0,
            "archived": False,
            "unread": 0,
            "mentions": 0,
            "role": "owner",
        },
    ]


async def test_a_tab_receives_events_of_every_room_in_hello_viewed_or_not(site):
    alice, bob = await site.people("alice", "bob")
    rooms = [await alice.create_room(site.unique(n)) for n in ("one", "two")]
    a1 = await alice.tab(1)
    b2 = await bob.tab(2)
    for room in rooms:
        await b2.request(type="join", room=room)
    for room in rooms:
        await send(b2, room, f"hi {room}")
        got = await a1.wait_for(is_("message", room))
        assert got["message"]["body"] == f"hi {room}"


# --- join and leave -----------------------------------------------------------------------------


async def test_join_answers_joined_tells_the_room_and_the_users_other_tabs(site):
    alice, bob, carol = await site.people("alice", "bob", "carol")
    room = await alice.create_room(site.unique("room"), topic="Say hi")
    a2 = await alice.tab(2)
    b1, b2 = await bob.tab(1), await bob.tab(2)
    c2 = await carol.tab(2)

    joined = await b1.request(type="join", room=room, ref="j1")
    assert joined == {
        "type": "joined",
        "room": {
            "slug": room,
            "name": f"Room {room}",
            "kind": "public",
            "topic": "Say hi",
            "last_seq": 0,
            "slow_mode": 0,
            "archived": False,
        },
        "members": sorted([alice.name, bob.name]),
        "online": sorted([alice.name, bob.name]),
        "roles": {alice.name: "owner"},
        "you": {"role": "member", "staff": False, "muted": False, "muted_until": None},
        "ref": "j1",
    }
    assert await a2.wait_for(is_("presence", room)) == {
        "type": "presence",
        "room": room,
        "user": bob.name,
        "event": "joined",
    }
    # docs/protocol.md: the user's other tabs get room_added.
    assert await b2.wait_for(is_("room_added", room)) == {
        "type": "room_added",
        "room": {
            "slug": room,
            "name": f"Room {room}",
            "kind": "public",
            "topic": "Say hi",
            "last_seq": 0,
            "slow_mode": 0,
            "archived": False,
            "unread": 0,
            "mentions": 0,
            "role": "member",
        },
    }
    await assert_nothing_about(room, b1, c2)

    # Joining again is harmless and answers `joined` again; nobody hears of it.
    again = await b2.request(type="join", room=room, ref="j2")
    assert again == {**joined, "ref": "j2"}
    await assert_nothing_about(room, a2, b1, b2, c2)

    # The other tab now receives the room.
    await send(a2, room, "welcome")
    for tab in (b1, b2):
        assert (await tab.wait_for(is_("message", room)))["message"]["body"] == "welcome"


async def test_join_of_a_private_unknown_or_direct_room_is_refused(site):
    alice, bob, carol = await site.people("alice", "bob", "carol")
    secret = await alice.create_room(site.unique("secret"), private=True)
    a1 = await alice.tab(1)
    ack = await a1.request(type="direct", to=bob.name, body="psst")
    c2 = await carol.tab(2)
    assert_error(await c2.request(type="join", room=secret, ref="p"), "forbidden", "p")
    assert_error(await c2.request(type="join", room=ack["room"], ref="d"), "forbidden", "d")
    assert_error(await c2.request(type="join", room="no-such-room", ref="n"), "not_found", "n")
    # A member may "join" a private room again.
    assert (await a1.request(type="join", room=secret))["type"] == "joined"
    await assert_nothing_about(secret, c2)


async def test_leave_answers_left_on_every_tab_of_the_user_and_stops_delivery(site):
    s = await scene(site)
    b1 = await s.bob.tab(1)
    left = await s.b2.request(type="leave", room=s.room, ref="l1")
    assert left == {"type": "left", "room": s.room, "ref": "l1"}
    assert await b1.wait_for(is_("left", s.room)) == {"type": "left", "room": s.room}
    for tab in (s.a1, s.a2):
        assert await tab.wait_for(is_("presence", s.room)) == {
            "type": "presence",
            "room": s.room,
            "user": s.bob.name,
            "event": "left",
        }
    await assert_nothing_about(s.room, s.c1)

    await send(s.a1, s.room, "are you there?")
    await s.a2.wait_for(is_("message", s.room))
    await assert_nothing_about(s.room, b1, s.b2)
    assert s.room not in [r["slug"] for r in (await s.bob.tab(1)).hello["rooms"]]

    # Leaving again is harmless; a room one may not see is not.
    assert await s.b2.request(type="leave", room=s.room, ref="l2") == {
        "type": "left",
        "room": s.room,
        "ref": "l2",
    }
    secret = await s.alice.create_room(site.unique("secret"), private=True)
    assert_error(await s.c1.request(type="leave", room=secret, ref="l3"), "forbidden", "l3")
    assert_error(await s.c1.request(type="leave", room="no-such", ref="l4"), "not_found", "l4")


# --- send, and idempotent refs ------------------------------------------------------------------


async def test_send_is_acked_and_delivered_to_every_connection_of_the_room(site):
    s = await scene(site)
    body = "<b>hi</b> & <script>alert(1)</script>"
    await s.a1.send(type="send", room=s.room, body=f"  {body}\n", ref="m-1")
    ack = await s.a1.wait_for(is_("ack"))
    assert ack == {
        "type": "ack",
        "room": s.room,
        "id": ack["id"],
        "seq": 1,
        "created_at": ack["created_at"],
        "ref": "m-1",
    }
    assert isinstance(ack["id"], int) and TIMESTAMP.match(ack["created_at"])
    expected = {
        "type": "message",
        "room": s.room,
        "message": {
            "id": ack["id"],
            "seq": 1,
            "author": s.alice.name,
            "body": body,  # trimmed (docs/protocol.md), never escaped or interpreted
            "created_at": ack["created_at"],
            "edited_at": None,
            "ref": "m-1",
            "deleted": False,  # docs/protocol.md: an extension field
            "reactions": {},
            "mentions": [],
            "attachments": [],
        },
    }
    # The sender's tab, the sender's other tab (worker 2), another member (worker 2).
    for tab in (s.a1, s.a2, s.b2):
        assert await tab.wait_for(is_("message", s.room)) == expected
    await assert_nothing_about(s.room, s.c1)
    a1, a2, b2 = await quiet(s.a1, s.a2, s.b2)
    assert a1 == a2 == b2 == [], "one ack and one message each, nothing more"


async def test_send_refusals_echo_the_ref_and_store_nothing(site):
    s = await scene(site)
    secret = await s.alice.create_room(site.unique("secret"), private=True)
    c1 = s.c1
    # docs/protocol.md: a public room one has not joined needs a join first.
    assert_error(await c1.request(type="send", room=s.room, body="hi", ref="s1"), "forbidden", "s1")
    assert_error(await c1.request(type="send", room=secret, body="hi", ref="s2"), "forbidden", "s2")
    assert_error(
        await c1.request(type="send", room="no-such", body="hi", ref="s3"), "not_found", "s3"
    )
    a1 = s.a1
    assert_error(await a1.request(type="send", room=s.room, body=" \n\t ", ref="s4"), "empty", "s4")
    long = "x" * 4001
    assert_error(await a1.request(type="send", room=s.room, body=long, ref="s5"), "too_long", "s5")
    # 4,000 characters is not over the limit; surrounding blanks do not count.
    assert (await send(a1, s.room, f" {'y' * 4000} ", ref="s6"))["seq"] == 1
    history = await a1.request(type="history", room=s.room)
    assert [m["body"] for m in history["messages"]] == ["y" * 4000]


async def test_resending_a_ref_from_a_tab_on_the_other_worker_acks_the_first_message(site):
    s = await scene(site)
    first = await send(s.a1, s.room, "exactly once", ref="same-ref")
    await send(s.a1, s.room, "another", ref="other-ref")
    again = await send(s.a2, s.room, "exactly once", ref="same-ref")
    assert (again["id"], again["seq"]) == (first["id"], first["seq"]) == (again["id"], 1)
    assert again["ref"] == "same-ref" and again["room"] == s.room

    # Nothing new stored: seq goes on without a gap, and the ref is there once.
    assert (await send(s.a2, s.room, "next", ref="next-ref"))["seq"] == 3
    history = await s.b2.request(type="history", room=s.room)
    assert [(m["seq"], m["ref"]) for m in history["messages"]] == [
        (1, "same-ref"),
        (2, "other-ref"),
        (3, "next-ref"),
    ]
    api = await asyncio.to_thread(s.bob.account.api_history, s.room)
    assert [m["ref"] for m in api].count("same-ref") == 1

    # The same ref from another user, or in another room, is another message.
    assert (await send(s.b2, s.room, "mine", ref="same-ref"))["seq"] == 4
    other = await s.alice.create_room(site.unique("other"))
    assert (await send(s.a2, other, "elsewhere", ref="same-ref"))["seq"] == 1


async def test_the_same_ref_sent_at_once_from_tabs_on_both_workers_is_stored_once(site):
    s = await scene(site)
    for n in range(5):
        acks = await asyncio.gather(
            *(send(tab, s.room, f"retry {n}", ref=f"twice-{n}") for tab in (s.a1, s.a2))
        )
        assert acks[0]["id"] == acks[1]["id"] and acks[0]["seq"] == acks[1]["seq"] == n + 1
    history = await s.b2.request(type="history", room=s.room)
    assert [m["ref"] for m in history["messages"]] == [f"twice-{n}" for n in range(5)]


async def test_seq_numbers_a_room_gap_free_under_concurrent_senders_on_both_workers(site):
    s = await scene(site)
    b1 = await s.bob.tab(1)
    tabs = [s.a1, s.a2, b1, s.b2]
    acks = await asyncio.gather(
        *(
            send(tab, s.room, f"{n}/{i}", ref=f"c{n}-{i}")
            for n, tab in enumerate(tabs)
            for i in range(4)
        )
    )
    assert sorted(a["seq"] for a in acks) == list(range(1, 17))
    assert len({a["id"] for a in acks}) == 16
    by_seq = {a["seq"]: a["id"] for a in acks}
    history = await s.b2.request(type="history", room=s.room, after=0, limit=100)
    assert {m["seq"]: m["id"] for m in history["messages"]} == by_seq
    assert [m["seq"] for m in history["messages"]] == list(range(1, 17))
    # Every connection of the room receives every message (in whatever order).
    for tab in tabs:
        seen = set()
        while len(seen) < 16:
            seen.add((await tab.wait_for(is_("message", s.room)))["message"]["seq"])
        assert seen == set(by_seq)


async def test_an_archived_room_refuses_new_messages_and_members_but_keeps_its_history(site):
    """docs/protocol.md: "an archived room answers `forbidden`" (archived in the admin)."""
    s = await scene(site)
    await send(s.a1, s.room, "last words")
    staff = await site.sign_in(STAFF, STAFF_PASSWORD, worker=1)
    status, page = await asyncio.to_thread(staff.account.request, f"/admin/rooms/room/?q={s.room}")
    (pk,) = set(re.findall(r"/admin/rooms/room/(\d+)/change/", page))
    status, page = await asyncio.to_thread(
        staff.account.edit_form,
        "/admin/rooms/room/",
        "changelist-form",
        {"action": "archive_rooms", "_selected_action": pk, "index": "0"},
    )
    assert status == 302, page[:2000]
    fresh = await s.bob.tab(1)
    assert_error(
        await fresh.request(type="send", room=s.room, body="hello?", ref="a1"), "forbidden", "a1"
    )
    assert_error(await s.c1.request(type="join", room=s.room, ref="a2"), "forbidden", "a2")
    history = await s.c1.request(type="history", room=s.room)
    assert [m["body"] for m in history["messages"]] == ["last words"]
    # A tab that was open before the room was archived is refused just the same.
    for tab in (s.a1, s.b2):
        reply = await tab.request(type="send", room=s.room, body="still here?", ref="a3")
        assert reply.get("code") == "forbidden", f"an open tab posted to an archived room: {reply}"
    history = await s.c1.request(type="history", room=s.room)
    assert [m["body"] for m in history["messages"]] == ["last words"]


# --- history ------------------------------------------------------------------------------------


async def test_history_pages_by_seq_in_both_directions_with_has_more(site):
    s = await scene(site)
    for n in range(1, 8):
        await send(s.a1, s.room, f"m{n}")
    live = await s.b2.wait_for(lambda f: f["type"] == "message" and f["message"]["seq"] == 7)
    await quiet(s.a1, s.a2, s.c1)

    async def page(**query: Any) -> tuple[list[int], bool]:
        reply = await s.b2.request(type="history", room=s.room, ref="h", **query)
        assert set(reply) == {"type", "room", "messages", "has_more", "ref"}
        assert (reply["type"], reply["room"], reply["ref"]) == ("history", s.room, "h")
        for message in reply["messages"]:
            assert_message_shape(message)
        return [m["seq"] for m in reply["messages"]], reply["has_more"]

    # Neither, or `before`: the newest `limit` before it, oldest first.
    assert await page(limit=3) == ([5, 6, 7], True)
    assert await page(before=5, limit=3) == ([2, 3, 4], True)
    assert await page(before=4, limit=3) == ([1, 2, 3], False)
    assert await page(before=2, limit=3) == ([1], False)
    assert await page(before=1) == ([], False)
    assert await page() == ([1, 2, 3, 4, 5, 6, 7], False)
    # `after`: the oldest `limit` after it.
    assert await page(after=0, limit=3) == ([1, 2, 3], True)
    assert await page(after=3, limit=3) == ([4, 5, 6], True)
    assert await page(after=4, limit=3) == ([5, 6, 7], False)
    assert await page(after=6, limit=3) == ([7], False)
    assert await page(after=7) == ([], False)
    await assert_nothing_about(s.room, s.a1, s.a2, s.c1)  # a reply to the asking tab only

    # Each message is shaped as in the `message` event; the JSON API gives the same page.
    reply = await s.b2.request(type="history", room=s.room, after=6)
    assert reply["messages"] == [live["message"]]
    status, api = await asyncio.to_thread(
        s.bob.account.get_json, f"/api/rooms/{s.room}/messages?after=6"
    )
    assert status == 200
    assert {k: v for k, v in api.items() if k != "type"} == {
        k: v for k, v in reply.items() if k not in ("type", "ref")
    }


async def test_history_limit_defaults_to_50_and_is_capped_at_100(site):
    s = await scene(site)
    extra = await site.people(*[f"poster{n}" for n in range(5)])
    tabs = [s.a1, s.b2]
    for n, person in enumerate(extra):
        tab = await person.tab(n % 2 + 1)
        await tab.request(type="join", room=s.room)
        tabs.append(tab)
    # 105 messages, at most 18 per person: under the default burst of 20.
    await asyncio.gather(
        *(send(tab, s.room, f"{n}/{i}") for n, tab in enumerate(tabs) for i in range(15))
    )

    async def seqs(**query: Any) -> tuple[list[int], bool]:
        reply = await s.c1.request(type="history", room=s.room, **query)
        return [m["seq"] for m in reply["messages"]], reply["has_more"]

    assert await seqs() == (list(range(56, 106)), True)
    assert await seqs(limit=500) == (list(range(6, 106)), True)
    assert await seqs(after=0, limit=500) == (list(range(1, 101)), True)
    assert await seqs(after=5, limit=100) == (list(range(6, 106)), False)


async def test_history_of_a_room_one_may_not_see_is_refused(site):
    alice, carol = await site.people("alice", "carol")
    secret = await alice.create_room(site.unique("secret"), private=True)
    c2 = await carol.tab(2)
    assert_error(await c2.request(type="history", room=secret, ref="h1"), "forbidden", "h1")
    assert_error(await c2.request(type="history", room="no-such", ref="h2"), "not_found", "h2")


# --- read and unread ----------------------------------------------------------------------------


async def test_read_tells_every_tab_of_the_user_and_unread_counts_own_messages_as_read(site):
    s = await scene(site)
    for n in range(3):
        await send(s.b2, s.room, f"b{n}")

    def entry(hello: Frame | None) -> Frame:
        assert hello is not None
        (room,) = [r for r in hello["rooms"] if r["slug"] == s.room]
        assert set(room) == HELLO_ROOM_KEYS
        return room

    assert entry((await s.alice.tab(2)).hello) | {} == {
        "slug": s.room,
        "name": f"Room {s.room}",
        "kind": "public",
        "topic": "Say hi",
        "last_seq": 3,
        "slow_mode": 0,
        "archived": False,
        "unread": 3,
        "mentions": 0,
        "role": "owner",
    }
    assert entry((await s.bob.tab(1)).hello)["unread"] == 0  # own messages count as read

    await quiet(s.a1, s.a2, s.b2)
    reply = await s.a2.request(type="read", room=s.room, seq=1, ref="r1")
    assert reply == {
        "type": "unread",
        "room": s.room,
        "count": 2,
        "last_read": 1,
        "mentions": 0,
        "ref": "r1",
    }
    assert await s.a1.wait_for(is_("unread", s.room)) == {
        "type": "unread",
        "room": s.room,
        "count": 2,
        "last_read": 1,
        "mentions": 0,
    }
    await assert_nothing_about(s.room, s.b2, s.c1)
    # docs/protocol.md: never back, never past last_seq.
    back = await s.a1.request(type="read", room=s.room, seq=0)
    assert (back["count"], back["last_read"]) == (2, 1)
    past = await s.a1.request(type="read", room=s.room, seq=99)
    assert (past["count"], past["last_read"]) == (0, 3)
    assert entry((await s.alice.tab(1)).hello)["unread"] == 0

    await send(s.b2, s.room, "b3")
    await send(s.b2, s.room, "b4")
    assert entry((await s.alice.tab(2)).hello)["unread"] == 2
    await send(s.a1, s.room, "mine")
    assert entry((await s.alice.tab(2)).hello) | {} == {
        "slug": s.room,
        "name": f"Room {s.room}",
        "kind": "public",
        "topic": "Say hi",
        "last_seq": 6,
        "slow_mode": 0,
        "archived": False,
        "unread": 0,
        "mentions": 0,
        "role": "owner",
    }
    assert entry((await s.bob.tab(1)).hello)["unread"] == 1

    assert_error(await s.c1.request(type="read", room=s.room, seq=1, ref="r2"), "forbidden", "r2")
    assert_error(
        await s.c1.request(type="read", room="no-such", seq=1, ref="r3"), "not_found", "r3"
    )


# --- typing -------------------------------------------------------------------------------------


async def test_typing_reaches_other_users_connections_never_the_typists(site):
    s = await scene(site)
    b1 = await s.bob.tab(1)
    await quiet(s.a1, s.a2, b1, s.b2, s.c1)
    await s.b2.send(type="typing", room=s.room, ref="t1")
    expected = {"type": "typing", "room": s.room, "user": s.bob.name}
    for tab in (s.a1, s.a2):
        assert await tab.wait_for(is_("typing", s.room)) == expected
    await assert_nothing_about(s.room, b1, s.b2, s.c1)

    await s.a1.send(type="typing", room=s.room)
    for tab in (b1, s.b2):
        assert await tab.wait_for(is_("typing", s.room)) == {**expected, "user": s.alice.name}
    await assert_nothing_about(s.room, s.a1, s.a2)

    assert_error(await s.c1.request(type="typing", room=s.room, ref="t2"), "forbidden", "t2")


# --- direct -------------------------------------------------------------------------------------


async def test_direct_makes_the_room_on_first_use_room_added_before_message(site):
    alice, bob, carol = await site.people("alice", "bob", "carol")
    a1, a2 = await alice.tab(1), await alice.tab(2)
    b1, b2 = await bob.tab(1), await bob.tab(2)
    c2 = await carol.tab(2)

    ack = await a1.request(type="direct", to=bob.name, body="psst", ref="d1")
    dm = ack["room"]
    assert re.fullmatch(r"dm-\d+-\d+", dm), dm  # docs/protocol.md
    assert ack == {
        "type": "ack",
        "room": dm,
        "id": ack["id"],
        "seq": 1,
        "created_at": ack["created_at"],
        "ref": "d1",
    }
    message = {
        "type": "message",
        "room": dm,
        "message": {
            "id": ack["id"],
            "seq": 1,
            "author": alice.name,
            "body": "psst",
            "created_at": ack["created_at"],
            "edited_at": None,
            "ref": "d1",
            "deleted": False,
            "reactions": {},
            "mentions": [],
            "attachments": [],
        },
    }
    for tab, other in ((b1, alice), (b2, alice), (a2, bob), (a1, bob)):
        assert await tab.wait_for(is_("message", dm)) == message
        # (Direct rooms also announce their members' `presence` `joined`; not in question here.)
        kinds = [f["type"] for f in frames_about(tab.mailbox, dm)] + ["message"]
        assert [k for k in kinds if k in ("room_added", "message")] == ["room_added", "message"]
        (added,) = [f for f in tab.mailbox if f["type"] == "room_added"]
        assert set(added) == {"type", "room"}
        assert set(added["room"]) == HELLO_ROOM_KEYS
        assert (added["room"]["slug"], added["room"]["kind"]) == (dm, "direct")
        assert added["room"]["name"] == other.name  # named after the other person
        tab.mailbox.clear()
    await assert_nothing_about(dm, c2)

    # Later directs (either way) and sends reuse the room, with no room_added.
    again = await b2.request(type="direct", to=alice.name, body="hi back", ref="d2")
    assert (again["room"], again["seq"]) == (dm, 2)
    assert (await send(a2, dm, "via send"))["seq"] == 3
    for tab in (a1, a2, b1, b2):
        frames = frames_about(await tab.collect(0.3), dm)
        assert sorted(f["message"]["seq"] for f in frames if f["type"] == "message") == [2, 3]
        assert "room_added" not in [f["type"] for f in frames]
    (entry,) = [r for r in (await bob.tab(1)).hello["rooms"] if r["slug"] == dm]
    assert (entry["kind"], entry["name"], entry["last_seq"], entry["unread"]) == (
        "direct",
        alice.name,
        3,
        1,
    )

    # Re-sending a direct with the same ref stores nothing new (docs/protocol.md).
    repeat = await a2.request(type="direct", to=bob.name, body="psst", ref="d1")
    assert (repeat["room"], repeat["id"], repeat["seq"]) == (dm, ack["id"], 1)

    # The outsider can neither read nor write the direct room.
    for frame in (
        {"type": "history", "room": dm},
        {"type": "send", "room": dm, "body": "hi"},
        {"type": "read", "room": dm, "seq": 1},
        {"type": "typing", "room": dm},
    ):
        assert_error(await c2.request(ref="x", **frame), "forbidden", "x")
    assert_error(
        await a1.request(type="direct", to="nobody-at-all", body="hi", ref="d3"), "not_found", "d3"
    )
    await assert_nothing_about(dm, c2)


async def test_direct_still_reaches_the_other_person_after_leaving_the_direct_room(site):
    """`direct` is "a message to one user"; leaving the direct room (any member may `leave`)
    must not make the two people unable to write to each other for good."""
    alice, bob = await site.people("alice", "bob")
    a1, b2 = await alice.tab(1), await bob.tab(2)
    dm = (await a1.request(type="direct", to=bob.name, body="hi"))["room"]
    assert (await a1.request(type="leave", room=dm))["type"] == "left"
    reply = await a1.request(type="direct", to=bob.name, body="me again", ref="d2")
    assert reply["type"] == "ack", f"direct after leaving the direct room answered {reply}"
    assert (await b2.wait_for(lambda f: f.get("message", {}).get("ref") == "d2"))["room"] == dm


# --- edit and delete ----------------------------------------------------------------------------


async def test_edit_and_delete_by_the_author_reach_the_room(site):
    s = await scene(site)
    mine = await send(s.a1, s.room, "typo", ref="e0")
    await quiet(s.a1, s.a2, s.b2)

    await s.a1.send(type="edit", id=mine["id"], body="  fixed ", ref="e1")
    edited = await s.b2.wait_for(is_("message_edited", s.room))
    assert set(edited) == {"type", "room", "id", "seq", "message"}
    assert (edited["room"], edited["id"], edited["seq"]) == (s.room, mine["id"], 1)
    message = edited["message"]
    assert_message_shape(message)
    assert (message["body"], message["author"], message["deleted"]) == (
        "fixed",
        s.alice.name,
        False,
    )
    assert TIMESTAMP.match(message["edited_at"] or "")
    for tab in (s.a1, s.a2):
        assert await tab.wait_for(is_("message_edited", s.room)) == edited
    await assert_nothing_about(s.room, s.a1, s.a2, s.b2, s.c1)  # no reply on success

    await s.a1.send(type="delete", id=mine["id"], ref="e2")
    deleted = await s.b2.wait_for(is_("message_deleted", s.room))
    assert (deleted["room"], deleted["id"], deleted["seq"]) == (s.room, mine["id"], 1)
    assert (deleted["message"]["body"], deleted["message"]["deleted"]) == ("", True)
    for tab in (s.a1, s.a2):
        assert await tab.wait_for(is_("message_deleted", s.room)) == deleted
    await assert_nothing_about(s.room, s.a1, s.a2, s.b2, s.c1)

    # A deleted message keeps its seq: history returns it deleted, with an empty body.
    await send(s.b2, s.room, "after")
    history = await s.c1.request(type="history", room=s.room)
    first = history["messages"][0]
    assert (first["seq"], first["id"], first["deleted"], first["body"]) == (1, mine["id"], True, "")
    assert [m["seq"] for m in history["messages"]] == [1, 2]
    api = await asyncio.to_thread(s.carol.account.api_history, s.room)
    assert api == history["messages"]

    # docs/protocol.md: a message already deleted is not_found.
    assert_error(await s.a1.request(type="delete", id=mine["id"], ref="e3"), "not_found", "e3")
    assert_error(
        await s.a1.request(type="edit", id=mine["id"], body="x", ref="e4"), "not_found", "e4"
    )


async def test_edit_and_delete_by_anyone_else_is_refused_but_staff_may(site):
    s = await scene(site)
    theirs = await send(s.b2, s.room, "bob's")
    await quiet(s.a1, s.a2, s.b2)
    for tab in (s.a1, s.c1):
        assert_error(
            await tab.request(type="edit", id=theirs["id"], body="mine now", ref="x1"),
            "forbidden",
            "x1",
        )
        assert_error(await tab.request(type="delete", id=theirs["id"], ref="x2"), "forbidden", "x2")
    assert_error(await s.a1.request(type="delete", id=10**12, ref="x4"), "not_found", "x4")
    assert_error(
        await s.b2.request(type="edit", id=theirs["id"], body=" ", ref="x5"), "empty", "x5"
    )
    assert_error(
        await s.b2.request(type="edit", id=theirs["id"], body="z" * 4001, ref="x6"),
        "too_long",
        "x6",
    )
    await assert_nothing_about(s.room, s.a1, s.a2, s.b2)
    history = await s.b2.request(type="history", room=s.room)
    assert [(m["body"], m["edited_at"]) for m in history["messages"]] == [("bob's", None)]

    staff = await site.sign_in(STAFF, STAFF_PASSWORD, worker=2)
    st = await staff.tab(2)
    await st.send(type="edit", id=theirs["id"], body="moderated")
    edited = await s.a1.wait_for(is_("message_edited", s.room))
    assert (edited["id"], edited["message"]["body"]) == (theirs["id"], "moderated")
    await st.send(type="delete", id=theirs["id"])
    deleted = await s.b2.wait_for(is_("message_deleted", s.room))
    assert (deleted["id"], deleted["message"]["deleted"]) == (theirs["id"], True)


async def test_edit_or_delete_of_a_message_in_a_private_room_one_is_not_in_is_forbidden(site):
    alice, bob, carol = await site.people("alice", "bob", "carol")
    secret = await alice.create_room(site.unique("secret"), private=True)
    a1, c2 = await alice.tab(1), await carol.tab(2)
    hidden = await send(a1, secret, "hidden")
    # The contract's `forbidden`: "a private or direct room the user is not in, someone else's
    # message"; `not_found` is for "no such room or message". docs/protocol.md says the same.
    replies = [
        await c2.request(type="edit", id=hidden["id"], body="mine now", ref="x1"),
        await c2.request(type="delete", id=hidden["id"], ref="x2"),
    ]
    assert [r.get("code") for r in replies] == ["forbidden", "forbidden"], replies
    assert_error(replies[0], "forbidden", "x1")
    assert_error(replies[1], "forbidden", "x2")
    history = await a1.request(type="history", room=secret)
    assert [(m["body"], m["deleted"]) for m in history["messages"]] == [("hidden", False)]


# --- ping, bad input, limits --------------------------------------------------------------------


async def test_ping_answers_pong_echoing_the_ref(site):
    (alice,) = await site.people("alice")
    for worker in (1, 2):
        tab = await alice.tab(worker)
        assert await tab.request(type="ping", ref="p" * 64) == {"type": "pong", "ref": "p" * 64}
        await tab.send(type="ping")
        assert await tab.wait_for(is_("pong")) == {"type": "pong"}


async def test_every_bad_frame_gets_its_error_code_and_the_socket_stays_open(site):
    s = await scene(site)
    secret = await s.alice.create_room(site.unique("secret"), private=True)
    tab = s.c1
    cases: list[tuple[str, str, str | None]] = [
        ("{not json", "bad_json", None),
        ("", "bad_json", None),
        ("[1, 2]", "bad_frame", None),
        ('"ping"', "bad_frame", None),
        ("{}", "bad_frame", None),
        ('{"ref": "f1"}', "bad_frame", "f1"),
        ('{"type": 5, "ref": "f2"}', "bad_frame", "f2"),
        ('{"type": null, "ref": "f3"}', "bad_frame", "f3"),
        ('{"type": "ping", "ref": 5}', "bad_frame", None),
        (json.dumps({"type": "ping", "ref": "r" * 65}), "bad_frame", None),
        ('{"type": "send", "room": "x", "ref": "f4"}', "bad_frame", "f4"),
        ('{"type": "send", "room": 1, "body": "hi", "ref": "f5"}', "bad_frame", "f5"),
        ('{"type": "send", "room": "x", "body": ["hi"], "ref": "f6"}', "bad_frame", "f6"),
        ('{"type": "read", "room": "x", "seq": "3", "ref": "f7"}', "bad_frame", "f7"),
        ('{"type": "history", "room": "x", "limit": true, "ref": "f8"}', "bad_frame", "f8"),
        ('{"type": "edit", "id": 1.5, "body": "x", "ref": "f9"}', "bad_frame", "f9"),
        ('{"type": "delete", "id": 9007199254740993, "ref": "f10"}', "bad_frame", "f10"),
        ('{"type": "direct", "to": ["bob"], "body": "x", "ref": "f11"}', "bad_frame", "f11"),
        ('{"type": "shout", "ref": "u1"}', "unknown_type", "u1"),
        ('{"type": "PING", "ref": "u2"}', "unknown_type", "u2"),
        (json.dumps({"type": "send", "room": s.room, "body": "  ", "ref": "e1"}), "empty", "e1"),
        (json.dumps({"type": "direct", "to": s.bob.name, "body": "", "ref": "e2"}), "empty", "e2"),
        (
            json.dumps({"type": "send", "room": s.room, "body": "é" * 4001, "ref": "t1"}),
            "too_long",
            "t1",
        ),
        (json.dumps({"type": "join", "room": "no-such", "ref": "n1"}), "not_found", "n1"),
        (json.dumps({"type": "delete", "id": 10**12, "ref": "n2"}), "not_found", "n2"),
        (json.dumps({"type": "history", "room": secret, "ref": "x1"}), "forbidden", "x1"),
        (
            json.dumps({"type": "send", "room": secret, "body": "hi", "ref": "x2"}),
            "forbidden",
            "x2",
        ),
    ]
    for raw, code, ref in cases:
        await tab.send_raw(raw)
        reply = await tab.wait_for(is_("error"))
        assert reply.get("code") == code, f"{raw[:80]} answered {reply}"
        assert_error(reply, code, ref)
    assert await tab.request(type="ping", ref="still-open") == {"type": "pong", "ref": "still-open"}
    history = await s.a1.request(type="history", room=s.room)
    assert history["messages"] == []


async def test_more_than_100_malformed_frames_in_10_s_close_with_4008(site):
    (alice,) = await site.people("alice")
    tab = await alice.tab(2)
    # Errors that are not malformed frames do not count (`history`: no budget refuses it).
    for n in range(110):
        await tab.send(type="history", room=f"no-such-{n}")
    for _ in range(110):
        assert (await tab.wait_for(is_("error")))["code"] == "not_found"
    malformed = ["{oops", "[]", '{"type": "nope"}', '{"type": "ping", "ref": 1}']
    for n in range(100):
        await tab.send_raw(malformed[n % 4])
    for _ in range(100):
        assert (await tab.wait_for(is_("error")))["code"] in {
            "bad_json",
            "bad_frame",
            "unknown_type",
        }
    assert (await tab.request(type="ping"))["type"] == "pong", "100 malformed frames are allowed"
    await tab.send_raw("{the 101st")
    assert await tab.close_code() == 4008


async def test_a_frame_over_64_kib_closes_with_4009(site):
    (alice,) = await site.people("alice")

    def frame_of(size: int, char: str = "x") -> str:
        head = json.dumps({"type": "send", "room": "r", "ref": "big", "body": ""})
        room_for = size - len(head.encode())
        return head[:-2] + char * (room_for // len(char.encode())) + '"}'

    tab = await alice.tab(1)
    exactly = frame_of(64 * 1024)
    assert len(exactly.encode()) == 65536
    await tab.send_raw(exactly)
    assert_error(await tab.wait_for(is_("error")), "too_long", "big")  # open, and answered
    await tab.send_raw(frame_of(64 * 1024 + 2))
    assert await tab.close_code() == 4009

    # Bytes count, not characters: 33,000 "é" are 66,000 bytes.
    other = await alice.tab(2)
    wide = frame_of(66_040, "é")
    assert len(wide) < 65536 < len(wide.encode())
    await other.send_raw(wide)
    assert await other.close_code() == 4009


async def test_the_default_rate_limit_is_a_burst_of_20_across_tabs_and_workers(site):
    s = await scene(site)
    start = asyncio.get_running_loop().time()
    replies = await asyncio.gather(
        *(
            (s.a1 if n % 2 else s.a2).request(type="send", room=s.room, body=f"{n}")
            for n in range(30)
        )
    )
    elapsed = asyncio.get_running_loop().time() - start
    acked = [r for r in replies if r["type"] == "ack"]
    limited = [r for r in replies if r["type"] == "error"]
    # 20 at once, plus what 5/s refills while the burst is sent.
    assert 20 <= len(acked) <= 20 + int(elapsed * 5) + 1, (len(acked), elapsed)
    assert limited and {r["code"] for r in limited} == {"rate_limited"}
    assert (await send(s.b2, s.room, "bob is not limited"))["type"] == "ack"


# --- presence -----------------------------------------------------------------------------------


async def test_presence_follows_the_first_and_last_connection_across_workers(site):
    alice, bob, carol = await site.people("alice", "bob", "carol")
    room = await alice.create_room(site.unique("room"))
    b2 = await bob.tab(2)
    joined = await b2.request(type="join", room=room)
    assert joined["online"] == [bob.name]
    c2 = await carol.tab(2)

    def presence(event: str) -> Frame:
        return {"type": "presence", "room": room, "user": alice.name, "event": event}

    a1 = await alice.tab(1)
    assert await b2.wait_for(is_("presence", room)) == presence("online")
    a2 = await alice.tab(2)
    assert (await b2.request(type="join", room=room))["online"] == sorted([alice.name, bob.name])
    await assert_nothing_about(room, b2, c2, a1, a2)  # no second `online`, none to alice

    await a1.close()
    await assert_nothing_about(room, b2)  # alice still has a tab on worker 2
    await a2.close()
    assert await b2.wait_for(is_("presence", room)) == presence("offline")
    assert (await b2.request(type="join", room=room))["online"] == [bob.name]
    await assert_nothing_about(room, c2)


# --- signing out ----------------------------------------------------------------------------------


async def test_signing_out_closes_that_sessions_tabs_on_every_worker_with_4403(site):
    (alice,) = await site.people("alice")
    elsewhere = await site.sign_in(alice.name, "correct-horse-battery-staple", worker=2)
    a1, a2 = await alice.tab(1), await alice.tab(2)
    other = await elsewhere.tab(1)
    await asyncio.to_thread(alice.account.sign_out)
    assert [await a1.close_code(), await a2.close_code()] == [4403, 4403]
    assert (await other.request(type="ping"))["type"] == "pong"
    url = site.urls[0]
    stale = f"sessionid={alice.account.session_id or 'gone'}"
    assert await handshake_status(url, stale, url) == 403


async def test_a_user_deactivated_in_the_admin_loses_every_connection_within_seconds(site):
    alice, bob = await site.people("alice", "bob")
    room = await alice.create_room(site.unique("room"))
    b1 = await bob.tab(1)
    await b1.request(type="join", room=room)
    a1, a2 = await alice.tab(1), await alice.tab(2)
    await b1.wait_for(is_("presence", room))  # online

    staff = await site.sign_in(STAFF, STAFF_PASSWORD, worker=2)
    status, page = await asyncio.to_thread(
        staff.account.request, f"/admin/auth/user/?q={alice.name}"
    )
    (pk,) = set(re.findall(r"/admin/auth/user/(\d+)/change/", page))
    status, page = await asyncio.to_thread(
        staff.account.edit_form,
        f"/admin/auth/user/{pk}/change/",
        "user_form",
        {"is_active": None, "_save": "Save"},
    )
    assert status == 302, page[:2000]
    async with asyncio.timeout(5):
        assert [await a1.close_code(), await a2.close_code()] == [4403, 4403]
    assert await b1.wait_for(is_("presence", room)) == {
        "type": "presence",
        "room": room,
        "user": alice.name,
        "event": "offline",
    }
    url = site.urls[1]
    assert await handshake_status(url, alice.account.cookie, url) == 403
