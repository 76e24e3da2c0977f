"""Redis servers, replicas and sentinels of a test's own (the shared Redis is never touched).

Each runs on a free loopback port from a configuration file in its own folder under the test's
temporary directory, without persistence, and is ended by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import redis

from tests.conftest import require
from tests.servers import free_port

T = TypeVar("T")
START_SECONDS = 10.0


def require_binary(name: str) -> str:
    """The path of a Redis binary; skipped (a failure under CI=true) when it is missing."""
    path = shutil.which(name)
    require(name, path is not None, "not on PATH")
    assert path is not None
    return path


def wait_for(probe: Callable[[], T | None], seconds: float, what: str) -> T:
    """Call `probe` until it returns something else than None (errors count as None)."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            value = probe()
            if value is not None:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds:g} s")
        time.sleep(0.05)


class _Process:
    """A server process started from a configuration file, ended by its PID."""

    binary = "redis-server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def config(self) -> list[str]:
        return [
            f"port {self.port}",
            "bind 127.0.0.1",
            f'dir "{self.workdir}"',
            f'logfile "{self.workdir / "server.log"}"',
        ]

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> None:
        conf = self.workdir / "server.conf"
        conf.write_text("\n".join(self.config()) + "\n")
        self.proc = subprocess.Popen(
            [require_binary(self.binary), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = self.workdir / "server.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.binary} exited with {self.proc.returncode}\n{tail}")
            with self.client() as client:
                return True if client.ping() else None

        wait_for(answers, START_SECONDS, f"{self.binary} on port {self.port} did not answer")

    def kill(self) -> None:
        """`kill -9`: no shutdown, no goodbye to replicas or sentinels."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.paused = False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class PrivateRedis(_Process):
    """A redis-server of the test's own; with `replica_of`, a replica of that one."""

    def __init__(self, workdir: Path, replica_of: PrivateRedis | None = None) -> None:
        super().__init__(workdir)
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def config(self) -> list[str]:
        lines = [*super().config(), 'save ""', "appendonly no"]
        if self.replica_of is not None:
            lines.append(f"replicaof 127.0.0.1 {self.replica_of.port}")
        return lines


class PrivateSentinel(_Process):
    """A redis-sentinel of the test's own, watching one master under `name`: it takes the
    master for down after a second and promotes a replica (a quorum of one)."""

    binary = "redis-sentinel"

    def __init__(self, workdir: Path, name: str, master: PrivateRedis) -> None:
        super().__init__(workdir)
        self.name = name
        self.master = master

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> list[str]:
        return [
            *super().config(),
            "sentinel resolve-hostnames no",
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 1",
            f"sentinel down-after-milliseconds {self.name} 1000",
            f"sentinel failover-timeout {self.name} 5000",
        ]

    def master_port(self) -> int | None:
        """The port of the master this sentinel names now."""
        with self.client() as client:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(address[1]) if address else None

    def replicas_in_sync(self) -> list[int]:
        """Ports of the replicas this sentinel knows, up and linked to their master."""
        with self.client() as client:
            replicas = client.sentinel_slaves(self.name)
        return [
            int(r["port"])
            for r in replicas
            if not r["is_sdown"] and r.get("master-link-status") == "ok"
        ]


@contextlib.contextmanager
def running(*servers: _Process) -> Iterator[None]:
    """Start the servers in order; stop every one started, whatever happens."""
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in reversed(servers):
            server.stop()


@contextlib.contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """One redis-server of the test's own."""
    server = PrivateRedis(tmp_path / "redis")
    with running(server):
        yield server
