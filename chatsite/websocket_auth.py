"""The session and user of a WebSocket, resolved once at the handshake."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.contrib.sessions.backends import cached_db, db
from django.http.cookie import parse_cookie


class SessionUserMiddleware:
    """Put the signed-in `user` and the `session_key` in the scope before the consumer starts.

    channels' AuthMiddlewareStack resolves the user lazily, but also wraps `send` to save a
    changed session after each frame the socket writes. A chat socket never changes its
    session, and that per-frame check cost a tenth of a worker's time when fanning out
    (docs/performance.md), so this middleware leaves `send` alone. Nor does it keep the session
    or the cookies for the socket's lifetime (every idle socket would hold them): only the key,
    which is what signing out matches. It sits beneath URLRouter, next to the consumer
    (chatsite/asgi.py), and fills in the scope the router made for the route.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        store = import_module(settings.SESSION_ENGINE).SessionStore
        # `cached_db` reads through the cache; a socket reads the database it writes through
        # to instead. Django's cache handles are per async context, so every socket would open
        # a cache client (and, with Redis, a connection) of its own and keep it for its life.
        if issubclass(store, cached_db.SessionStore):
            store = db.SessionStore
        self.session_store = store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # No local names: this frame lives as long as the socket, and must not pin the user the
        # consumer may replace in its scope.
        return await self.inner(await self._signed_in(scope), receive, send)

    async def _signed_in(self, scope: dict[str, Any]) -> dict[str, Any]:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        # In place: URLRouter gave this route a scope of its own; a copy would be one more
        # dict per socket.
        scope["user"] = await get_user({"session": session})
        scope["session_key"] = session.session_key
        return scope
