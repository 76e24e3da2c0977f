"""What storing one message costs: time and statements per `services.post_message`.

    python -m bench.post_costs                                   # SQLite, in a temporary file
    python -m bench.post_costs --database postgres://postgres@127.0.0.1:5432/postgres

Posts as a socket does (outside a transaction: on PostgreSQL the one-statement path) into a room
of ten members, in a fresh database made and dropped by the run, with the broadcast left out (it
is handed to the hub, not waited for; bench/run.py measures delivery). Run it on two commits to
see what a change to the write path costs: docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

POSTS = 3_000


def _setup(database_url: str) -> str:
    """Point Django at a fresh database; returns its URL."""
    if database_url.startswith("postgres"):
        import psycopg

        name = f"chatsite_bench_posts_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{database_url.rsplit('/', 1)[0]}/{name}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/posts.sqlite3"
    os.environ.setdefault("CHATSITE_DEV", "1")
    os.environ["DATABASE_URL"] = url
    os.environ["REDIS_URL"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def _drop(database_url: str, url: str) -> None:
    if not url.startswith("postgres"):
        return
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def measure(posts: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from rooms import fanout, services

    fanout.publish = lambda items: None  # delivery is not what this measures
    users = [get_user_model().objects.create_user(f"poster{n}") for n in range(10)]
    room = services.create_room(creator=users[0], name="Bench")
    for user in users[1:]:
        services.join_room(user=user, room=room)
    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    times = []
    with connection.execute_wrapper(count):
        for n in range(posts):
            start = time.perf_counter()
            services.post_message(author=users[n % 10], room=room, body=f"message {n}", ref=f"r{n}")
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "vendor": connection.vendor,
        "posts": posts,
        "p50_us": statistics.median(times) * 1e6,
        "p99_us": times[int(len(times) * 0.99)] * 1e6,
        "mean_us": statistics.fmean(times) * 1e6,
        "statements_per_post": statements / posts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL server URL")
    parser.add_argument("--posts", type=int, default=POSTS)
    args = parser.parse_args()
    url = _setup(args.database)
    try:
        result = measure(args.posts)
    finally:
        _drop(args.database, url)
    print(
        f"{result['vendor']}: {result['posts']} posts, p50 {result['p50_us']:.0f} µs, "
        f"p99 {result['p99_us']:.0f} µs, mean {result['mean_us']:.0f} µs, "
        f"{result['statements_per_post']:.2f} statements per post"
    )


if __name__ == "__main__":
    main()
