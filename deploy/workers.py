"""Starting and ending daphne workers on this machine: the one launcher of the tests, the bench
and `make cluster` (deploy/cluster.py). Every process is ended by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "chatsite.asgi:application"
DAPHNE = str(Path(sys.executable).with_name("daphne"))


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def daphne_command(port: int, *options: str, host: str = "127.0.0.1") -> list[str]:
    """The contract's command line for one worker (`options` go after `-b HOST -p PORT`)."""
    return [DAPHNE, "-b", host, "-p", str(port), *options, APPLICATION]


def start(
    command: Sequence[str],
    env: Mapping[str, str],
    log: Path | None = None,
    *,
    own_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command` in the project with this environment over the current one; its output
    goes to the file `log` (appended), or nowhere. `own_session`: it outlives its starter's
    terminal (a Ctrl-C there does not reach it)."""
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(  # noqa: S603 - our own commands
            list(command),
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def wait_until_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """Wait until the process accepts connections on `port`; RuntimeError if it exits first or
    takes longer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker on port {port} exited with {proc.returncode}")
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not listen on {port} within {seconds}s")


def end(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 5) -> None:
    """End a process we started, by its PID: `sig`, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
