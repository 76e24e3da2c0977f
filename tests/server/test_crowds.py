"""A crowd of sockets connecting at once to a real daphne worker: every one gets `hello`.

Without admission in turn (chatsite/server/crowds.py) every handshake in progress shares the worker,
none finishes within daphne's connect timeout, and daphne refuses them (HTTP 403) or drops them.
The worker here runs with a 3 s timeout, and a crowd of 1,000 is more than it can greet within
it (without admission in turn, most of them were dropped); each socket gets one attempt. No
timing assertions: a slower machine only makes the crowd wait longer in line.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

from bench.loadgen import LoadGenerator
from bench.server import Deployment
from tests.servers import ROOT

CROWD = 1000


async def test_a_crowd_connecting_at_once_gets_in() -> None:
    with Deployment(
        workers=1,
        name="crowd",
        daphne_args=("--websocket_connect_timeout", "3"),
        # The admission in turn is a fast path: this is its test, whatever the suite runs with.
        extra_env={"CHATSITE_SERVER_TUNING": "1"},
    ) as site:
        keys = [key for _, key in site.seed_users("crowd", CROWD)]
        async with LoadGenerator(site.ws_urls, processes=1, server_pids=site.worker_pids) as load:
            report = await load.connect(load.plan(keys, [None] * CROWD), CROWD, 1)

    assert report.failed == {}
    assert report.opened == CROWD


def test_a_worker_raises_its_open_files_limit_to_the_hard_limit() -> None:
    """A shell's usual soft limit (1,024 files) would cap a worker at about 1,000 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 256)
    script = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, {hard}))\n"
        "import chatsite.asgi\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "CHATSITE_DEV": "1", "REDIS_URL": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    raised = int(out.stdout.split()[-1])
    assert raised > low
    assert hard == resource.RLIM_INFINITY or raised == min(hard, 1 << 20)
