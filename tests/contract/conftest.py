"""Two real daphne workers forming one site, and people who use it from both.

The site is what an operator runs (contract §2): one database (a fresh PostgreSQL database when
PostgreSQL answers, else a temporary SQLite file), one Redis with a key prefix of its own, any
number of workers. Every person signs up over HTTP and opens tabs on the worker a test names, so
each cross-user expectation crosses workers. Workers start once per module and are ended by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from deploy.workers import daphne_command, end, free_port, start, wait_until_listening
from tests.conftest import TEST_REDIS_URL, port_open, require_redis
from tests.servers import create_superuser, get, migrate
from tests.streamclient import StreamTab
from tests.wsclient import Account, Socket

POSTGRES_URL = os.environ.get("CONTRACT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
STAFF = "contract-staff"
STAFF_PASSWORD = "staff-horse-battery-staple"


# --- the database and Redis, once per session ---------------------------------------------------


@dataclass(frozen=True)
class Backing:
    """What every worker of every site in this session shares: the database and Redis."""

    database_url: str
    redis_url: str
    logs: Path


def _redis_available() -> None:
    require_redis()


@contextlib.contextmanager
def _fresh_database(tmp: Path) -> Iterator[str]:
    """A PostgreSQL database made for this run and dropped after it, or a SQLite file."""
    pg = urlparse(POSTGRES_URL)
    if not port_open(pg.hostname or "127.0.0.1", pg.port or 5432):
        yield f"sqlite:///{tmp}/contract.db"
        return
    import psycopg

    name = f"chatsite_contract_{uuid.uuid4().hex[:8]}"
    admin = f"{POSTGRES_URL}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backing]:
    """Redis (skipped without it, a failure under CI=true) and a migrated database with a
    staff user."""
    _redis_available()
    tmp = tmp_path_factory.mktemp("contract")
    with _fresh_database(tmp) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": ""}
        migrate(env)
        create_superuser(env, STAFF, STAFF_PASSWORD)
        yield Backing(database_url, TEST_REDIS_URL, tmp)


# --- a site: two workers ----------------------------------------------------------------------


@dataclass
class Person:
    """Someone signed up on the site; `tab(n)` opens a browser tab on worker n (1 or 2)."""

    site: Site
    account: Account

    @property
    def name(self) -> str:
        return self.account.username

    async def tab(self, worker: int) -> Socket:
        """A tab on worker n: a WebSocket, or on a stream site an HTTP stream whose POSTs go
        through the other worker."""
        sock: Socket
        if self.site.transport == "stream":
            sock = await StreamTab.connect(
                self.account, self.site.urls[worker - 1], post_base=self.site.urls[2 - worker]
            )
            await sock.wait_for_hello()
        else:
            sock = await self.account.open_socket(self.site.urls[worker - 1])
        self.site.sockets.append(sock)
        return sock

    async def create_room(self, slug: str, *, private: bool = False, topic: str = "") -> str:
        await asyncio.to_thread(
            self.account.create_room, f"Room {slug}", slug, topic=topic, private=private
        )
        return slug


@dataclass
class Site:
    """Two workers of one site: one database, one Redis, one key prefix."""

    urls: list[str]
    prefix: str
    backing: Backing
    transport: str = "socket"  # or "stream": the HTTP fallback (contract §5)
    sockets: list[Socket] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def unique(self, label: str) -> str:
        """A name no other test of the session uses (usernames, room slugs)."""
        return f"{label}-{self.prefix[-6:]}{next(self._names)}"

    async def people(self, *labels: str) -> list[Person]:
        """Sign up one person per label, over HTTP, alternating workers (in parallel)."""

        def sign_up(n: int, label: str) -> Account:
            return Account.sign_up(self.urls[n % 2], self.unique(label))

        def all_of_them() -> list[Account]:
            with ThreadPoolExecutor(max_workers=4) as pool:
                return list(pool.map(sign_up, range(len(labels)), labels))

        accounts = await asyncio.to_thread(all_of_them)
        self.accounts += accounts
        return [Person(self, account) for account in accounts]

    async def sign_in(self, username: str, password: str, worker: int = 1) -> Person:
        account = await asyncio.to_thread(
            Account.sign_in, self.urls[worker - 1], username, password
        )
        self.accounts.append(account)
        return Person(self, account)

    async def close_sockets(self) -> None:
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(), 5)


@contextlib.contextmanager
def running_site(backing: Backing, **env: str) -> Iterator[Site]:
    """Start two workers with `env` on top of the shared backing; end them by PID."""
    prefix = f"contract-{uuid.uuid4().hex[:8]}"
    worker_env = {
        "CHATSITE_DEV": "1",
        "DATABASE_URL": backing.database_url,
        "REDIS_URL": backing.redis_url,
        "CHATSITE_LAYER_PREFIX": prefix,
        # Attachments: one folder for both workers, as a shared file system would be.
        "CHATSITE_MEDIA_ROOT": str(backing.logs / f"{prefix}-media"),
        **env,
    }
    ports: list[int] = []
    while len(ports) < 2:
        port = free_port()
        if port not in ports:
            ports.append(port)
    procs: list[subprocess.Popen[bytes]] = []
    site: Site | None = None
    try:
        for n, port in enumerate(ports, 1):
            log = backing.logs / f"{prefix}-worker{n}.log"
            procs.append(start(daphne_command(port), worker_env, log))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for port, proc, url in zip(ports, procs, urls, strict=True):
            wait_until_listening(port, proc)
            status, body = get(f"{url}/healthz")
            assert status == 200, f"worker {url} is not healthy: {body[:300]!r}"
        site = Site(urls, prefix, backing)
        yield site
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            end(proc)
        _forget_redis_keys(backing.redis_url, prefix, site)


def _forget_redis_keys(redis_url: str, prefix: str, site: Site | None) -> None:
    """Remove what the site left in Redis: its prefixed keys and its sessions' cache entries."""
    import redis

    with contextlib.suppress(Exception), redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(f"{prefix}*"))
        if site is not None:
            keys += [
                f"chatsite:1:django.contrib.sessions.cached_db{a.session_id}"
                for a in site.accounts
                if a.session_id
            ]
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def site(backing: Backing) -> Iterator[Site]:
    """Two workers with the contract's default limits, for the whole module."""
    with running_site(backing) as running:
        yield running


@pytest.fixture(autouse=True)
async def _close_tabs(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every tab a test opened is closed at its end (so its people go offline)."""
    yield
    if "site" in request.fixturenames:
        await request.getfixturevalue("site").close_sockets()
