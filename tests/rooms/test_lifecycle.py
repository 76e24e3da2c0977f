"""A real worker's socket life: graceful shutdown (4012) and signing out (4403)."""

from __future__ import annotations

import asyncio
import signal

import pytest
import websockets

from tests.servers import daphne, migrate
from tests.wsclient import Account, Socket


@pytest.fixture
def site_env(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/site.db", "REDIS_URL": ""}
    migrate(env)
    return env


async def close_code(sock: Socket, timeout: float = 10) -> int:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await sock.ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006


def test_sigterm_tells_every_socket_to_reconnect_elsewhere(site_env):
    with daphne(site_env) as (port, proc):
        base = f"http://127.0.0.1:{port}"
        accounts = [Account.sign_up(base, name) for name in ("alice", "bob")]

        async def scenario() -> list[int]:
            sockets = [
                await Socket.open(f"ws://127.0.0.1:{port}", a.cookie, base) for a in accounts
            ]
            for sock in sockets:
                await sock.wait_for(lambda f: f["type"] == "hello")
            proc.send_signal(signal.SIGTERM)
            return [await close_code(sock) for sock in sockets]

        assert asyncio.run(scenario()) == [4012, 4012]
        proc.wait(10)
        assert proc.returncode is not None


def test_signing_out_closes_that_sessions_sockets_with_4403(site_env):
    with daphne(site_env) as (port, _):
        base = f"http://127.0.0.1:{port}"
        alice = Account.sign_up(base, "alice")
        elsewhere = Account(base)
        elsewhere.post_form(
            "/accounts/login/", {"username": "alice", "password": "correct-horse-battery-staple"}
        )

        async def scenario() -> tuple[int, dict]:
            leaving = await Socket.open(f"ws://127.0.0.1:{port}", alice.cookie, base)
            staying = await Socket.open(f"ws://127.0.0.1:{port}", elsewhere.cookie, base)
            for sock in (leaving, staying):
                await sock.wait_for(lambda f: f["type"] == "hello")
            await asyncio.to_thread(alice.sign_out)
            code = await close_code(leaving)
            pong = await staying.request(type="ping")
            await staying.close()
            return code, pong

        code, pong = asyncio.run(scenario())
        assert code == 4403
        assert pong["type"] == "pong"
