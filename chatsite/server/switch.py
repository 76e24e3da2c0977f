"""Whether the fast paths are on in this process, and what happens when one fails at run time."""

from __future__ import annotations

import logging

logger = logging.getLogger("chatsite.server")

_on = {"tuned": False}
_causes: set[str] = set()


def tuned() -> bool:
    """Whether the fast paths are on in this process."""
    return _on["tuned"]


def turn_on() -> None:
    _on["tuned"] = True


def fell_back(cause: str) -> None:
    """A fast path failed and its plain twin took over: say so once per cause."""
    if cause not in _causes:
        _causes.add(cause)
        logger.warning("server tuning: %s; falling back to plain ASGI for it", cause, exc_info=True)
