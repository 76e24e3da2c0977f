"""A real cluster for these tests: three daphne workers behind nginx, PostgreSQL and Redis.

It stays out of a developer's way: its own ports (nginx 8280, workers 8201..8203), its own
database (chatsite_cluster_test, dropped at the end), its own Redis database and layer prefix,
and its own run directory (run/cluster-test/, kept after the run for its logs).

Tests of other Redis set-ups (several servers, Sentinel) start their own Redis processes
(tests/redis_servers.py) and workers instead (`own_database`, `site_workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from deploy.cluster import BASE_DIR, Cluster, ClusterConfig, http_get
from tests.conftest import TEST_REDIS_URL, port_open, require
from tests.servers import daphne, get, migrate

from .client import ChatClient

WORKERS = 3
NGINX_PORT = 8280
FIRST_WORKER_PORT = 8201
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatsite_cluster_test"
_redis = urlparse(TEST_REDIS_URL)
REDIS_HOST = _redis.hostname or "127.0.0.1"
REDIS_PORT = _redis.port or 6379
# Database 13: presence and rate-limit keys are not prefixed, so keep off a developer's db 0.
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"
RUN_DIR = BASE_DIR / "run" / "cluster-test"


def nginx_available() -> bool:
    return bool(shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The cluster, started once for the session and ended by PID at its end."""
    require("nginx", nginx_available(), "no nginx binary on PATH or in /usr/sbin")
    require(
        "Redis", port_open(REDIS_HOST, REDIS_PORT), f"nothing answers at {REDIS_HOST}:{REDIS_PORT}"
    )
    db = urlparse(DATABASE_URL)
    require(
        "PostgreSQL",
        port_open(db.hostname or "127.0.0.1", db.port or 5432),
        f"nothing answers at {db.hostname}:{db.port}",
    )
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    config = ClusterConfig(
        workers=WORKERS,
        port=NGINX_PORT,
        first_worker_port=FIRST_WORKER_PORT,
        database_url=DATABASE_URL,
        redis_url=REDIS_URL,
        run_dir=RUN_DIR,
        env={"CHATSITE_LAYER_PREFIX": f"chatsite-test-{uuid.uuid4().hex[:8]}"},
    )
    cluster = Cluster(config)
    cluster.check_services()
    cluster.drop_database()  # left over from an interrupted run
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop(timeout=5)
        ensure_redis()
        cluster.drop_database()


@pytest.fixture
def live_cluster(cluster: Cluster) -> Cluster:
    """The cluster with every worker up and nginx answering (an earlier test may kill one)."""
    dead = [index for index in range(1, WORKERS + 1) if index not in cluster.worker_pids]
    for index in dead:
        cluster.start_worker(index)  # waits for the new worker's /healthz
    if dead:
        cluster.wait_in_rotation()  # so that nginx spreads this test's sockets over all three
    # Not /healthz through nginx: a quiet worker with open sockets has answered it 503 (the bug
    # test_healthz_answers_200_on_an_idle_worker_with_open_sockets guards against), and that is
    # that test's failure to report, not every later test's.
    cluster.wait_healthy(f"{cluster.config.url}/accounts/login/")
    return cluster


@pytest.fixture
async def clients(live_cluster: Cluster) -> AsyncIterator[Callable[..., ChatClient]]:
    """A factory of signed-up clients with unique names; every one is closed at the end."""
    made: list[ChatClient] = []
    tag = uuid.uuid4().hex[:6]

    def make(name: str, *, reconnect: bool = True, tab_of: ChatClient | None = None) -> ChatClient:
        if tab_of is not None:
            client = tab_of.new_tab()
        else:
            client = ChatClient(live_cluster.config.url, f"{name}-{tag}", reconnect)
            client.signup()
        made.append(client)
        return client

    yield make
    await asyncio.gather(*(client.close() for client in made))


def ensure_redis() -> None:
    """Start the local Redis again if a test left it down (same flags as .ci/run)."""
    if port_open(REDIS_HOST, REDIS_PORT):
        return
    start_redis()


def start_redis() -> None:
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while not port_open(REDIS_HOST, REDIS_PORT):
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not come back within 10 s")
        time.sleep(0.1)


def healthz(url: str) -> tuple[int | None, str]:
    return http_get(f"{url}/healthz", timeout=5)


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    """A migrated database of the module's own on the cluster's PostgreSQL, dropped at its end."""
    db = urlparse(DATABASE_URL)
    require(
        "PostgreSQL",
        port_open(db.hostname or "127.0.0.1", db.port or 5432),
        f"nothing answers at {db.hostname}:{db.port}",
    )
    import psycopg

    server = DATABASE_URL.rsplit("/", 1)[0]
    name = f"chatsite_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate({"DATABASE_URL": f"{server}/{name}", "REDIS_URL": ""})
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def site_workers(env: dict[str, str], logs: Path, count: int = 2) -> Iterator[list[str]]:
    """`count` daphne workers of one site with this environment (logs kept in `logs`), reached
    directly, without nginx; yields their base URLs once each is healthy. Ended by PID."""
    with contextlib.ExitStack() as stack:
        urls = []
        for n in range(1, count + 1):
            port, _ = stack.enter_context(daphne(env, log=logs / f"worker{n}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_healthy(url)
        yield urls


def wait_healthy(url: str, seconds: float = 30) -> dict[str, str]:
    """Wait for 200 from the worker's /healthz; returns its answer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, body = get(f"{url}/healthz", timeout=5)
        except OSError as exc:  # refused, reset, timed out
            status, body = None, repr(exc).encode()
        if status == 200:
            return dict(json.loads(body))
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/healthz answers {status} after {seconds:g} s: {body!r}")
        time.sleep(0.2)
