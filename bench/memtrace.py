"""Run daphne with tracemalloc on, to see where a socket's memory goes.

    BENCH_MEMTRACE_OUT=/tmp/m.json python -m bench.memtrace -b 127.0.0.1 -p 8011 \\
        chatsite.asgi:application

The first SIGUSR1 starts tracing (and writes `{"baseline": true}`): start-up and imports run at
full speed and are not counted. Every later SIGUSR1 writes what was allocated since then and is
still alive, grouped by the library of the innermost frame and by the innermost line of the
site's own code (rooms/, chatsite/, accounts/).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
OWN_CODE = tuple(str(ROOT / name) + os.sep for name in ("rooms", "chatsite", "accounts"))


# Containers and helpers whose allocations belong to whoever called them.
STDLIB_PLUMBING = {"asyncio", "collections", "weakref", "_weakrefset", "json", "threading"}


def library_of(filename: str) -> str:
    """`daphne`, `twisted`, `asyncio`…: the package (or stdlib module) a file belongs to."""
    if filename.startswith(OWN_CODE):
        return os.path.relpath(filename, ROOT)
    for marker in ("site-packages" + os.sep, f"python{sys.version_info[0]}.{sys.version_info[1]}/"):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            return rest.split(os.sep, 1)[0].removesuffix(".py")
    return filename


def short_path(filename: str) -> str:
    """A file as `daphne/server.py` or `rooms/consumers.py`."""
    if filename.startswith(str(ROOT) + os.sep) and ".venv" not in filename:
        return os.path.relpath(filename, ROOT)
    for marker in ("site-packages" + os.sep, f"python{sys.version_info[0]}.{sys.version_info[1]}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def growth(snapshot: tracemalloc.Snapshot) -> dict[str, Any]:
    """What is alive of what was allocated since tracing started."""
    by_library: Counter[str] = Counter()
    by_own_line: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    total = 0
    for stat in snapshot.statistics("traceback"):
        total += stat.size
        frames = list(stat.traceback)
        by_library[library_of(frames[-1].filename)] += stat.size
        # The innermost frame outside the standard library's containers: who asked for it.
        caller = next(
            (f for f in reversed(frames) if library_of(f.filename) not in STDLIB_PLUMBING),
            frames[-1],
        )
        by_line[f"{short_path(caller.filename)}:{caller.lineno}"] += stat.size
        own = [f for f in frames if f.filename.startswith(OWN_CODE)]
        if own:
            line = f"{os.path.relpath(own[-1].filename, ROOT)}:{own[-1].lineno}"
            by_own_line[line] += stat.size
    return {
        "total": total,
        "by_library": by_library.most_common(),
        "by_own_line": by_own_line.most_common(15),
        "by_line": by_line.most_common(30),
    }


def main() -> None:
    out = Path(os.environ["BENCH_MEMTRACE_OUT"])
    frames = int(os.environ.get("BENCH_MEMTRACE_FRAMES", "8"))

    def on_signal(signum: int, frame: Any) -> None:
        gc.collect()
        data: dict[str, Any] = {"baseline": True}
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            data = growth(snapshot)
        else:
            tracemalloc.start(frames)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        tmp.replace(out)

    signal.signal(signal.SIGUSR1, on_signal)
    sys.argv = ["daphne", *sys.argv[1:]]
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
