"""Faults under traffic: a killed worker, a rolling restart, a Redis restart, a PostgreSQL
restart. Nothing acked is lost or doubled, and the site recovers by itself."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from urllib.parse import urlparse

import pytest
from django.db import connections

from tests.conftest import port_open, require

from .conftest import REDIS_HOST, REDIS_PORT, ensure_redis, healthz
from .traffic import assert_live_again, assert_nothing_lost, chatter, worker_of

pytestmark = pytest.mark.nginx


async def _crowd(clients, size: int):
    """`size` clients in one room, connected; returns (clients, room)."""
    crowd = [clients(f"user{n}") for n in range(size)]
    room = f"busy-{crowd[0].username}"
    await asyncio.to_thread(crowd[0].create_room, room)
    for client in crowd:
        await client.start()
    await asyncio.gather(*(client.join(room) for client in crowd[1:]))
    return crowd, room


async def _chattering(clients, size: int):
    """`size` clients sending in one room until the returned event is set; returns
    (clients, room, event, their sending tasks)."""
    crowd, room = await _crowd(clients, size)
    done = asyncio.Event()
    traffic = [asyncio.create_task(chatter(c, room, until=done, interval=0.3)) for c in crowd]
    return crowd, room, done, traffic


async def test_kill_9_of_a_worker_loses_nothing_acked(live_cluster, clients):
    crowd, room = await _crowd(clients, 6)
    placed = Counter(worker_of(live_cluster, c.upstreams[0]) for c in crowd)
    assert len(placed) == 3, f"clients spread over workers {dict(placed)}"
    victim = 2
    on_victim = [c for c in crowd if worker_of(live_cluster, c.upstreams[0]) == victim]

    traffic = [asyncio.create_task(chatter(c, room, count=15, interval=0.2)) for c in crowd]
    await asyncio.sleep(1.0)
    await asyncio.to_thread(live_cluster.kill_worker, victim, signal.SIGKILL)
    acks = await asyncio.wait_for(asyncio.gather(*traffic), 90)
    assert sum(map(len, acks)) == 6 * 15

    for client in on_victim:
        assert len(client.upstreams) >= 2, f"{client.username} never reconnected"
        assert worker_of(live_cluster, client.upstreams[-1]) != victim
    await assert_nothing_lost(crowd, room)


async def test_rolling_restart_under_traffic_loses_nothing_acked(live_cluster, clients):
    crowd, room = await _crowd(clients, 6)
    before = dict(live_cluster.worker_pids)
    done = asyncio.Event()
    traffic = [asyncio.create_task(chatter(c, room, until=done, interval=0.25)) for c in crowd]
    await asyncio.sleep(0.5)
    try:
        await asyncio.to_thread(live_cluster.rolling_restart)
        await asyncio.sleep(0.5)
    finally:
        done.set()
    acks = await asyncio.wait_for(asyncio.gather(*traffic), 60)

    closes = Counter(code for c in crowd for code in c.close_codes)
    print(f"rolling restart: close codes seen {dict(closes)}")
    after = live_cluster.worker_pids
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert all(len(c.upstreams) >= 2 for c in crowd), "every worker restarted: all reconnected"
    truth = await assert_nothing_lost(crowd, room)
    assert len(truth) == sum(map(len, acks)) >= 6 * 4


async def test_redis_restart_loses_nothing_acked_and_the_site_recovers(live_cluster, clients):
    require(
        "a local Redis to restart",
        REDIS_HOST in ("127.0.0.1", "localhost")
        and shutil.which("redis-server") is not None
        and shutil.which("redis-cli") is not None,
        "the test restarts redis-server on this machine",
    )
    crowd, room, done, traffic = await _chattering(clients, 4)
    pids = dict(live_cluster.worker_pids)
    url = live_cluster.config.url
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(
            subprocess.run,
            ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "shutdown", "nosave"],
            check=False,
            capture_output=True,
        )
        for _ in range(50):
            if not port_open(REDIS_HOST, REDIS_PORT):
                break
            await asyncio.sleep(0.1)
        assert not port_open(REDIS_HOST, REDIS_PORT), "Redis is still up"

        # While Redis is down, /healthz through nginx names the channel layer.
        status, body = await asyncio.to_thread(healthz, url)
        assert status == 503, (status, body)
        assert json.loads(body)["channel_layer"] == "error", body
        assert json.loads(body)["database"] == "ok", body
        acked_before = sum(len(c.acks) for c in crowd)
        await asyncio.sleep(2.0)
        # Messages are stored in PostgreSQL and acked while Redis is away.
        acked_during = sum(len(c.acks) for c in crowd) - acked_before
    finally:
        await asyncio.to_thread(ensure_redis)
    assert acked_during > 0, "no send was acked while Redis was down (the chat must go on)"

    try:
        await asyncio.to_thread(live_cluster.wait_healthy, f"{url}/healthz", 30)
        await asyncio.sleep(2.0)
    finally:
        done.set()
    await asyncio.wait_for(asyncio.gather(*traffic), 60)
    assert live_cluster.worker_pids == pids, "a worker was restarted"
    # Recovered without a restart: live events reach every worker again (groups were emptied).
    await assert_live_again(crowd, room, "after the Redis restart")
    await assert_nothing_lost(crowd, room)


def _postgresql_cluster() -> list[str] | None:
    """`pg_ctlcluster VERSION main` of the local PostgreSQL, if this machine manages it so."""
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        return None
    versions = sorted(
        os.listdir("/etc/postgresql"), key=lambda v: float(v) if v[0].isdigit() else 0
    )
    return (
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"] if versions else None
    )


async def test_postgresql_restart_answers_internal_and_the_site_recovers(live_cluster, clients):
    database = urlparse(live_cluster.config.database_url)
    pg = _postgresql_cluster()
    require(
        "a local PostgreSQL to restart",
        database.hostname in ("127.0.0.1", "localhost") and pg is not None,
        "the test restarts the PostgreSQL cluster of this machine with pg_ctlcluster",
    )
    assert pg is not None
    crowd, room, done, traffic = await _chattering(clients, 4)
    pids = dict(live_cluster.worker_pids)
    url = live_cluster.config.url
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(subprocess.run, [*pg, "stop", "-m", "fast"], check=True)
        status, body = await asyncio.to_thread(healthz, url)
        assert status == 503, (status, body)
        assert json.loads(body)["database"] == "error", body
        await asyncio.sleep(2.0)
    finally:
        await asyncio.to_thread(subprocess.run, [*pg, "start"], check=True)
        # This test process's own connections died with the server too.
        await asyncio.to_thread(connections.close_all)
    # Sends were refused with `internal` (and retried with the same ref) rather than lost.
    assert sum(c.retried["internal"] for c in crowd) > 0, [c.retried for c in crowd]

    try:
        await asyncio.to_thread(live_cluster.wait_healthy, f"{url}/healthz", 30)
        await asyncio.sleep(2.0)
    finally:
        done.set()
    acks = await asyncio.wait_for(asyncio.gather(*traffic), 60)
    assert live_cluster.worker_pids == pids, "a worker was restarted"
    await assert_live_again(crowd, room, "after the PostgreSQL restart")
    truth = await assert_nothing_lost(crowd, room)
    assert len(truth) == sum(map(len, acks)) + len(crowd)
