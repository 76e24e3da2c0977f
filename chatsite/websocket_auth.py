"""The session and user of a WebSocket, resolved once at the handshake."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.http.cookie import parse_cookie


class SessionUserMiddleware:
    """Put `session` and `user` in the scope before the consumer starts.

    channels' AuthMiddlewareStack resolves the same lazily, but also wraps `send` to save a
    changed session after each frame the socket writes. A chat socket never changes its
    session, and that per-frame check cost a tenth of a worker's time when fanning out
    (docs/performance.md), so this middleware leaves `send` alone.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        scope = {**scope, "cookies": cookies, "session": session}
        scope["user"] = await get_user(scope)
        return await self.inner(scope, receive, send)
