"""The database backends' statement counting (chatsite/dbmetrics.py), on SQLite or PostgreSQL.

django-prometheus' figures under their names and labels, from a cursor class made once: a class
per cursor was garbage for the collector and brought on full collections that stalled a worker.
"""

from __future__ import annotations

import gc

import pytest
from django.db import DatabaseError, connection, transaction
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)


def figure(name: str, **labels: str) -> float:
    labels = {"alias": "default", "vendor": connection.vendor, **labels}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_statements_their_time_and_errors_are_counted() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # connected (and set up) before counting
        executed = figure("django_db_execute_total")
        timed = figure("django_db_query_duration_seconds_count")
        for _ in range(3):
            cursor.execute("SELECT 1")
    assert figure("django_db_execute_total") == executed + 3
    assert figure("django_db_query_duration_seconds_count") == timed + 3

    errors = sum(
        figure("django_db_errors_total", type=kind)
        for kind in ("OperationalError", "UndefinedTable")
    )
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    after = sum(
        figure("django_db_errors_total", type=kind)
        for kind in ("OperationalError", "UndefinedTable")
    )
    assert after == errors + 1


def test_cursors_share_one_class_and_leave_no_garbage() -> None:
    with connection.cursor() as cursor:
        kind = type(cursor.cursor)
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(200):
            with connection.cursor() as cursor:
                assert type(cursor.cursor) is kind
                cursor.execute("SELECT 1")
        # A class per cursor left some ten objects each for the collector; now a few in all.
        assert gc.get_count()[0] - before < 100
    finally:
        gc.enable()
