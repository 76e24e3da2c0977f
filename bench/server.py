"""Daphne workers for a benchmark: a fresh database, a fresh layer prefix, ended by PID.

    with Deployment(workers=2, database="postgres", redis_url=REDIS) as site:
        site.ws_urls          # ["ws://127.0.0.1:PORT/ws/chat/", …]
        site.worker_pids      # for psutil

Everything it makes (temporary folder, PostgreSQL database, Redis keys under its prefix, worker
processes) it removes again in `stop()`, which `__exit__` calls even after an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from deploy.workers import daphne_command, end, free_port, port_open, start

from .site import Browser

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Load runs offer far more than the contract's 5 messages/s per user.
RATE_ENV = {
    "CHATSITE_RATE_PER_SECOND": "1000000",
    "CHATSITE_RATE_BURST": "1000000",
    # The `many` scenario's owner makes a room per hundred sockets.
    "CHATSITE_ROOMS_PER_HOUR": "1000000",
}


class DeploymentError(RuntimeError):
    """A worker did not start, or the database could not be made."""


def end_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """End one process we started, by its PID: `sig`, then SIGKILL after `timeout` s."""
    end(proc, sig, grace=timeout)


@dataclass
class Deployment:
    """`workers` daphne processes sharing one fresh database (and Redis, when given)."""

    workers: int = 1
    database: str = "sqlite"  # or "postgres"
    redis_url: str | None = None
    layer: str = "pubsub"  # CHATSITE_CHANNEL_LAYER, when redis_url is set
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run worker 0 under pyinstrument and write its session here.
    profile_to: Path | None = None
    # Or run worker 0 with this command instead of daphne (daphne's arguments follow it).
    launcher: list[str] | None = None
    # "daphne", or "uvicorn" (if installed) to compare ASGI servers.
    server: str = "daphne"
    # More daphne options, after `-b HOST -p PORT` (e.g. a shorter --websocket_connect_timeout).
    daphne_args: tuple[str, ...] = ()
    name: str = "bench"

    ports: list[int] = field(default_factory=list, init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    prefix: str = field(default="", init=False)
    database_url: str = field(default="", init=False)
    tmp: Path | None = field(default=None, init=False)
    _pg_name: str | None = field(default=None, init=False)
    _sessions: list[str] = field(default_factory=list, init=False)

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"bench-{self.name}-{tag}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"chatsite-{self.name}-"))
        self._create_database(tag)
        self._manage("migrate", "--noinput")
        for index in range(self.workers):
            self._start_worker(index)
        deadline = time.monotonic() + START_TIMEOUT
        for index, port in enumerate(self.ports):
            while not port_open(port):
                proc = self.procs[index]
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DeploymentError(f"worker {index} did not start:\n{self.log_tail(index)}")
                time.sleep(0.1)
        for url in self.http_urls:
            if not Browser(url).healthy():
                raise DeploymentError(f"{url}/healthz is not ok:\n{self.log_tail(0)}")

    def stop(self) -> None:
        """End every worker by PID, then drop what the deployment made."""
        self.stop_workers()
        self._drop_database()
        if self.redis_url:
            _clean_redis(self.redis_url, self.prefix, self._sessions)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def stop_workers(self) -> None:
        """End every worker by PID (again: a no-op)."""
        for index, proc in enumerate(self.procs):
            if index == 0 and self.profile_to is not None:
                # SIGINT lets pyinstrument write its session, which takes a while.
                end_process(proc, signal.SIGINT, timeout=120)
            else:
                end_process(proc)

    # --- what the load generator needs --------------------------------------------------------

    @property
    def http_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws/chat/" for port in self.ports]

    @property
    def worker_pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    @property
    def proxy_pids(self) -> list[int]:
        return []

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "CHATSITE_DEV": "1",
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DATABASE_URL": self.database_url,
            "DJANGO_LOG_LEVEL": "WARNING",
            **RATE_ENV,
            **self.extra_env,
        }
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
            env["CHATSITE_CHANNEL_LAYER"] = self.layer
            env["CHATSITE_LAYER_PREFIX"] = self.prefix
        return env

    def track_sessions(self, keys: list[str]) -> None:
        """Sessions made over HTTP: their cache entries go with the deployment."""
        self._sessions.extend(keys)

    def seed_users(
        self,
        prefix: str,
        count: int,
        rooms: list[str] | None = None,
        layout: list[dict[str, Any]] | None = None,
    ) -> list[list[str]]:
        """Create users and sessions in the database (and the rooms of `layout`, bench.seed);
        returns [[username, session_key], …]."""
        users = _seed(self.env(), prefix, count, rooms, layout)
        self._sessions.extend(key for _, key in users)
        return users

    def log_tail(self, index: int, lines: int = 30) -> str:
        if self.tmp is None:
            return ""
        path = self.tmp / f"worker-{index}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- internals ----------------------------------------------------------------------------

    def _start_worker(self, index: int) -> None:
        assert self.tmp is not None
        port = free_port()
        command = daphne_command(port, *self.daphne_args)
        if self.server == "uvicorn":
            # For comparison only (docs/performance.md): uvicorn is not a dependency.
            command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
            command += ["--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log"]
            command += ["chatsite.asgi:application"]
        elif index == 0 and self.launcher is not None:
            command = [*self.launcher, *command[1:]]
        elif index == 0 and self.profile_to is not None:
            command = [
                str(VENV_BIN / "pyinstrument"),
                "-r",
                "pyisession",
                "-o",
                str(self.profile_to),
                str(VENV_BIN / "daphne"),
                *command[1:],
            ]
        proc = start(command, self.env(), self.tmp / f"worker-{index}.log")
        self.ports.append(port)
        self.procs.append(proc)

    def _manage(self, *args: str) -> str:
        return self._run([sys.executable, "manage.py", *args])

    def _run(self, command: list[str]) -> str:
        result = subprocess.run(
            command, cwd=ROOT, env=self.env(), capture_output=True, timeout=300, check=False
        )
        if result.returncode != 0:
            raise DeploymentError(f"{command[2:]} failed:\n{result.stderr.decode()[-3000:]}")
        return result.stdout.decode()

    def _create_database(self, tag: str) -> None:
        assert self.tmp is not None
        if self.database == "sqlite":
            self.database_url = f"sqlite:///{self.tmp / 'db.sqlite3'}"
            return
        if self.database != "postgres":
            raise DeploymentError(f"unknown database {self.database!r}")
        import psycopg

        name = f"bench_{self.name}_{tag}".replace("-", "_")
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._pg_name = name
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        self.database_url = f"{base}/{name}"

    def _drop_database(self) -> None:
        if self._pg_name is None:
            return
        import psycopg

        with (
            contextlib.suppress(Exception),
            psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')
        self._pg_name = None


def _seed(
    env: dict[str, str],
    prefix: str,
    count: int,
    rooms: list[str] | None,
    layout: list[dict[str, Any]] | None = None,
) -> list[list[str]]:
    """Run `python -m bench.seed` with a deployment's environment."""
    command = [sys.executable, "-m", "bench.seed", "--prefix", prefix, "--count", str(count)]
    command += ["--rooms", ",".join(rooms or [])]
    if layout:
        command += ["--layout", "-"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        input=orjson.dumps({"rooms": layout}) if layout else None,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise DeploymentError(f"bench.seed failed:\n{result.stderr.decode()[-3000:]}")
    return list(orjson.loads(result.stdout)["users"])


def _clean_redis(url: str, prefix: str, sessions: list[str]) -> None:
    """Delete our keys: those under the deployment's prefix and our sessions' cache entries."""
    if not url or not prefix:
        return
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        # The session cache (cached_db) keeps its own key prefix, "chatsite"; delete exactly ours.
        keys += [f"chatsite:1:django.contrib.sessions.cached_db{key}" for key in sessions]
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


def nginx_available() -> bool:
    """Whether `deploy.cluster` (nginx in front of daphne workers) can be used here."""
    if not (ROOT / "deploy" / "nginx.conf").exists():
        return False
    if shutil.which("nginx") is None and shutil.which("nginx", path="/usr/sbin") is None:
        return False
    try:
        from deploy import cluster
    except Exception:
        return False
    return hasattr(cluster, "Cluster") and hasattr(cluster, "ClusterConfig")


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        first = free_port()
        if all(not port_open(first + i) for i in range(count)) and first + count < 65535:
            try:
                socks = []
                for i in range(count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(sock)
                    sock.bind(("127.0.0.1", first + i))
            except OSError:
                continue
            finally:
                for sock in socks:
                    sock.close()
            return first
    raise DeploymentError("no run of free ports")


@dataclass
class NginxDeployment:
    """`workers` daphne workers behind nginx, started by deploy/cluster.py (production settings).

    The load generator sees one address, nginx's; psutil watches the workers and nginx.
    """

    workers: int = 2
    redis_url: str = DEFAULT_REDIS_URL
    layer: str = "pubsub"
    extra_env: dict[str, str] = field(default_factory=dict)
    name: str = "bench"

    prefix: str = field(default="", init=False)
    tmp: Path | None = field(default=None, init=False)
    cluster: object | None = field(default=None, init=False)
    _sessions: list[str] = field(default_factory=list, init=False)

    def __enter__(self) -> NginxDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from deploy.cluster import Cluster, ClusterConfig

        tag = uuid.uuid4().hex[:10]
        self.prefix = f"bench-{self.name}-{tag}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"chatsite-{self.name}-"))
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        config = ClusterConfig(
            workers=self.workers,
            port=free_port(),
            first_worker_port=free_port_run(self.workers),
            database_url=f"{base}/bench_{self.name}_{tag}".replace("-", "_"),
            redis_url=self.redis_url,
            run_dir=self.tmp / "cluster",
            env={
                "CHATSITE_LAYER_PREFIX": self.prefix,
                "CHATSITE_CHANNEL_LAYER": self.layer,
                "DJANGO_LOG_LEVEL": "WARNING",
                **RATE_ENV,
                **self.extra_env,
            },
        )
        self.cluster = cluster = Cluster(config)
        cluster.start()

    def stop(self) -> None:
        """End the workers and nginx by PID (deploy/cluster.py), drop the database and keys."""
        cluster = self.cluster
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.stop()  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                cluster.drop_database()  # type: ignore[attr-defined]
            self.cluster = None
        _clean_redis(self.redis_url, self.prefix, self._sessions)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    @property
    def _config(self) -> object:
        assert self.cluster is not None
        return self.cluster.config  # type: ignore[attr-defined]

    @property
    def http_urls(self) -> list[str]:
        return [self._config.url]  # type: ignore[attr-defined]

    @property
    def ws_urls(self) -> list[str]:
        return [self._config.url.replace("http://", "ws://") + "/ws/chat/"]  # type: ignore[attr-defined]

    @property
    def worker_pids(self) -> list[int]:
        return list(self.cluster.worker_pids.values())  # type: ignore[union-attr]

    @property
    def proxy_pids(self) -> list[int]:
        """nginx's master and worker processes."""
        import psutil

        master = self.cluster.nginx_pid  # type: ignore[union-attr]
        if master is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [master, *(c.pid for c in psutil.Process(master).children())]
        return [master]

    def env(self) -> dict[str, str]:
        return self.cluster.worker_env()  # type: ignore[union-attr]

    def track_sessions(self, keys: list[str]) -> None:
        """Sessions made over HTTP: their cache entries go with the deployment."""
        self._sessions.extend(keys)

    def seed_users(
        self,
        prefix: str,
        count: int,
        rooms: list[str] | None = None,
        layout: list[dict[str, Any]] | None = None,
    ) -> list[list[str]]:
        users = _seed(self.env(), prefix, count, rooms, layout)
        self._sessions.extend(key for _, key in users)
        return users

    def stop_workers(self) -> None:
        """End the workers and nginx now (the database and keys go with `stop`)."""
        if self.cluster is not None:
            self.cluster.stop()  # type: ignore[attr-defined]

    def log_tail(self, index: int, lines: int = 30) -> str:
        if self.cluster is None:
            return ""
        path = self.cluster.log_dir / f"worker-{index + 1}.log"  # type: ignore[attr-defined]
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
