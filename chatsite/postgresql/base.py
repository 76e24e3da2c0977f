"""Django's PostgreSQL backend, with the connection health check skipped while a connection is busy.

`CONN_HEALTH_CHECKS` checks a persistent connection (`SELECT 1`) at the start of every request,
so that a server restart does not cost the first request afterwards. A WebSocket worker runs each
frame's queries as a request of its own (channels' `database_sync_to_async`), and there the check
was a round trip more per stored message and a third of the database thread's time when a crowd
of sockets connects (docs/performance.md). Here a connection that opened a cursor less than
`BUSY_SECONDS` ago counts as checked. One that broke since (the server restarted under traffic)
fails its next query, which Django notices (`errors_occurred`) and replaces the connection
before the request after it, as it does without health checks; an idle connection is checked as
before.

Statements are counted for /metrics as by django-prometheus' backend, which this one is, with its
connection counters; the cursor class that counts them is made once, not for every connection
(chatsite/dbmetrics.py).
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.db.backends.postgresql import base as django_base
from django_prometheus.db.backends.postgresql import base

from chatsite.dbmetrics import counted_cursor_class

BUSY_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _last_cursor_at = -math.inf

    def get_connection_params(self) -> dict[str, Any]:
        # Django's parameters, with our counted cursor class where django-prometheus' version
        # would put a new one of its own.
        params: dict[str, Any] = django_base.DatabaseWrapper.get_connection_params(self)
        params["cursor_factory"] = counted_cursor_class(
            params["cursor_factory"], self.alias, self.vendor
        )
        return params

    def close_if_health_check_failed(self) -> None:
        now = time.monotonic()
        if self.connection is not None and now - self._last_cursor_at < BUSY_SECONDS:
            self.health_check_done = True
        self._last_cursor_at = now
        super().close_if_health_check_failed()
