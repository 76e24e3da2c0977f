"""Contract §4 `rate_limited`: per user, across tabs and workers, never closing a socket.

Two workers of their own with a low limit (burst 3, 2 messages/s), so a burst is short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .conftest import Backing, Site, running_site
from .frames import assert_error, send

pytestmark = pytest.mark.redis

BURST = 3
RATE = 2.0


@pytest.fixture(scope="module")
def site(backing: Backing) -> Iterator[Site]:
    with running_site(
        backing, CHATSITE_RATE_BURST=str(BURST), CHATSITE_RATE_PER_SECOND=str(RATE)
    ) as running:
        yield running


async def test_a_burst_split_across_tabs_on_two_workers_is_rate_limited_per_user(site):
    alice, bob = await site.people("alice", "bob")
    room = await alice.create_room(site.unique("room"))
    a1, a2, b2 = await alice.tab(1), await alice.tab(2), await bob.tab(2)
    await b2.request(type="join", room=room)

    replies = [
        await tab.request(type="send", room=room, body=f"burst {n}", ref=f"s{n}")
        for n, tab in enumerate([a1, a2, a1, a2])
    ]
    assert [r["type"] for r in replies] == ["ack", "ack", "ack", "error"]
    assert_error(replies[3], "rate_limited", "s3")
    # `direct` draws on the same bucket; other users have their own.
    assert_error(
        await a1.request(type="direct", to=bob.name, body="psst", ref="d1"), "rate_limited", "d1"
    )
    assert (await send(b2, room, "bob is not limited", ref="b0"))["seq"] == 4

    # Nothing was stored for the refused frames; a retry with the same ref, later, is.
    history = await b2.request(type="history", room=room)
    assert [m["ref"] for m in history["messages"]] == ["s0", "s1", "s2", "b0"]
    await asyncio.sleep(1 / RATE + 0.1)
    retry = await a2.request(type="send", room=room, body="burst 3", ref="s3")
    assert (retry["type"], retry["seq"]) == ("ack", 5)


async def test_rate_limited_replies_never_close_a_socket(site):
    (alice,) = await site.people("alice")
    room = await alice.create_room(site.unique("room"))
    tab = await alice.tab(2)
    replies = await asyncio.gather(
        *(tab.request(type="send", room=room, body=f"flood {n}") for n in range(150))
    )
    limited = [r for r in replies if r["type"] == "error"]
    assert {r["code"] for r in limited} == {"rate_limited"}
    assert len(limited) > 100  # more than would close the socket were they malformed frames
    assert (await tab.request(type="ping"))["type"] == "pong"
