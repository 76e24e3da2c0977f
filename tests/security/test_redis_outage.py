"""While Redis is down, pages and sign-in keep working (contract §4, "Limits that keep one user
from hurting others"): sessions come from the database, `send` is still stored and acked, only
live delivery pauses, and /healthz says 503.

Each test runs a redis-server of its own on a free port (the shared one is never touched), a
real daphne worker on a fresh SQLite database pointed at it, and then kills the Redis (`kill
-9`, then a fresh one on the same port) or pauses it (`kill -STOP`, then `-CONT`). A paused Redis
is the harder case: connections open and commands are accepted, but nothing ever answers, so
every wait must be bounded by a timeout of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.redis_servers import PrivateRedis, private_redis
from tests.servers import sqlite_worker
from tests.wsclient import Account

pytestmark = pytest.mark.redis

T = TypeVar("T")

# What one action may cost while Redis is paused. Each cache call gives up after 0.5 s, and a
# request makes one to three (a signed-in page: read the session, then cache it again; signing
# out also deletes it); a form is two requests. Presence and rate-limit calls give up after 1 s.
ACTION_SECONDS = 3.5
# /healthz waits at most 2 s for the channel layer (rooms/health.py), plus a cache-free page.
HEALTHZ_SECONDS = 3.5
CLOSE_RESYNC = 4012


@contextlib.contextmanager
def site_on(server: PrivateRedis) -> Iterator[str]:
    """One daphne worker on a fresh SQLite database and this Redis; yields its base URL."""
    # The default prefix, whatever the caller's environment says.
    with sqlite_worker(REDIS_URL=server.url, CHATSITE_LAYER_PREFIX="") as worker:
        yield worker.base


@contextlib.contextmanager
def redis_away(server: PrivateRedis, how: str) -> Iterator[None]:
    """Redis killed (a fresh, empty one comes back on the same port) or paused (resumed)."""
    if how == "killed":
        server.kill()
        try:
            yield
        finally:
            server.start()
    else:
        server.pause()
        try:
            yield
        finally:
            server.resume()


async def timed(costs: dict[str, float], what: str, call: Callable[[], T]) -> T:
    """Run a blocking HTTP call off the loop (the sockets keep reading) and note its cost."""
    started = time.monotonic()
    try:
        return await asyncio.to_thread(call)
    finally:
        costs[what] = round(time.monotonic() - started, 2)


async def live_delivery_resumes(alice: Account, bob: Account, body: str) -> None:
    """New sockets get `hello`, and a message reaches the other user's socket live.

    Right after Redis is back the hub may still ask fresh sockets to resync (4012), as it does
    once it hears the broadcast again: like a client, try again, for at most 20 s.
    """
    deadline = time.monotonic() + 20
    while True:
        talker = listener = None
        try:
            talker = await alice.open_socket()
            listener = await bob.open_socket()
            await talker.request(type="send", room="lobby", body=body)
            got = await listener.wait_for(lambda f: f["type"] == "message", timeout=3)
            assert got["message"]["body"] == body
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            for sock in (talker, listener):
                if sock is not None:
                    await sock.close()


@pytest.mark.parametrize("how", ["killed", "paused"])
def test_pages_sign_in_and_sends_keep_working_while_redis_is_away(how, tmp_path):
    with private_redis(tmp_path) as server, site_on(server) as base:
        alice = Account.sign_up(base, "alice")
        alice.create_room("Lobby", "lobby")
        alice.create_room("Side", "side")
        bob = Account.sign_up(base, "bob")

        async def scenario() -> dict[str, float]:
            costs: dict[str, float] = {}
            tab = await alice.open_socket()
            listener = await bob.open_socket()
            assert (await listener.request(type="join", room="lobby"))["type"] == "joined"
            await tab.request(type="send", room="lobby", body="before")
            await listener.wait_for(lambda f: f["type"] == "message")

            with redis_away(server, how):
                # A socket opened before the outage: the message is stored and acked.
                started = time.monotonic()
                ack = await tab.request(type="send", room="lobby", body="while away", timeout=8)
                costs["send, until its ack"] = round(time.monotonic() - started, 2)
                assert ack["type"] == "ack", ack
                stored = await timed(costs, "history API", lambda: alice.api_history("lobby"))
                assert (stored[-1]["seq"], stored[-1]["body"]) == (ack["seq"], "while away")
                # Joining works too, without knowing who is online.
                started = time.monotonic()
                joined = await listener.request(type="join", room="side", timeout=8)
                costs["join"] = round(time.monotonic() - started, 2)
                assert joined["type"] == "joined" and joined["online"] == [], joined

                # Sessions come from the database: sign-in, sign-up and every page work.
                again = await timed(costs, "sign-in", lambda: Account.sign_in(base, "alice"))
                status, body = await timed(costs, "room list", lambda: again.request("/rooms/"))
                assert status == 200 and "/rooms/lobby/" in body
                status, body = await timed(
                    costs, "room page", lambda: again.request("/rooms/lobby/")
                )
                assert status == 200 and "while away" in body
                carol = await timed(costs, "sign-up", lambda: Account.sign_up(base, "carol"))
                await timed(costs, "new room", lambda: carol.create_room("Nook", "nook"))
                status, _ = await timed(costs, "home", lambda: carol.request("/"))
                assert status == 200
                status, _ = await timed(
                    costs,
                    "sign-out",
                    lambda: again.post_form("/", {}, action="/accounts/logout/"),
                )
                assert status == 302
                assert again.request("/rooms/")[0] == 302  # signed out: to the sign-in page

                status, health = await timed(
                    costs, "healthz", lambda: Account(base).get_json("/healthz")
                )
                assert status == 503, health
                assert health["channel_layer"] == "error" and health["database"] == "ok"

            # The hub may have missed events: it asks its sockets to resync (during the
            # outage already, once it stops hearing itself, or when it hears itself again).
            assert await tab.close_code(timeout=20) == CLOSE_RESYNC
            await listener.close()
            await live_delivery_resumes(alice, bob, "live again")
            return costs

        costs = asyncio.run(scenario())
        print(f"Redis {how}: seconds per action {json.dumps(costs)}")
        assert costs.pop("healthz") < HEALTHZ_SECONDS, costs
        assert max(costs.values()) < ACTION_SECONDS, costs
