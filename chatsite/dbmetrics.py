"""The cursor class of the database backends (chatsite/sqlite3, chatsite/postgresql), counted.

django-prometheus' backends count connections (`django_db_new_connections_total`, its errors) in
`get_new_connection`, which ours inherit, and statements in a cursor class of their own that the
message path felt: the SQLite backend makes that class anew for every cursor (four per stored
message), and every statement looks its figures up by label twice. Both count towards the
garbage collector's next run, some sixteen objects a cursor (a class is cyclic garbage) and two a
statement, so its young generations ran about 2.5 times as often in the one-worker bench. Each
of those promotes what the worker has in flight, and the promoted objects brought on a full
collection every 7-17 s under load: 80-115 ms with a thousand sockets' objects, every socket
stalled meanwhile (p99 60-116 ms instead of 7-9 ms). Without them, none after the sockets
joined, or one at the highest loads.

Here each (cursor class, alias) gets one class, made once and kept, with its figures looked up
once too: a statement costs two increments and an observation and leaves nothing for the
collector. The figures, their names and labels are django-prometheus'.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from django_prometheus.db import (
    errors_total,
    execute_many_total,
    execute_total,
    query_duration_seconds,
)


@functools.cache
def counted_cursor_class(cursor_class: type, alias: str, vendor: str) -> type:
    """`cursor_class`, counting its statements into django-prometheus' `django_db_*` figures."""
    executed = execute_total.labels(alias, vendor)
    executed_many = execute_many_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)
    clock = time.perf_counter

    def failed(exc: BaseException) -> None:
        errors_total.labels(alias, vendor, type(exc).__name__).inc()

    class CountedCursor(cursor_class):  # type: ignore[valid-type, misc]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            executed.inc()
            start = clock()
            try:
                return super().execute(*args, **kwargs)
            except BaseException as exc:
                failed(exc)
                raise
            finally:
                duration.observe(clock() - start)

        def executemany(self, query: Any, param_list: Any, *args: Any, **kwargs: Any) -> Any:
            # As django-prometheus counts it: each set of parameters is a statement executed.
            executed.inc(len(param_list))
            executed_many.inc(len(param_list))
            start = clock()
            try:
                return super().executemany(query, param_list, *args, **kwargs)
            except BaseException as exc:
                failed(exc)
                raise
            finally:
                duration.observe(clock() - start)

    CountedCursor.__name__ = CountedCursor.__qualname__ = f"Counted{cursor_class.__name__}"
    return CountedCursor
