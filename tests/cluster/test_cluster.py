"""One site on several workers: clients on different workers chat, see each other, agree."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.files import png

from .conftest import healthz
from .traffic import assert_nothing_lost, chatter, worker_of

pytestmark = pytest.mark.nginx


async def test_clients_on_different_workers_chat_see_presence_and_agree_on_unread(
    live_cluster, clients
):
    alice, bob, carol = clients("alice"), clients("bob"), clients("carol")
    room = f"lobby-{alice.username}"
    await asyncio.to_thread(alice.create_room, room)
    for client in (alice, bob, carol):
        await client.start()
    workers = {worker_of(live_cluster, c.upstreams[0]) for c in (alice, bob, carol)}
    assert len(workers) == 3, f"nginx sent three sockets to workers {workers}, not to three"

    await bob.join(room)
    joined = await carol.join(room)
    # Presence crosses workers: carol sees alice and bob online, alice sees both join.
    assert {alice.username, bob.username, carol.username} <= set(joined["online"])
    await alice.wait_for(
        lambda: {(bob.username, "joined"), (carol.username, "joined")} <= set(alice.presence(room)),
        what="bob and carol joining",
    )
    await carol.close()
    await alice.wait_for(
        lambda: (carol.username, "offline") in alice.presence(room), what="carol going offline"
    )
    await carol.start()
    await bob.wait_for(
        lambda: (carol.username, "online") in bob.presence(room), what="carol coming back online"
    )

    # Five messages each, in turn: every client sees all fifteen live, in one order.
    for client in (alice, bob, carol):
        await chatter(client, room, count=5, interval=0.02)
    for client in (alice, bob, carol):
        await client.wait_for(lambda c=client: len(c.view[room]) == 15, what="15 live messages")
    await assert_nothing_lost([alice, bob, carol], room)

    # alice read up to 10 (her own 1..5 count as read): 5 unread, on every worker alike.
    tab2 = clients("alice", tab_of=alice)
    for _ in range(5):
        await tab2.start()
        if tab2.upstreams[-1] != alice.upstreams[-1]:
            break
        await tab2.close()
    assert tab2.upstreams[-1] != alice.upstreams[-1], "alice's two tabs share a worker"
    reply = await alice.call({"type": "read", "room": room, "seq": 10})
    assert (reply["type"], reply["count"], reply["last_read"]) == ("unread", 5, 10)
    await tab2.wait_for(
        lambda: any(e["type"] == "unread" and e["count"] == 5 for e in tab2.events),
        what="the read marker reaching alice's other tab",
    )
    for client, unread in ((alice, 5), (bob, 5), (carol, 0)):
        await client.close()
        await client.start()
        counts = {r["slug"]: r["unread"] for r in client.hellos[-1]["rooms"]}
        assert counts[room] == unread, f"{client.username} on {client.upstreams[-1]}: {counts}"


async def test_presence_outlives_its_ttl_and_a_dead_workers_users_go_offline(live_cluster, clients):
    """Contract §4: online follows connections across workers; a dead worker's users go
    offline within 60 s. Waits past PRESENCE_TTL_SECONDS + one heartbeat (40 s)."""
    alice, bob = clients("alice"), clients("bob")
    carol = clients("carol", reconnect=False)
    room = f"porch-{alice.username}"
    await asyncio.to_thread(alice.create_room, room)
    for client in (alice, bob, carol):
        await client.start()
    for client in (bob, carol):
        await client.join(room)
    by_worker = {worker_of(live_cluster, c.upstreams[0]): c for c in (alice, bob, carol)}
    assert len(by_worker) == 3, f"the three landed on workers {sorted(by_worker)}"
    carols_worker = worker_of(live_cluster, carol.upstreams[0])

    killed_at = asyncio.get_running_loop().time()
    await asyncio.to_thread(live_cluster.kill_worker, carols_worker, signal.SIGKILL)
    await asyncio.sleep(40)

    joined = await alice.join(room)  # joining again answers `joined` with who is online now
    assert bob.username in joined["online"], (
        f"bob has been connected for 40 s but is not online: {joined['online']} "
        "(presence is not renewed while a connection stays open)"
    )
    remaining = 60 - (asyncio.get_running_loop().time() - killed_at)
    await alice.wait_for(
        lambda: (carol.username, "offline") in alice.presence(room),
        timeout=max(remaining, 1),
        what="carol (her worker was killed) going offline within 60 s",
    )
    joined = await alice.join(room)
    assert carol.username not in joined["online"]


async def test_healthz_answers_200_on_an_idle_worker_with_open_sockets(live_cluster, clients):
    """Load balancers and orchestrators poll /healthz on quiet workers too."""
    alice = clients("alice")
    await alice.start()
    port = live_cluster.config.worker_port(worker_of(live_cluster, alice.upstreams[0]))
    await asyncio.sleep(0.5)
    statuses = [(await asyncio.to_thread(healthz, f"http://127.0.0.1:{port}"))[0] for _ in range(3)]
    assert statuses == [200, 200, 200], (
        f"/healthz of the worker holding alice's socket answered {statuses} while it is idle"
    )


async def test_attachments_go_up_through_nginx_and_nginx_sends_them(live_cluster, clients):
    """A worker checks who asks for a file, then nginx sends it (X-Accel-Redirect): bob gets
    alice's picture whichever worker answers; nobody reaches the files nginx keeps internal."""
    alice, bob = clients("alice"), clients("bob")
    room = f"files-{alice.username}"
    await asyncio.to_thread(alice.create_room, room)
    for client in (alice, bob):
        await client.start()
    await bob.join(room)
    picture = png(16, 16)
    status, attachment = await asyncio.to_thread(alice.account.upload, room, "square.png", picture)
    assert status == 201, attachment
    ack = await alice.call(
        {"type": "send", "room": room, "body": "a square", "attachments": [attachment["id"]]}
    )
    assert ack["type"] == "ack", ack
    await bob.wait_for(
        lambda: any(m["attachments"] == [attachment] for m in bob.view.get(room, {}).values()),
        what="the message with the picture",
    )
    for _ in range(3):  # whichever worker nginx asks
        status, headers, body = await asyncio.to_thread(bob.account.send_request, attachment["url"])
        assert (status, body, headers["Content-Type"]) == (200, picture, "image/png")
        assert "X-Accel-Redirect" not in headers
    stored = next(live_cluster.media_root.rglob("*.png")).relative_to(live_cluster.media_root)
    status, _, _ = await asyncio.to_thread(bob.account.send_request, f"/protected-media/{stored}")
    assert status == 404
    # nginx lets an upload just over the limit through, so that the site says why.
    status, refused = await asyncio.to_thread(
        alice.account.upload, room, "big.png", picture + b"\0" * (10 * 1024 * 1024)
    )
    assert (status, refused["error"]) == (413, "too_large")
