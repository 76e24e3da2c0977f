"""Logging filters of the site."""

from __future__ import annotations

import logging
import time


class OncePerMinute(logging.Filter):
    """Let one record of each message through per minute: a Redis outage costs every request a
    cache error, and one traceback a minute says as much as thousands."""

    def __init__(self, seconds: float = 60.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.seconds:
            return False
        self.last[key] = now
        return True
