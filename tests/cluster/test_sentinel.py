"""Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER): the site finds the master through
Sentinel and follows a failover without a worker restart.

A master, its replica and one sentinel of the test's own, two daphne workers reached directly
(no nginx) on a database of the module's own. People on both workers chat while the master is
killed with `kill -9`; once the sentinel has promoted the replica, live delivery resumes, and
nothing acked is lost or doubled (sockets closed with 4012 reconnect and resume by `seq`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from tests.redis_servers import PrivateRedis, PrivateSentinel, running, wait_for

from .client import ChatClient
from .conftest import site_workers, wait_healthy
from .traffic import assert_live_again, assert_nothing_lost, chatter

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

MASTER_NAME = "chat"
PEOPLE = 4  # on worker 1, 2, 1, 2
# down-after-milliseconds is 1 s; the election and promotion take a few more.
FAILOVER_SECONDS = 20


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_a_sentinel_failover_loses_nothing_acked(kind, own_database, tmp_path):
    started = time.monotonic()
    master = PrivateRedis(tmp_path / "master")
    replica = PrivateRedis(tmp_path / "replica", replica_of=master)
    sentinel = PrivateSentinel(tmp_path / "sentinel", MASTER_NAME, master)
    env = {
        "DATABASE_URL": own_database,
        "REDIS_URL": "",  # database 0, no password
        "REDIS_SENTINELS": sentinel.address,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "CHATSITE_CHANNEL_LAYER": kind,
        "CHATSITE_LAYER_PREFIX": "",
    }
    with running(master, replica, sentinel):
        # The sentinel must know the replica (from the master's INFO) before it can promote it.
        await asyncio.to_thread(
            wait_for,
            lambda: True if replica.port in sentinel.replicas_in_sync() else None,
            15,
            "the sentinel did not see the replica in sync",
        )
        with site_workers(env, tmp_path) as urls:
            tag = uuid.uuid4().hex[:6]
            people = [ChatClient(urls[n % 2], f"p{n}-{tag}") for n in range(PEOPLE)]
            await asyncio.gather(*(asyncio.to_thread(p.signup) for p in people))
            room = f"failover-{tag}"
            await asyncio.to_thread(people[0].create_room, room)
            done = asyncio.Event()
            traffic: list[asyncio.Task[list[dict[str, object]]]] = []
            try:
                for person in people:
                    await person.start()
                await asyncio.gather(*(person.join(room) for person in people[1:]))
                traffic = [
                    asyncio.create_task(chatter(p, room, until=done, interval=0.3)) for p in people
                ]
                await asyncio.sleep(1.5)
                assert all(p.acks for p in people), "no traffic before the failover"

                killed_at = time.monotonic()
                await asyncio.to_thread(master.kill)
                promoted = await asyncio.to_thread(
                    wait_for,
                    lambda: True if sentinel.master_port() == replica.port else None,
                    FAILOVER_SECONDS,
                    "the sentinel did not promote the replica",
                )
                assert promoted
                failover = time.monotonic() - killed_at
                # Both workers find the new master: /healthz reports the channel layer again.
                for url in urls:
                    health = await asyncio.to_thread(wait_healthy, url, 30)
                    assert health["channel_layer"] == "ok", health
                recovered = time.monotonic() - killed_at
                await asyncio.sleep(2.0)  # chatting on the new master
            finally:
                done.set()
            acks = await asyncio.wait_for(asyncio.gather(*traffic), 60)
            try:
                # Live again on both workers, and every acked message in every view once.
                await assert_live_again(people, room, "after the failover")
                truth = await assert_nothing_lost(people, room)
                assert len(truth) == sum(map(len, acks)) + PEOPLE
            finally:
                await asyncio.gather(*(person.close() for person in people))
            closes = Counter(code for p in people for code in p.close_codes)
    print(
        f"{kind}: promoted {failover:.1f} s after kill -9, healthy after {recovered:.1f} s;"
        f" close codes {dict(closes)}; {len(truth)} messages;"
        f" {time.monotonic() - started:.1f} s in all"
    )
