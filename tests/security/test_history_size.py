"""Contract §4: no server frame is larger than 1 MiB; a `history` page that would be is cut
short with `has_more: true`, so a room of long messages still loads and resumes.

Fifty-one messages of long emoji or CJK text used to make a `history` reply pass 1 MiB, which
the worker could not send (`internal`): the room could never be loaded or resumed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest

from tests.contract.conftest import Backing, Site, running_site
from tests.wsclient import Frame, Socket

from .conftest import MIB

pytestmark = pytest.mark.redis

COUNT = 120
BODIES = {"emoji": "😀" * 4000, "cjk": "漢" * 4000}


@pytest.fixture(scope="module")
def chat(backing: Backing) -> Iterator[Site]:
    """Two workers; the message rate limit raised so a room fills in a moment."""
    with running_site(
        backing, CHATSITE_RATE_BURST="1000", CHATSITE_RATE_PER_SECOND="1000"
    ) as running:
        yield running


async def history(tab: Socket, room: str, **page: int) -> Frame:
    """A `history` reply, checked to be a frame of at most 1 MiB."""
    reply = await tab.request(type="history", room=room, **page)
    assert reply["type"] == "history", reply
    assert len(orjson.dumps(reply)) <= MIB
    return reply


@pytest.mark.parametrize("script", BODIES)
async def test_a_room_of_the_longest_messages_loads_and_resumes_page_by_page(
    chat: Site, script: str
) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique(script))
    writer = await alice.tab(1)
    for n in range(1, COUNT + 1):
        reply = await writer.request(type="send", room=room, body=BODIES[script], ref=f"m{n}")
        assert reply["type"] == "ack", reply
    reader = await bob.tab(2)
    assert (await reader.request(type="join", room=room))["type"] == "joined"

    # The client's first pages (50, then 100): the newest messages, cut to fit.
    for limit in (50, 100):
        page = await history(reader, room, limit=limit)
        seqs = [m["seq"] for m in page["messages"]]
        assert seqs == list(range(COUNT - len(seqs) + 1, COUNT + 1))
        assert page["has_more"] is True
        assert all(m["body"] == BODIES[script] for m in page["messages"])

    # Scrolling back: every message exactly once, in order, then has_more false.
    older: list[int] = []
    before = COUNT + 1
    while True:
        page = await history(reader, room, before=before, limit=100)
        older = [m["seq"] for m in page["messages"]] + older
        if not page["has_more"]:
            break
        before = page["messages"][0]["seq"]
    assert older == list(range(1, COUNT + 1))

    # Resuming after seq 0 (a client that holds nothing): forward, page by page.
    newer: list[int] = []
    after = 0
    while True:
        page = await history(reader, room, after=after, limit=100)
        newer += [m["seq"] for m in page["messages"]]
        if not page["has_more"]:
            break
        after = page["messages"][-1]["seq"]
    assert newer == list(range(1, COUNT + 1))

    # The JSON API pages the same way.
    api = await asyncio.to_thread(bob.account.api_history, room)
    assert [m["seq"] for m in api] == list(range(1, COUNT + 1))
