"""Real daphne workers for tests that need a server process (ended by PID, always)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAPHNE = str(Path(sys.executable).with_name("daphne"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"daphne did not listen on {port} within {seconds}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 5) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def daphne(
    env: dict[str, str], port: int | None = None, log: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Run `daphne chatsite.asgi:application` on 127.0.0.1 with this environment (its log
    in the file `log`, if given)."""
    port = port or free_port()
    full_env = {**os.environ, "CHATSITE_DEV": "1", **env}
    # A file, not a pipe: nobody reads the worker's log while it runs, and a full pipe would
    # block it.
    with log.open("w+b") if log is not None else tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            try:
                wait_until_listening(port, proc)
            except RuntimeError as exc:
                out.seek(0)
                tail = out.read()[-4000:].decode(errors="replace")
                raise RuntimeError(f"{exc}\n{tail}") from None
            yield port, proc
        finally:
            stop(proc)


@dataclass
class Worker:
    """One running daphne worker: its address, its process and its log."""

    port: int
    pid: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.pid).memory_info().rss)


@contextlib.contextmanager
def sqlite_worker(**env: str) -> Iterator[Worker]:
    """One daphne worker on a new SQLite database (the in-process layer unless `env` names a
    REDIS_URL), migrated, with its log kept beside the database; ended by PID."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp) / 'site.db'}", "REDIS_URL": "", **env}
        migrate(env)
        log = Path(tmp) / "worker.log"
        with daphne(env, log=log) as (port, proc):
            yield Worker(port, proc.pid, log)


@contextlib.contextmanager
def fresh_worker(**env: str) -> Iterator[int]:
    """One daphne worker on a new SQLite database with the in-process layer; yields its port."""
    with sqlite_worker(**env) as worker:
        yield worker.port


def create_superuser(env: dict[str, str], username: str, password: str) -> None:
    """A staff user with every right, made as an operator would (`createsuperuser`)."""
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username]
        + ["--email", f"{username}@example.com"],
        cwd=ROOT,
        env={**os.environ, "CHATSITE_DEV": "1", **env, "DJANGO_SUPERUSER_PASSWORD": password},
        check=True,
        capture_output=True,
    )


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, "CHATSITE_DEV": "1", **env},
        check=True,
    )


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
