"""What the site adds to daphne, behind one fence; `install()` is called once, by chatsite/asgi.py.

Two kinds of additions (docs/performance.md and docs/security.md say what each buys):

- **Limits** (`limits.py`), always on under daphne: what one WebSocket may cost its worker. They
  use public hooks only (autobahn's frame callbacks, Twisted's producer interface).
- **Fast paths**, on only when the installed daphne, Twisted, autobahn and txaio are the tested
  versions (`TESTED`, pinned in requirements.txt) and CHATSITE_SERVER_TUNING is not off; they
  read or rebind those libraries' internals: `batched_writes.py` (a turn's writes sent at its
  end), `prepared_frames.py` (a broadcast framed once, written straight to each socket),
  `lean_sockets.py` (what daphne keeps of a handshake, let go), `crowds.py` (a crowd of
  handshakes admitted in turn, autobahn's per-connection debug text made lazy) and
  `streams.py`'s `TunedStream` (a broadcast's event written straight to each HTTP stream).
  Otherwise the site runs on plain ASGI, and one WARNING at start says why. A fast path that
  fails at run time falls back to the plain path for that write and says so once per cause
  (`switch.py`).

`sockets.py` hands each WebSocket the `ServerSocket` that rooms/ talks to (rooms/sockets.py),
`streams.py` each HTTP stream its `ServerStream`, with the stream's output limit.
"""

from __future__ import annotations

import logging
from importlib import metadata

from django.conf import settings

from . import switch
from .switch import tuned

__all__ = ["TESTED", "install", "tuned", "untested_versions"]

logger = logging.getLogger(__name__)

# The versions the fast paths were written and measured against (requirements.txt pins them).
TESTED = {"daphne": "4.2.3", "twisted": "26.10.0", "autobahn": "26.11.1", "txaio": "26.6.1"}

_installed = {"done": False}


def untested_versions() -> list[str]:
    """The installed versions that differ from TESTED, as 'name installed (tested: version)'."""
    found = []
    for name, tested in TESTED.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != tested:
            found.append(f"{name} {installed} (tested: {tested})")
    return found


def install() -> None:
    """Install the limits, and the fast paths if allowed (idempotent)."""
    if _installed["done"]:
        return
    _installed["done"] = True
    from . import crowds, limits

    limits.install()
    crowds.raise_open_files_limit()
    if not settings.SERVER_TUNING:
        logger.info("server tuning off (CHATSITE_SERVER_TUNING); plain ASGI")
        return
    untested = untested_versions()
    if untested:
        logger.warning(
            "server tuning off: untested versions %s; the site runs on plain ASGI, its limits "
            "stay on",
            ", ".join(untested),
        )
        return
    from . import batched_writes

    batched_writes.install()
    crowds.install()
    switch.turn_on()
    logger.info("server tuning on: %s", ", ".join(f"{k} {v}" for k, v in TESTED.items()))
