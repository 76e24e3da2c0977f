"""Real daphne workers sharing Redis: idle sockets survive, dead workers' users go offline."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest

from tests.servers import daphne, migrate
from tests.wsclient import Account, Socket

pytestmark = pytest.mark.redis


@pytest.fixture
def worker_env(redis_url, tmp_path):
    """Environment of workers forming one site: one database, one Redis, a fresh key prefix."""
    env = {
        "DATABASE_URL": os.environ.get("WORKERS_DATABASE_URL", f"sqlite:///{tmp_path}/site.db"),
        "REDIS_URL": redis_url,
        "CHATSITE_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    migrate(env)
    return env


def test_an_idle_socket_survives_a_minute_on_the_redis_layer(worker_env):
    """redis-py's read timeout once dropped idle sockets after ~5 s (stack fact 1)."""
    with daphne(worker_env) as (port, _):
        base = f"http://127.0.0.1:{port}"
        alice = Account.sign_up(base, "alice")
        alice.create_room("Lobby", "lobby")
        bob = Account.sign_up(base, "bob")

        async def scenario() -> None:
            idle = await Socket.open(f"ws://127.0.0.1:{port}", bob.cookie, base)
            await idle.wait_for(lambda f: f["type"] == "hello")
            await idle.request(type="join", room="lobby")
            await asyncio.sleep(62)
            talker = await Socket.open(f"ws://127.0.0.1:{port}", alice.cookie, base)
            await talker.request(type="send", room="lobby", body="still there?")
            message = await idle.wait_for(lambda f: f["type"] == "message")
            assert message["message"]["body"] == "still there?"
            assert (await idle.request(type="ping"))["type"] == "pong"
            await idle.close()
            await talker.close()

        asyncio.run(scenario())


def test_a_killed_workers_users_go_offline_everywhere_within_a_minute(worker_env):
    with daphne(worker_env) as (port1, _), daphne(worker_env) as (port2, doomed):
        base1, base2 = f"http://127.0.0.1:{port1}", f"http://127.0.0.1:{port2}"
        alice = Account.sign_up(base1, "alice")
        alice.create_room("Lobby", "lobby")
        bob = Account.sign_up(base2, "bob")

        async def scenario() -> float:
            watcher = await Socket.open(f"ws://127.0.0.1:{port1}", alice.cookie, base1)
            await watcher.wait_for(lambda f: f["type"] == "hello")
            victim = await Socket.open(f"ws://127.0.0.1:{port2}", bob.cookie, base2)
            await victim.wait_for(lambda f: f["type"] == "hello")
            joined = await victim.request(type="join", room="lobby")
            assert "bob" in joined["online"] and "alice" in joined["online"]
            # Alice, on the other worker, sees bob's messages and presence.
            await victim.request(type="send", room="lobby", body="hi from worker 2")
            got = await watcher.wait_for(lambda f: f["type"] == "message")
            assert got["message"]["author"] == "bob"
            doomed.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            offline = await watcher.wait_for(
                lambda f: f["type"] == "presence" and f["event"] == "offline", timeout=65
            )
            assert offline == {
                "type": "presence",
                "room": "lobby",
                "user": "bob",
                "event": "offline",
            }
            await watcher.close()
            return time.monotonic() - killed_at

        assert asyncio.run(scenario()) <= 60
