"""The PostgreSQL backend (chatsite/postgresql/base.py): checked when idle, trusted when busy.

Each test is one "request" after another, as channels runs a socket's frames: Django's
`close_old_connections()`, then a query.
"""

from __future__ import annotations

import math

import psycopg
import pytest
from django.db import close_old_connections, connection, connections

from chatsite.postgresql.base import BUSY_SECONDS, DatabaseWrapper

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="runs with DATABASE_URL=postgres://…"
    ),
]


def one_request() -> int:
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    """End a server process from another connection, as a server restart would."""
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_the_site_uses_this_backend() -> None:
    assert isinstance(connections["default"], DatabaseWrapper)


def test_a_connection_that_died_while_idle_is_replaced_before_the_next_request() -> None:
    pid = one_request()
    terminate(pid)
    connection._last_cursor_at = -math.inf  # idle for long

    assert one_request() != pid  # no error: the check found it dead and reconnected


def test_a_busy_connection_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    one_request()
    checks = []
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or True)

    for _ in range(5):
        one_request()
    assert checks == []

    connection._last_cursor_at -= BUSY_SECONDS
    one_request()
    assert checks == [1]


def test_a_busy_connection_that_died_fails_once_then_is_replaced() -> None:
    pid = one_request()
    terminate(pid)

    with pytest.raises(Exception, match="terminat|closed|connection"):
        one_request()
    assert one_request() != pid
