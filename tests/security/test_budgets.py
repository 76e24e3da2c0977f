"""Contract §4: every frame that fans out is budgeted; `typing` is throttled per user and room.

`send`, `direct`, `edit`, `delete`, `join` and `leave` share the per-user budget (burst 20, 5/s
by default, across tabs and workers) and answer `rate_limited` beyond it; `typing` is relayed at
most once per 2 s per user and room, the rest dropped silently (40,800 were relayed in 5 s
before); `history` and `read` wait their turn instead of taking a worker's database thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.contract.conftest import Backing, Site, running_site
from tests.contract.frames import is_, send

pytestmark = pytest.mark.redis

BURST = 6


@pytest.fixture(scope="module")
def chat(backing: Backing) -> Iterator[Site]:
    """Two workers whose message budget refills slowly (one per 5 s), so it stays spent."""
    with running_site(
        backing, CHATSITE_RATE_BURST=str(BURST), CHATSITE_RATE_PER_SECOND="0.2"
    ) as running:
        yield running


async def test_a_typing_flood_from_two_tabs_reaches_others_once_per_two_seconds(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    watcher = await bob.tab(2)
    await watcher.request(type="join", room=room)
    tabs = [await alice.tab(1), await alice.tab(2)]

    started = time.monotonic()
    for _ in range(150):
        for tab in tabs:
            await tab.send(type="typing", room=room)
    for tab in tabs:
        assert (await tab.request(type="ping"))["type"] == "pong"
    seconds = time.monotonic() - started
    frames = await watcher.collect(1.0)
    typing = [f for f in frames if f["type"] == "typing"]
    # 300 frames over `seconds`: one relay at the start and one per further 2 s at most.
    assert 1 <= len(typing) <= 1 + int(seconds / 2) + 1, (len(typing), seconds)
    assert all(f == {"type": "typing", "room": room, "user": alice.name} for f in typing)
    # The typists' own tabs never hear themselves.
    for tab in tabs:
        assert not [f for f in await tab.collect(0.2) if f["type"] == "typing"]


async def test_edits_deletes_joins_and_leaves_share_the_message_budget(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    other = await alice.create_room(chat.unique("other"))
    tab = await bob.tab(1)
    second = await bob.tab(2)
    await tab.request(type="join", room=room)
    sent = await send(tab, room, "a message to edit")

    for n in range(3):
        # An edit is answered by the room's `message_edited`, or by an error with its ref.
        await tab.send(type="edit", id=sent["id"], body=f"edit {n}", ref=f"e{n}")
        await second.send(type="join", room=other, ref=f"j{n}")
        await second.send(type="leave", room=other, ref=f"l{n}")
    frames = await tab.settle() + await second.settle()
    # The join and the send above took two of the burst; the rest of these 9 went through.
    limited = [f for f in frames if f["type"] == "error"]
    assert len(limited) == 9 - (BURST - 2), limited
    assert {f["code"] for f in limited} == {"rate_limited"}
    # One budget for all of them, `send` included: spent, every one of them is refused.
    for frame in (
        {"type": "send", "room": room, "body": "one more"},
        {"type": "edit", "id": sent["id"], "body": "late"},
        {"type": "delete", "id": sent["id"]},
        {"type": "join", "room": other},
        {"type": "leave", "room": room},
    ):
        reply = await tab.request(**frame, ref="late")
        assert reply["type"] == "error" and reply["code"] == "rate_limited", (frame, reply)
    # Never a close: both tabs still answer.
    assert (await tab.request(type="ping"))["type"] == "pong"
    assert (await second.request(type="ping"))["type"] == "pong"


async def test_a_history_flood_waits_its_turn_and_other_users_do_not(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    writer = await alice.tab(1)
    await send(writer, room, "hello")
    flooder = await bob.tab(1)
    await flooder.request(type="join", room=room)

    started = time.monotonic()
    for n in range(160):
        await flooder.send(type="history", room=room, ref=f"h{n}")
    # Meanwhile alice, on the same worker, is answered at once.
    quick = time.monotonic()
    assert (await writer.request(type="history", room=room))["type"] == "history"
    assert time.monotonic() - quick < 1
    answers = [await flooder.wait_for(is_("history"), timeout=15) for _ in range(160)]
    took = time.monotonic() - started
    # Every request answered, none refused: past the burst of 100, 20 a second.
    assert [a["ref"] for a in answers] == [f"h{n}" for n in range(160)]
    assert took >= 2, f"160 history requests answered in {took:.1f} s"


async def test_a_flood_of_history_api_requests_waits_its_turn(chat: Site) -> None:
    (alice,) = await chat.people("alice")
    room = await alice.create_room(chat.unique("room"))

    def flood() -> tuple[list[int], float]:
        started = time.monotonic()
        path = f"/api/rooms/{room}/messages"
        statuses = [alice.account.request(path)[0] for _ in range(150)]
        return statuses, time.monotonic() - started

    statuses, took = await asyncio.to_thread(flood)
    # Every one answered, none refused: past the burst of 100, 20 a second (shared with the
    # user's `history` and `read` frames).
    assert statuses == [200] * 150
    assert took >= 2, f"150 pages answered in {took:.1f} s"
