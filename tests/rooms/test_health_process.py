"""/healthz of a real worker whose database is unreachable."""

import json

from tests.servers import daphne, free_port, get


def test_healthz_answers_503_naming_the_database_when_it_is_unreachable(tmp_path):
    # Nothing listens on this port: the worker starts, but cannot reach its database.
    dead = free_port()
    env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead}/nowhere", "REDIS_URL": ""}
    with daphne(env) as (port, _):
        status, body = get(f"http://127.0.0.1:{port}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "error", "database": "error", "channel_layer": "ok"}
