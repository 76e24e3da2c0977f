"""Contract §4: bad input is `bad_frame` (or `empty`), never `internal`, and never a log flood.

A NUL in a room slug, body or ref used to reach PostgreSQL, answer `internal` and write a
traceback per frame (1,000 frames: 4.2 MB of log) without counting towards the 4008 limit.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.conftest import Site
from tests.contract.frames import assert_error, send

pytestmark = pytest.mark.redis

CONTROLS = ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x85", "\x9f"]
# What shows as nothing: zero-width space, word joiner, BOM, Hangul filler, braille blank,
# a variation selector alone, an ideographic space, bidi marks.
INVISIBLE = ["\u200b\u200b", "\u2060", "\ufeff", "\u3164", "\u2800", "\ufe0f", "\u3000", "\u200e"]


def worker_logs(chat: Site) -> int:
    return sum((chat.backing.logs / f"{chat.prefix}-worker{n}.log").stat().st_size for n in (1, 2))


async def test_control_characters_in_any_field_are_bad_frames(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    tab = await alice.tab(1)
    sent = await send(tab, room, "to edit")
    for n, char in enumerate(CONTROLS):
        frames = [
            {"type": "send", "room": room, "body": f"a{char}b"},
            {"type": "send", "room": f"{room}{char}", "body": "hi"},
            {"type": "join", "room": f"lobby{char}"},
            {"type": "history", "room": f"{char}{room}"},
            {"type": "typing", "room": f"{room}{char}"},
            {"type": "direct", "to": f"{bob.name}{char}", "body": "hi"},
            {"type": "edit", "id": sent["id"], "body": f"{char}"},
            {"type": "ping", "extra": f"{char}"},
        ]
        for m, frame in enumerate(frames):
            ref = f"c{n}-{m}"
            assert_error(await tab.request(**frame, ref=ref), "bad_frame", ref)
        # In the ref itself: refused without echoing it.
        await tab.send(type="ping", ref=f"r{char}")
        reply = await tab.wait_for(lambda f: f["type"] == "error")
        assert reply["code"] == "bad_frame" and "ref" not in reply
    # Tabs and newlines are text in a body.
    await send(tab, room, "two\tcolumns\nand two lines")
    history = await tab.request(type="history", room=room)
    assert history["messages"][-1]["body"] == "two\tcolumns\nand two lines"
    assert [m["body"] for m in history["messages"]] == ["to edit", "two\tcolumns\nand two lines"]


async def test_bad_frames_count_towards_4008_and_leave_the_log_quiet(chat: Site) -> None:
    (alice,) = await chat.people("alice")
    before = worker_logs(chat)
    for worker in (1, 2):
        tab = await alice.tab(worker)
        for n in range(101):
            await tab.send(type="send", room="lobby\x00", body="x\x00", ref=f"n{n}")
        async with asyncio.timeout(10):
            assert await tab.close_code() == 4008
    grown = worker_logs(chat) - before
    assert grown < 4000, f"202 bad frames wrote {grown} bytes of log"


async def test_a_body_of_invisible_characters_is_empty(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    tab = await alice.tab(2)
    sent = await send(tab, room, "visible")
    for n, body in enumerate([*INVISIBLE, " \u200b \n\t\u3164 "]):
        reply = await tab.request(type="send", room=room, body=body, ref=f"s{n}")
        assert_error(reply, "empty", f"s{n}")
        reply = await tab.request(type="direct", to=bob.name, body=body, ref=f"d{n}")
        assert_error(reply, "empty", f"d{n}")
        await tab.send(type="edit", id=sent["id"], body=body, ref=f"e{n}")
        reply = await tab.wait_for(lambda f, n=n: f.get("ref") == f"e{n}")
        assert_error(reply, "empty", f"e{n}")
    # Invisible characters inside visible text are kept: emoji sequences need them.
    family = "👨\u200d👩\u200d👧"
    await send(tab, room, family)
    history = await tab.request(type="history", room=room)
    assert [m["body"] for m in history["messages"]] == ["visible", family]


async def test_a_direct_message_to_oneself_is_refused(chat: Site) -> None:
    (alice,) = await chat.people("alice")
    tab = await alice.tab(1)
    reply = await tab.request(type="direct", to=alice.name, body="note to self", ref="d1")
    assert_error(reply, "bad_frame", "d1")
    assert (await tab.request(type="ping"))["type"] == "pong"
    fresh = await alice.tab(2)
    assert fresh.hello["rooms"] == []
