"""Django's SQLite backend, counted for /metrics by django-prometheus', one cursor class kept.

django-prometheus' backend (which this one is) makes a new cursor class for every cursor; here
the class is made once (chatsite/dbmetrics.py says why that matters).
"""

from __future__ import annotations

from typing import Any

from django_prometheus.db.backends.sqlite3 import base

from chatsite.dbmetrics import counted_cursor_class


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: str | None = None) -> Any:
        factory = counted_cursor_class(self.CURSOR_CLASS, self.alias, self.vendor)
        return self.connection.cursor(factory=factory)
