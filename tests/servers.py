"""Real daphne workers for tests that need a server process (ended by PID, always)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# The one launcher of daphne workers: deploy/workers.py (these names are the tests' too).
from deploy.workers import ROOT, daphne_command, end, free_port, start, wait_until_listening

__all__ = ["ROOT", "free_port", "wait_until_listening"]


@contextlib.contextmanager
def daphne(
    env: dict[str, str],
    port: int | None = None,
    log: Path | None = None,
    options: Sequence[str] = (),
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Run `daphne [options] chatsite.asgi:application` on 127.0.0.1 with this environment
    (its log in the file `log`, if given)."""
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = log or Path(tmp) / "worker.log"
        proc = start(daphne_command(port, *options), {"CHATSITE_DEV": "1", **env}, out)
        try:
            try:
                wait_until_listening(port, proc)
            except RuntimeError as exc:
                tail = out.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{exc}\n{tail}") from None
            yield port, proc
        finally:
            end(proc)


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
def sqlite_worker(options: Sequence[str] = (), **env: str) -> Iterator[Worker]:
    """One daphne worker on a new SQLite database (the in-process layer unless `env` names a
    REDIS_URL), migrated, with its log kept beside the database; ended by PID. `options` go to
    daphne (`--proxy-headers`, as behind nginx)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp) / 'site.db'}", "REDIS_URL": "", **env}
        migrate(env)
        log = Path(tmp) / "worker.log"
        with daphne(env, log=log, options=options) as (port, proc):
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
