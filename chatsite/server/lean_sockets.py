"""Less memory per open WebSocket under daphne: what it keeps of the handshake, let go.

Measured with `python -m bench.memtrace` (docs/performance.md), an open daphne socket keeps:

- the whole HTTP exchange it was upgraded from: Twisted's `HTTPChannel` stays registered as the
  TCP transport's producer, and with it the `WebRequest`, its header objects and buffers (the
  socket limits let go of it, registering the socket itself: chatsite/server/limits.py);
- the handshake once more in autobahn's protocol (the raw request, its headers parsed, the raw
  response) and in daphne's (the cleaned headers, which the scope shares);
- an `asyncio.Queue` whose put-waiters and join event daphne never uses (the queue is unbounded
  and nobody joins it): two deques and an event per socket.

`release_handshake` lets go of the second once the socket is open; `trim_queue` shares the
unused parts of the queue.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

# Shared by every trimmed queue: with no size limit nobody waits to put, and nobody joins.
_NO_PUTTERS: collections.deque[Any] = collections.deque(maxlen=0)
_NEVER_JOINED = asyncio.Event()


def release_handshake(socket: Any) -> None:
    """Let go of what an open daphne socket keeps of its handshake (the scope's headers too)."""
    socket.http_request_data = b""
    socket.http_response_data = ""
    socket.http_headers = {}
    request = getattr(socket, "request", None)
    if request is not None:
        request.headers = {}
    # In place: the scope the application got shares this list.
    headers = getattr(socket, "clean_headers", None)
    if isinstance(headers, list):
        headers.clear()


def trim_queue(receive: Any) -> None:
    """Share the parts of daphne's per-socket queue that it never uses (see the module)."""
    queue = getattr(receive, "__self__", None)
    if type(queue) is asyncio.Queue and queue.maxsize == 0:
        queue._putters = _NO_PUTTERS  # type: ignore[attr-defined]
        queue._finished = _NEVER_JOINED  # type: ignore[attr-defined]
