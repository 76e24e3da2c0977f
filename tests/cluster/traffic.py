"""Traffic and the one check every fault test makes: nothing acked is lost or doubled."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from deploy.cluster import Cluster

from .client import ChatClient


async def chatter(
    client: ChatClient,
    room: str,
    *,
    count: int | None = None,
    until: asyncio.Event | None = None,
    interval: float = 0.25,
) -> list[dict[str, Any]]:
    """Send `count` messages (or until `until` is set), each retried until acked."""
    acks = []
    n = 0
    while (count is None or n < count) and not (until is not None and until.is_set()):
        n += 1
        body = f"{client.username} says {n}"
        acks.append(await client.send_message(room, body, ref=f"{client.username}-m{n}"))
        await asyncio.sleep(interval * random.uniform(0.5, 1.5))
    return acks


def worker_of(cluster: Cluster, upstream: str) -> int:
    """The worker index behind an X-Chatsite-Upstream address like 127.0.0.1:8202."""
    return int(upstream.rsplit(":", 1)[1]) - cluster.config.first_worker_port + 1


async def assert_nothing_lost(clients: list[ChatClient], room: str) -> list[dict[str, Any]]:
    """Every acked message is stored once, and is in every client's view exactly once."""
    await asyncio.gather(*(client.sync(room) for client in clients))
    truth = await asyncio.to_thread(clients[0].api_history, room)

    seqs = [m["seq"] for m in truth]
    assert seqs == list(range(1, len(truth) + 1)), f"seq has gaps or disorder: {seqs}"
    refs = Counter(m["ref"] for m in truth)
    assert not [r for r, n in refs.items() if n > 1], f"stored twice: {refs.most_common(3)}"

    stored = {m["ref"]: m for m in truth}
    acked = {ref: ack for c in clients for ref, ack in c.acks.items() if ack["room"] == room}
    for ref, ack in acked.items():
        assert ref in stored, f"acked {ref} (seq {ack['seq']}) is not in the room's history"
        assert (stored[ref]["id"], stored[ref]["seq"]) == (ack["id"], ack["seq"]), ref

    expected = {m["seq"]: m["id"] for m in truth}
    for client in clients:
        assert not client.conflicts, f"{client.username} saw two messages with one seq"
        assert not client.duplicates(room), f"{client.username} holds a message twice"
        view = {seq: m["id"] for seq, m in client.view.get(room, {}).items()}
        assert view == expected, (
            f"{client.username}'s view differs from the history: "
            f"missing {sorted(set(expected) - set(view))[:10]}, "
            f"extra {sorted(set(view) - set(expected))[:10]}"
        )
    return truth


async def assert_live_again(clients: list[ChatClient], room: str, when: str) -> None:
    """Each client sends one more message; every client sees all of them live."""
    marks = [await c.send_message(room, when, f"{c.username}-live") for c in clients]
    for client in clients:
        await client.wait_for(
            lambda c=client: all(m["seq"] in c.view[room] for m in marks),
            timeout=15,
            what=f"live messages {when}",
        )
