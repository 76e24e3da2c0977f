"""The load scenarios; writes docs/performance.md (and docs/scaling.md's layer comparison).

    python -m bench.run                    # the standard scenarios (`make bench`, < 5 minutes)
    python -m bench.run --only two-core,two-pubsub --merge   # `make bench-layers`
    python -m bench.run --only routing --merge                # `make bench-routing`
    python -m bench.run --scale 0.2        # a fifth of the clients, loads and idle sockets
    python -m bench.run --report-only      # re-render the docs from bench/results/latest.json

Scenarios (each starts its own workers on a fresh database and a fresh Redis prefix); the
standard ones are one-worker, two-pubsub (the default layer), streams and many, then memory
and profile as time allows:

- one-worker:    1 daphne worker (SQLite, in-process layer), 1,000 clients in 10 rooms,
                 offered load stepped up to find the highest clean load, then 10,000/s held.
- two-core / two-pubsub: 2 workers (PostgreSQL, Redis; CHATSITE_CHANNEL_LAYER core or pubsub),
                 behind nginx when deploy/ provides it, else addressed directly.
- streams:       2 workers as two-pubsub, 1,000 clients in 10 rooms: first all on WebSockets,
                 then half of them (and half the senders) on the HTTP fallback (an SSE stream
                 down, POSTs up to any worker), 5,000 deliveries/s offered to each.
- many:          10,000 sockets across two workers (PostgreSQL, Redis; behind nginx when
                 deploy/ provides it, else addressed directly), held with heartbeats
                 running: none may drop; RSS per socket at 5,000 sockets per worker.
- idle:          5,000 idle sockets on one worker (SQLite): RSS per socket.
- memory:        one worker under tracemalloc: what an idle socket allocates, by library.
- profile:       one worker under pyinstrument at a saturating load: where the time goes.
- routing:       4 daphne workers (PostgreSQL, Redis `pubsub` layer, addressed directly, each
                 client on a worker picked at random), run twice: CHATSITE_ROUTING=broadcast
                 then rooms. 2,000 sockets, one user each: 1,000 two-person rooms (every user
                 in one) and 10 rooms of 100 (users 0..999); a planned steady load (random
                 members posting into random rooms, as many deliveries in the two-person rooms
                 as in those of 100) for 30 s. Per worker, from its `GET /metrics` and its CPU
                 time: layer events received, deliveries, CPU per delivery. With --only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .loadgen import ConnectReport, LoadGenerator, StepResult
from .report import source_line
from .server import (
    DEFAULT_REDIS_URL,
    POSTGRES_ADMIN_URL,
    ROOT,
    Deployment,
    NginxDeployment,
    nginx_available,
)
from .site import Browser, sign_up_owner_with_rooms
from .stats import Sampler, cpu_seconds_of, percentile, rss_of, scrape

RESULTS = ROOT / "bench" / "results"
OWNER_PASSWORD = "bench-owner-password-1234"
STEP_SECONDS = 5.0
DRAIN_SECONDS = 3.0
HOLD_SECONDS = 10.0  # scenario (b): 10,000/s held this long
# `make bench` must finish within five minutes; optional scenarios give way past this.
TIME_BUDGET_SECONDS = 275.0
# What `make bench` runs (under five minutes). `two-core` (the layer comparison of
# docs/scaling.md, `make bench-layers`) and `idle` (one worker) run with --only.
STANDARD = ("one-worker", "two-pubsub", "streams", "many", "memory", "profile")
# The streams scenario: which share of the clients use the HTTP fallback in its second half,
# and the loads offered to each half: the aim's only. At 10,000/s (50 POSTs a second) the POSTs
# ran the shared PostgreSQL out of connections on 2026-12-05, one opened per POST.
STREAM_SHARE = 0.5
STREAM_LOADS = (5000.0,)
# The routing scenario, at scale 1: the workers, the rooms, the messages/s posted into the
# two-person rooms (N) and into the rooms of 100 (N/50: as many deliveries as the pairs get),
# the measured window after a warm-up, and the seed of the placement and of the plan of sends.
ROUTING_MODES = ("broadcast", "rooms")
ROUTING_WORKERS = 4
ROUTING_PAIRS = 1000
ROUTING_CROWDS = 10
ROUTING_CROWD_SIZE = 100
ROUTING_PAIR_RATE = 500.0
ROUTING_CROWD_RATE = ROUTING_PAIR_RATE / 50
ROUTING_SECONDS = 30.0
ROUTING_WARMUP_SECONDS = 3.0
ROUTING_SEED = 20261205


@dataclass
class ScenarioResult:
    key: str
    title: str
    setup: str
    clients: int
    rooms: int
    workers: int
    target: str = ""
    connect: dict[str, Any] = field(default_factory=dict)
    join_seconds: float = 0.0
    join_failed: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    hold: dict[str, Any] | None = None
    rss_idle_bytes: list[int] = field(default_factory=list)
    rss_connected_bytes: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def highest_clean(self) -> float:
        clean = [s["offered"] for s in self.steps if s["clean"]]
        return max(clean, default=0.0)


def step_record(result: StepResult, cdf_points: int = 400) -> dict[str, Any]:
    """A step as plain data; the latency distribution is kept as a few hundred quantiles."""
    data = dataclasses.asdict(result)
    data.pop("latencies_ms")
    ms = result.latencies_ms
    data["cdf"] = [percentile(ms, q / cdf_points) for q in range(1, cdf_points + 1)] if ms else []
    data["clean"] = result.clean
    data["loss_percent"] = result.loss_percent
    data["other_cpu_percent"] = result.other_cpu_percent
    return data


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def describe_step(s: StepResult) -> str:
    server = s.server.cpu_percent if s.server else []
    clients = s.clients.cpu_percent if s.clients else []
    by_transport = "".join(
        f" [{kind}: p99 {t['p99_ms']:.1f} ms, ack p99 {t['ack_p99_ms']:.1f} ms, lost {t['lost']}]"
        for kind, t in s.transports.items()
        if len(s.transports) > 1
    )
    return (
        f"{s.name}: offered {s.offered:,.0f}/s delivered {s.delivered_per_s:,.0f}/s "
        f"lost {s.lost}/{s.expected} p50 {s.p50_ms:.1f} p99 {s.p99_ms:.1f} max {s.max_ms:.1f} ms "
        f"server CPU {[round(c) for c in server]}% clients {[round(c) for c in clients]}% "
        + (f"PostgreSQL {s.postgres_cpu_percent:.0f}% " if s.postgres_cpu_percent else "")
        + f"other {s.other_cpu_percent:.0f}%{by_transport} {'clean' if s.clean else 'NOT clean'}"
    )


# --- building blocks ----------------------------------------------------------------------------


def make_rooms(site: Any, count: int, prefix: str = "room") -> tuple[list[str], str]:
    """Sign the owner up over HTTP and create the rooms with POST /rooms/new/."""
    return sign_up_owner_with_rooms(site.http_urls[0], count, prefix, OWNER_PASSWORD)


def http_signups(site: Any, count: int) -> list[str]:
    """Sign `count` users up over HTTP, as browsers do (each costs one password hash)."""
    keys = []
    for i in range(count):
        browser = Browser(site.http_urls[i % len(site.http_urls)])
        keys.append(browser.signup(f"web{i}", OWNER_PASSWORD))
    return keys


async def run_load(
    key: str,
    title: str,
    site_factory: Any,
    *,
    clients: int,
    rooms: int,
    loads: Sequence[float],
    hold: float | None,
    processes: int,
    setup: str,
    target: str = "",
    http_users: int = 5,
    profile: Path | None = None,
) -> ScenarioResult:
    """Start the site, connect `clients` sockets in `rooms` rooms, step the offered load."""
    started = time.monotonic()
    result = ScenarioResult(key, title, setup, clients, rooms, 0, target)
    try:
        with site_factory() as site:
            result.workers = len(site.worker_pids)
            slugs, owner_key = make_rooms(site, rooms)
            keys = http_signups(site, min(http_users, clients))
            site.track_sessions([owner_key, *keys])
            seeded = site.seed_users("u", clients - len(keys))
            keys += [k for _, k in seeded]
            result.rss_idle_bytes = rss_of(site.worker_pids)
            log(f"{key}: {len(site.worker_pids)} worker(s) at {site.ws_urls}; connecting {clients}")
            async with LoadGenerator(
                site.ws_urls,
                processes=processes,
                server_pids=site.worker_pids,
                proxy_pids=site.proxy_pids,
                redis_url=getattr(site, "redis_url", None),
            ) as load:
                room_of = [slugs[i * rooms // clients] for i in range(clients)]
                connect = await load.connect(load.plan(keys, room_of))
                result.connect = dataclasses.asdict(connect)
                log(f"{key}: {_connect_line(connect)}")
                joined = await load.join()
                result.join_seconds = joined["seconds"]
                result.join_failed = joined["failed"]
                result.rss_connected_bytes = rss_of(site.worker_pids)
                log(f"{key}: joined in {joined['seconds']:.1f}s, rooms {joined['rooms']}")
                if profile is not None:
                    result.extra["profile_window"] = [time.time()]
                unclean_in_a_row = 0
                for offered in loads:
                    step = await measured_step(load, result, f"{offered:,.0f}/s", offered)
                    result.steps.append(step_record(step))
                    unclean_in_a_row = 0 if step.clean else unclean_in_a_row + 1
                    # Past saturation more load only tells the same story, slower.
                    saturated = step.delivered_per_s < 0.95 * step.offered
                    if unclean_in_a_row >= 2 or (not step.clean and saturated):
                        break
                    await load.settle(quiet=0.3, limit=5)
                if profile is not None:
                    result.extra["profile_window"].append(time.time())
                if hold is not None:
                    await load.settle(quiet=0.3, limit=10)
                    step = await load.step(
                        f"{hold:,.0f}/s held", hold, duration=HOLD_SECONDS, drain=DRAIN_SECONDS
                    )
                    log(f"{key}: {describe_step(step)}")
                    result.hold = step_record(step)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"{key}: FAILED: {result.error}")
    result.seconds = time.monotonic() - started
    return result


async def measured_step(
    load: LoadGenerator, result: ScenarioResult, name: str, offered: float
) -> StepResult:
    """One load step of STEP_SECONDS, measured again if Redis restarted meanwhile."""
    step = await load.step(name, offered, duration=STEP_SECONDS, drain=DRAIN_SECONDS)
    log(f"{result.key}: {describe_step(step)}")
    if step.redis_restarted:
        # Someone else restarted the shared Redis: keep the record, measure again.
        result.extra.setdefault("redis_restarts", []).append(step_record(step))
        log(f"{result.key}: Redis restarted during the step (not by the bench); again")
        await load.settle(quiet=1.0, limit=10)
        step = await load.step(name, offered, duration=STEP_SECONDS, drain=DRAIN_SECONDS)
        log(f"{result.key}: {describe_step(step)}")
    return step


async def run_streams(
    key: str,
    title: str,
    site_factory: Any,
    *,
    clients: int,
    rooms: int,
    loads: Sequence[float],
    processes: int,
    setup: str,
    target: str,
) -> ScenarioResult:
    """The same users on one deployment twice: all on WebSockets, then STREAM_SHARE of them
    (and of the senders) on the HTTP fallback; the same loads offered to each, so the two sit
    side by side. The WebSocket half is kept in `extra["websocket"]`, the mixed one in `steps`.
    """
    started = time.monotonic()
    result = ScenarioResult(key, title, setup, clients, rooms, 0, target)
    result.extra["stream_share"] = STREAM_SHARE
    try:
        with site_factory() as site:
            result.workers = len(site.worker_pids)
            slugs, owner_key = make_rooms(site, rooms)
            site.track_sessions([owner_key])
            room_of = [slugs[i * rooms // clients] for i in range(clients)]
            # Members already: each half starts at once, without a round of joins.
            keys = [k for _, k in site.seed_users("u", clients, room_of)]
            result.rss_idle_bytes = rss_of(site.worker_pids)
            async with LoadGenerator(
                site.ws_urls,
                processes=processes,
                server_pids=site.worker_pids,
                proxy_pids=site.proxy_pids,
                redis_url=getattr(site, "redis_url", None),
                postgres=True,
            ) as load:
                for share in (0.0, STREAM_SHARE):
                    phase = "half streams" if share else "WebSockets only"
                    connect = await load.connect(load.plan(keys, room_of, stream_share=share))
                    log(f"{key}: {phase}: {_connect_line(connect)}")
                    joined = await load.join(members=True)
                    log(f"{key}: {phase}: in rooms {joined['rooms']}, failed {joined['failed']}")
                    steps = []
                    for offered in loads:
                        step = await measured_step(load, result, f"{offered:,.0f}/s", offered)
                        steps.append(step_record(step))
                        await load.settle(quiet=0.3, limit=5)
                    record = {
                        "connect": dataclasses.asdict(connect),
                        "join_seconds": joined["seconds"],
                        "join_failed": joined["failed"],
                        "rss_connected_bytes": rss_of(site.worker_pids),
                        "steps": steps,
                    }
                    if share:
                        result.connect = record["connect"]
                        result.join_seconds = joined["seconds"]
                        result.join_failed = joined["failed"]
                        result.rss_connected_bytes = record["rss_connected_bytes"]
                        result.steps = steps
                    else:
                        result.extra["websocket"] = record
                        await load.disconnect()
                        # The workers see a thousand users go offline; let them finish before
                        # the second half arrives, or its handshakes wait behind that.
                        await workers_idle(site.worker_pids, limit=10)
                # Workers first, as in run_idle: draining, they close every client without
                # announcing each user offline to their room, which the clients leaving would.
                site.stop_workers()
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"{key}: FAILED: {result.error}")
    result.seconds = time.monotonic() - started
    return result


async def workers_idle(pids: Sequence[int], limit: float, busy_percent: float = 10.0) -> None:
    """Wait until no worker uses more than `busy_percent` of a core (at most `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sampler = Sampler(list(pids))
        sampler.start()
        await asyncio.sleep(0.5)
        if max(sampler.usage().cpu_percent, default=0.0) < busy_percent:
            return


def _connect_line(c: ConnectReport) -> str:
    return (
        f"{c.opened}/{c.requested} sockets in {c.seconds:.1f}s "
        f"(handshake+hello p50 {c.p50_ms:.0f} ms, p99 {c.p99_ms:.0f} ms), failed {c.failed}"
    )


async def run_idle(
    target: int,
    processes: int,
    time_budget: float,
    env: dict[str, str],
    server: str = "daphne",
    *,
    workers: int = 1,
    redis_url: str | None = None,
    hold: float = 3.0,
    behind_nginx: bool = False,
) -> ScenarioResult:
    """Open idle sockets in batches until `target` (or failures, or the time budget), then
    hold them `hold` seconds: nothing may drop while nobody talks."""
    started = time.monotonic()
    per_room = 100
    rooms = max(1, target // per_room)
    if workers == 1:
        result = ScenarioResult(
            "idle",
            "(d) Idle sockets on one worker",
            f"1 {server} worker, SQLite, in-process layer",
            target,
            rooms,
            1,
            "≤ 25 KB RSS per idle socket at 5,000 idle sockets",
        )
        deployment = Deployment(workers=1, name="idle", extra_env=env, server=server)
    else:
        where = (
            "behind nginx (deploy/cluster.py, production settings)"
            if behind_nginx
            else "addressed directly (sockets split evenly)"
        )
        result = ScenarioResult(
            "many",
            f"(f) {target:,} sockets on {workers} workers",
            f"{workers} daphne workers, PostgreSQL, Redis `pubsub` layer, {where}; held "
            f"{hold:.0f} s with daphne's pings (every 20 s) and the presence heartbeat (every "
            "10 s) running",
            target,
            rooms,
            workers,
            f"{target:,} concurrent sockets across {workers} workers, none dropped",
        )
        deployment: Any = (
            NginxDeployment(workers=workers, redis_url=redis_url, name="many", extra_env=env)
            if behind_nginx
            else Deployment(
                workers=workers,
                database="postgres",
                redis_url=redis_url,
                name="many",
                extra_env=env,
            )
        )
    try:
        with deployment as site:
            slugs, owner_key = make_rooms(site, rooms, prefix="lobby")
            users = site.seed_users("idle", target, slugs)
            async with LoadGenerator(
                site.ws_urls, processes=processes, server_pids=site.worker_pids
            ) as load:
                # One warm socket first: the hub, thread pools and first-use imports are
                # one-off costs, not per-socket ones.
                await load.connect(load.plan([owner_key], [None]))
                await load.settle(quiet=0.3, limit=5)
                baseline = sum(rss_of(site.worker_pids))
                result.rss_idle_bytes = rss_of(site.worker_pids)
                batches: list[dict[str, Any]] = []
                keys = [k for _, k in users]
                batch = max(100, target // 5)
                opened = 0
                connect_times: list[float] = []
                for start in range(0, len(keys), batch):
                    if time.monotonic() - started > time_budget:
                        result.extra["stopped"] = "time budget"
                        break
                    chunk = keys[start : start + batch]
                    report = await load.connect(load.plan(chunk, [None] * len(chunk)))
                    opened += report.opened
                    connect_times.append(report.seconds)
                    await load.settle(quiet=0.5, limit=15)
                    rss = sum(rss_of(site.worker_pids))
                    batches.append(
                        {
                            "sockets": opened,
                            "rss_bytes": rss,
                            "connect_seconds": report.seconds,
                            "failed": report.failed,
                            "p99_ms": report.p99_ms,
                        }
                    )
                    log(
                        f"{result.key}: {opened} sockets, RSS {rss / 2**20:.1f} MiB, "
                        f"{(rss - baseline) / max(opened, 1) / 1024:.1f} KiB/socket"
                    )
                    if report.failed:
                        result.extra["stopped"] = f"connect failures {report.failed}"
                        result.extra["worker_logs"] = [
                            site.log_tail(i, 15) for i in range(len(site.worker_pids))
                        ]
                        log(
                            f"{result.key}: worker logs:\n" + "\n".join(result.extra["worker_logs"])
                        )
                        break
                await asyncio.sleep(hold)
                seen = await asyncio.gather(*(h.call("collect") for h in load.handles))
                result.extra["held_seconds"] = hold
                result.extra["closed_while_idle"] = sum(sum(r["closes"].values()) for r in seen)
                result.extra["open_after_idle"] = sum(r["open"] for r in seen) - 1
                result.rss_connected_bytes = rss_of(site.worker_pids)
                final = sum(result.rss_connected_bytes)
                result.extra["batches"] = batches
                result.extra["sockets"] = opened
                result.extra["per_socket_bytes"] = (final - baseline) / max(opened, 1)
                result.connect = {"seconds": sum(connect_times), "opened": opened}
                # Workers first: draining, they close their sockets without announcing every
                # user offline, which the clients closing theirs would (slower than the test).
                site.stop_workers()
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"{result.key}: FAILED: {result.error}")
    result.seconds = time.monotonic() - started
    return result


async def run_memory(sockets: int, env: dict[str, str]) -> ScenarioResult:
    """One worker under tracemalloc: what `sockets` idle sockets allocate, by library."""
    started = time.monotonic()
    rooms = max(1, sockets // 100)
    result = ScenarioResult(
        "memory",
        "Where an idle socket's memory goes",
        "1 daphne worker under tracemalloc (`python -m bench.memtrace`), SQLite, in-process layer",
        sockets,
        rooms,
        1,
    )
    out_dir = Path(tempfile_dir())
    out = out_dir / "memtrace.json"
    try:
        with Deployment(
            workers=1,
            name="memory",
            launcher=[sys.executable, "-m", "bench.memtrace"],
            extra_env={**env, "BENCH_MEMTRACE_OUT": str(out)},
        ) as site:
            slugs, owner_key = make_rooms(site, rooms, prefix="lobby")
            users = site.seed_users("mem", sockets, slugs)
            pid = site.worker_pids[0]
            async with LoadGenerator(site.ws_urls, processes=1, server_pids=[pid]) as load:
                await load.connect(load.plan([owner_key], [None]))
                await load.settle(quiet=0.3, limit=5)
                await _memtrace_snapshot(pid, out)
                rss0 = rss_of([pid])[0]
                report = await load.connect(load.plan([k for _, k in users], [None] * sockets))
                await load.settle(quiet=0.5, limit=30)
                rss1 = rss_of([pid])[0]
                data = await _memtrace_snapshot(pid, out)
                # The code as it was when measured (line numbers move as the code changes).
                data["sources"] = {line: source_line(line) for line, _ in data["by_own_line"]}
                result.extra["memory"] = data
                result.extra["sockets"] = report.opened
                result.extra["rss_per_socket_bytes"] = (rss1 - rss0) / max(report.opened, 1)
                log(
                    f"memory: {report.opened} sockets, traced "
                    f"{data['total'] / max(report.opened, 1) / 1000:.1f} KB per socket"
                )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"memory: FAILED: {result.error}")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


async def _memtrace_snapshot(pid: int, out: Path) -> dict[str, Any]:
    """Ask bench.memtrace (SIGUSR1) for a snapshot and wait for the file it writes."""
    return await asyncio.to_thread(_memtrace_snapshot_sync, pid, out, 120.0)


def _memtrace_snapshot_sync(pid: int, out: Path, limit: float) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + limit
    while not out.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("bench.memtrace wrote no snapshot")
        time.sleep(0.2)
    return dict(orjson.loads(out.read_bytes()))


# Inclusive shares of the profile that docs/performance.md quotes: (function, file suffix).
PROFILE_MARKERS = {
    "deliver": ("deliver", "rooms/fanout.py"),
    "session_send": ("send", "channels/sessions.py"),
    "handle_reply": ("handle_reply", "daphne/server.py"),
    "autobahn_send": ("sendMessage", "autobahn/websocket/protocol.py"),
    "start_writing": ("startWriting", "twisted/internet/abstract.py"),
    "do_write": ("doWrite", "twisted/internet/abstract.py"),
    "hltype": ("hltype", "autobahn/util.py"),
    "receive": ("receive", "rooms/consumers.py"),
    "flush": ("_flush", "chatsite/server/batched_writes.py"),
}


def profile_shares(session: Any) -> dict[str, float]:
    """Percent of the sampled time spent inside each PROFILE_MARKERS function."""
    total = sum(seconds for _, seconds in session.frame_records) or 1.0
    shares = dict.fromkeys(PROFILE_MARKERS, 0.0)
    for stack, seconds in session.frame_records:
        frames = {tuple(frame.split("\x00")[:2]) for frame in stack}
        for key, (function, suffix) in PROFILE_MARKERS.items():
            if any(f == function and path.endswith(suffix) for f, path in frames):
                shares[key] += seconds
    return {key: 100.0 * value / total for key, value in shares.items()}


def render_profile(session_path: Path, window: Sequence[float]) -> tuple[str, dict[str, float]]:
    """The pyinstrument profile of the worker, cut to the load steps: flat, tree, shares."""
    from pyinstrument.renderers.console import ConsoleRenderer
    from pyinstrument.session import Session

    session = Session.load(session_path)
    t0, t1 = window[0], window[-1]
    records = []
    now = session.start_time
    for stack, seconds in session.frame_records:
        if t0 <= now <= t1:
            records.append((stack, seconds))
        now += seconds
    cut = Session(
        frame_records=records,
        start_time=t0,
        duration=t1 - t0,
        min_interval=session.min_interval,
        max_interval=session.max_interval,
        sample_count=len(records),
        start_call_stack=session.start_call_stack,
        target_description="daphne worker during the load steps",
        cpu_time=0.0,
        sys_path=session.sys_path,
        sys_prefixes=session.sys_prefixes,
    )
    flat = ConsoleRenderer(flat=True, show_all=True, time="percent_of_total", unicode=False)
    lines = [ln for ln in flat.render(cut).splitlines() if "%" in ln]
    tree = ConsoleRenderer(
        show_all=True,
        time="percent_of_total",
        unicode=False,
        processor_options={"filter_threshold": 0.03},
    )
    body = [
        line
        for line in tree.render(cut).splitlines()
        if (share := re.search(r"(\d+\.\d)%", line)) and float(share.group(1)) >= 3.0
    ]
    text = "\n".join(lines[:20]) + "\n\n" + "\n".join(body[:50])
    return text, profile_shares(cut)


# --- routing: which workers receive a room's events ----------------------------------------------


@dataclass
class RoutingLayout:
    """Who is in which room, which worker each user's socket is on, and what they post."""

    users: int
    pairs: list[list[int]]  # the members of each two-person room
    crowds: list[list[int]]  # the members of each room of ROUTING_CROWD_SIZE
    placement: list[int]  # user i's worker
    pair_rate: float
    crowd_rate: float

    @staticmethod
    def pair_slug(i: int) -> str:
        return f"pair-{i}"

    @staticmethod
    def crowd_slug(i: int) -> str:
        return f"crowd-{i}"

    def rooms(self) -> list[dict[str, Any]]:
        """The rooms for bench.seed's `--layout`."""
        return [
            {"slug": self.pair_slug(i), "kind": "private", "members": members}
            for i, members in enumerate(self.pairs)
        ] + [
            {"slug": self.crowd_slug(i), "kind": "public", "members": members}
            for i, members in enumerate(self.crowds)
        ]

    def rooms_of(self) -> tuple[list[str], list[list[str]]]:
        """Each user's two-person room, and the rooms of 100 they are in too."""
        pair_of = [""] * self.users
        also: list[list[str]] = [[] for _ in range(self.users)]
        for i, members in enumerate(self.pairs):
            for user in members:
                pair_of[user] = self.pair_slug(i)
        for i, members in enumerate(self.crowds):
            for user in members:
                also[user].append(self.crowd_slug(i))
        return pair_of, also

    def offered(self) -> float:
        """Deliveries/s the plan offers."""
        size = sum(len(m) for m in self.crowds) / max(len(self.crowds), 1)
        return self.pair_rate * 2 + self.crowd_rate * size

    def plan(self, seconds: float, seed: int) -> list[tuple[float, int, str]]:
        """The sends of a steady window: (seconds from its start, user, room), in time order;
        each message into a random room of its kind, by a random member of that room. The
        two kinds are spaced evenly, each at its own rate."""
        rng = random.Random(seed)
        sends = []
        for rate, rooms, slug in (
            (self.pair_rate, self.pairs, self.pair_slug),
            (self.crowd_rate, self.crowds, self.crowd_slug),
        ):
            for k in range(round(rate * seconds)):
                room = rng.randrange(len(rooms))
                sends.append(((k + 0.5) / rate, rng.choice(rooms[room]), slug(room)))
        sends.sort()
        return sends


def routing_layout(scale: float, workers: int, seed: int) -> RoutingLayout:
    """ROUTING_PAIRS two-person rooms (user j with user j + pairs) and ROUTING_CROWDS rooms of
    ROUTING_CROWD_SIZE (users 0…, in turn), both counts and both rates times `scale`; every
    user on a worker picked at random (`seed`), so a room's members are spread at random."""
    pairs = max(10, round(ROUTING_PAIRS * scale))
    users = 2 * pairs
    crowds = max(1, round(ROUTING_CROWDS * scale))
    size = min(ROUTING_CROWD_SIZE, users // crowds)
    rng = random.Random(seed)
    return RoutingLayout(
        users=users,
        pairs=[[j, j + pairs] for j in range(pairs)],
        crowds=[list(range(c * size, (c + 1) * size)) for c in range(crowds)],
        placement=[rng.randrange(workers) for _ in range(users)],
        pair_rate=ROUTING_PAIR_RATE * pairs / ROUTING_PAIRS,
        crowd_rate=ROUTING_CROWD_RATE * crowds / ROUTING_CROWDS,
    )


ROUTING_METRICS = {
    "events": "chat_layer_events_received_total",
    "deliveries": "chat_deliveries_total",
    "layer_groups": "chat_layer_groups",
    "room_subscriptions": "chat_room_subscriptions",
    "connections": 'chat_connections{transport="websocket"}',
    # From a hub publishing a batch to a hub delivering it: the layer's part of the latency.
    "lag_seconds": "chat_publish_to_deliver_seconds_sum",
    "lag_count": "chat_publish_to_deliver_seconds_count",
}


def redis_publishes(url: str) -> int | None:
    """PUBLISH commands the Redis server has run so far (INFO commandstats): the pub/sub layer's
    messages, beats included, but of everyone using that server."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            return int(client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))
        finally:
            client.close()
    except Exception:
        return None


def worker_figures(site: Any) -> list[dict[str, float]]:
    """Each worker's figures of ROUTING_METRICS (GET /metrics) and its CPU seconds so far."""
    cpu = cpu_seconds_of(site.worker_pids)
    figures = []
    for url, seconds in zip(site.http_urls, cpu, strict=True):
        samples = scrape(url)
        figures.append(
            {key: samples.get(name, 0.0) for key, name in ROUTING_METRICS.items()}
            | {"cpu_seconds": seconds}
        )
    return figures


def routing_figures(
    before: list[dict[str, float]],
    after: list[dict[str, float]],
    window: float,
    seconds: float,
    sent: int,
) -> dict[str, Any]:
    """What each worker did over the window (counters: the difference), and the derived
    figures of the comparison. Rates are per second of sending (`seconds`): the window also
    holds the drain, in which nothing new is sent."""
    workers = []
    for b, a in zip(before, after, strict=True):
        workers.append(
            {
                "events": a["events"] - b["events"],
                "deliveries": a["deliveries"] - b["deliveries"],
                "cpu_seconds": a["cpu_seconds"] - b["cpu_seconds"],
                "lag_seconds": a["lag_seconds"] - b["lag_seconds"],
                "lag_count": a["lag_count"] - b["lag_count"],
                "layer_groups": a["layer_groups"],
                "room_subscriptions": a["room_subscriptions"],
                "connections": a["connections"],
            }
        )
    events_per_s = [w["events"] / seconds for w in workers]
    deliveries = sum(w["deliveries"] for w in workers)
    cpu = sum(w["cpu_seconds"] for w in workers)
    lag_count = sum(w["lag_count"] for w in workers)
    return {
        "window_seconds": window,
        "sending_seconds": seconds,
        "workers": workers,
        "events_per_worker_per_s": events_per_s,
        "events_per_worker_per_s_mean": sum(events_per_s) / len(events_per_s),
        "events_per_worker_per_s_max": max(events_per_s),
        "events_per_message": sum(w["events"] for w in workers) / max(sent, 1),
        "deliveries": deliveries,
        "cpu_seconds": cpu,
        "cpu_us_per_delivery": cpu * 1e6 / deliveries if deliveries else 0.0,
        "publish_to_deliver_ms_mean": (
            sum(w["lag_seconds"] for w in workers) * 1000 / lag_count if lag_count else 0.0
        ),
    }


async def run_routing_mode(
    mode: str,
    layout: RoutingLayout,
    *,
    seconds: float,
    processes: int,
    redis_url: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """One half of the routing scenario: fresh workers and database with CHATSITE_ROUTING=mode,
    the layout seeded, a warm-up, then the measured steady window."""
    record: dict[str, Any] = {"mode": mode}
    with Deployment(
        workers=ROUTING_WORKERS,
        database="postgres",
        redis_url=redis_url,
        name=f"routing-{mode}",
        extra_env={**env, "CHATSITE_ROUTING": mode},
    ) as site:
        seeded = await asyncio.to_thread(site.seed_users, "r", layout.users, None, layout.rooms())
        keys = [key for _, key in seeded]
        pair_of, also = layout.rooms_of()
        async with LoadGenerator(
            site.ws_urls,
            processes=processes,
            server_pids=site.worker_pids,
            redis_url=redis_url,
            postgres=True,
        ) as load:
            plans = load.plan(keys, pair_of, also=also, placement=layout.placement)
            connect = await load.connect(plans)
            record["connect"] = dataclasses.asdict(connect)
            log(f"routing {mode}: {_connect_line(connect)}")
            joined = await load.join(members=True)
            record["join_failed"] = joined["failed"]
            await workers_idle(site.worker_pids, limit=15)
            sizes = sorted(set(joined["rooms"].values()))
            log(
                f"routing {mode}: {len(joined['rooms'])} rooms of {sizes} sockets joined, failed "
                f"{joined['failed']}"
            )

            def planned(length: float, seed: int) -> list[tuple[float, str, str]]:
                return [(at, keys[user], room) for at, user, room in layout.plan(length, seed)]

            offered = layout.offered()
            warm = await load.step(
                "warm-up",
                offered,
                duration=ROUTING_WARMUP_SECONDS,
                drain=DRAIN_SECONDS,
                planned=planned(ROUTING_WARMUP_SECONDS, ROUTING_SEED + 1),
            )
            log(f"routing {mode}: {describe_step(warm)}")
            await load.settle(quiet=0.3, limit=10)
            sends = planned(seconds, ROUTING_SEED)
            published = redis_publishes(redis_url)
            before, started = worker_figures(site), time.monotonic()
            step = await load.step(
                f"{offered:,.0f}/s steady",
                offered,
                duration=seconds,
                drain=DRAIN_SECONDS,
                planned=sends,
            )
            after, window = worker_figures(site), time.monotonic() - started
            if published is not None and (now := redis_publishes(redis_url)) is not None:
                record["redis_publish_per_s"] = (now - published) / seconds
            log(f"routing {mode}: {describe_step(step)}")
            record["step"] = step_record(step, cdf_points=100)
            record |= routing_figures(before, after, window, seconds, step.sent)
            record["messages"] = step.sent
            record["redis_restarted"] = step.redis_restarted
            log(
                f"routing {mode}: layer events received per worker per second "
                f"{[round(e) for e in record['events_per_worker_per_s']]} "
                f"(mean {record['events_per_worker_per_s_mean']:,.0f}), "
                f"{record['events_per_message']:.2f} per message; CPU "
                f"{record['cpu_us_per_delivery']:.0f} µs per delivery "
                f"({record['cpu_seconds']:.1f} s over {record['deliveries']:,.0f} deliveries); "
                f"layer groups {[round(w['layer_groups']) for w in record['workers']]}; Redis "
                f"PUBLISH {record.get('redis_publish_per_s', 0):,.0f}/s (all its clients); "
                f"publish to deliver {record['publish_to_deliver_ms_mean']:.1f} ms on average, "
                f"ack p50 {step.transports.get('websocket', {}).get('ack_p50_ms', 0):.1f} ms"
            )
            # Workers first, as in run_streams: draining, they close their sockets without
            # announcing every user offline to their rooms.
            site.stop_workers()
    return record


async def run_routing(
    scale: float, processes: int, redis_url: str, env: dict[str, str]
) -> ScenarioResult:
    """The same users, rooms, placement and plan of sends with CHATSITE_ROUTING=broadcast, then
    with rooms; each on fresh workers and a fresh database."""
    started = time.monotonic()
    layout = routing_layout(scale, ROUTING_WORKERS, ROUTING_SEED)
    seconds = max(10.0, ROUTING_SECONDS * min(scale, 1.0))
    crowd = len(layout.crowds[0])
    result = ScenarioResult(
        "routing",
        "Routing each room's events to the workers that need them",
        f"{ROUTING_WORKERS} daphne workers, PostgreSQL, Redis `pubsub` layer, addressed "
        "directly, each client on a worker picked at random",
        layout.users,
        len(layout.pairs) + len(layout.crowds),
        ROUTING_WORKERS,
    )
    result.extra = {
        "pairs": len(layout.pairs),
        "crowds": len(layout.crowds),
        "crowd_size": crowd,
        "pair_rate": layout.pair_rate,
        "crowd_rate": layout.crowd_rate,
        "offered": layout.offered(),
        "seconds": seconds,
        "seed": ROUTING_SEED,
        # Its own: a run merged into older results (--merge) keeps their machine facts.
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "modes": {},
    }
    log(
        f"routing: {layout.users} sockets on {ROUTING_WORKERS} workers, {len(layout.pairs)} "
        f"two-person rooms and {len(layout.crowds)} of {crowd}; {layout.pair_rate:g} + "
        f"{layout.crowd_rate:g} messages/s ({layout.offered():,.0f} deliveries/s) for {seconds:g} s"
    )
    errors = []
    for mode in ROUTING_MODES:
        try:
            result.extra["modes"][mode] = await run_routing_mode(
                mode, layout, seconds=seconds, processes=processes, redis_url=redis_url, env=env
            )
        except Exception as exc:
            errors.append(f"{mode}: {type(exc).__name__}: {exc}")
            log(f"routing {mode}: FAILED: {errors[-1]}")
    result.error = "; ".join(errors) or None
    result.seconds = time.monotonic() - started
    return result


# --- the whole run ------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    import importlib.metadata as md

    import psutil

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in (
        "Django",
        "channels",
        "channels-redis",
        "daphne",
        "websockets",
        "redis",
        "psycopg",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    facts: dict[str, Any] = {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": os.getloadavg(),
    }
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(DEFAULT_REDIS_URL, socket_timeout=3)
        facts["redis"] = client.info("server")["redis_version"]
        client.close()
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            facts["postgresql"] = row[0] if row else "?"
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx:
        with contextlib.suppress(Exception):
            out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
            facts["nginx"] = out.stderr.strip().split("/")[-1]
    return facts


def scaled(values: Sequence[float], scale: float) -> list[float]:
    return [round(v * scale) for v in values]


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    scale = args.scale
    clients = max(20, round(1000 * scale))
    processes = args.processes
    only = set(args.only.split(",")) if args.only else None
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    behind_nginx = nginx_available() and not args.direct
    one_loads = scaled([10000, 15000, 20000, 25000, 30000, 35000, 40000], scale)
    two_loads = scaled([10000, 15000, 20000, 25000], scale)
    scenarios: list[ScenarioResult] = []
    started = time.monotonic()
    env = dict(item.split("=", 1) for item in args.env)

    def wanted(key: str) -> bool:
        return key in (only if only is not None else STANDARD)

    if wanted("one-worker"):
        scenarios.append(
            await run_load(
                "one-worker",
                "(a, b) One worker",
                lambda: Deployment(workers=1, name="one", extra_env=env, server=args.server),
                clients=clients,
                rooms=10,
                loads=one_loads,
                hold=round(10000 * scale),
                processes=processes,
                setup=f"1 {args.server} worker, SQLite, in-process channel layer (the `make run` "
                "setup)",
                target="highest clean load ≥ 13,000–15,000/s; at 10,000/s no loss, p99 ≤ 50 ms",
            )
        )
    for layer in ("core", "pubsub"):
        key = f"two-{layer}"
        if not wanted(key):
            continue
        if behind_nginx:

            def factory(layer: str = layer) -> Any:
                return NginxDeployment(
                    workers=2, redis_url=redis_url, layer=layer, name=layer, extra_env=env
                )

            where = "behind nginx (deploy/cluster.py, production settings)"
        else:

            def factory(layer: str = layer) -> Any:
                return Deployment(
                    workers=2,
                    database="postgres",
                    redis_url=redis_url,
                    layer=layer,
                    name=layer,
                    extra_env=env,
                )

            where = "addressed directly, sockets split evenly"
        scenarios.append(
            await run_load(
                key,
                f"({'c' if layer == 'core' else 'e'}) Two workers, {layer} layer",
                factory,
                clients=clients,
                rooms=10,
                loads=two_loads,
                hold=None,
                processes=processes,
                setup=f"2 daphne workers, PostgreSQL, Redis `{layer}` layer, {where}",
                target="≥ 20,000 clean deliveries/s" if layer == "pubsub" else "",
            )
        )
    if wanted("streams"):
        if behind_nginx:

            def streams_site() -> Any:
                return NginxDeployment(
                    workers=2, redis_url=redis_url, layer="pubsub", name="streams", extra_env=env
                )

            where = "behind nginx (deploy/cluster.py, production settings)"
        else:

            def streams_site() -> Any:
                return Deployment(
                    workers=2,
                    database="postgres",
                    redis_url=redis_url,
                    name="streams",
                    extra_env=env,
                )

            where = "addressed directly, each stream POSTing to the other worker"
        scenarios.append(
            await run_streams(
                "streams",
                "(g) Two workers, half the clients on HTTP streams",
                streams_site,
                clients=clients,
                rooms=10,
                loads=scaled(STREAM_LOADS, scale),
                processes=processes,
                setup=f"2 daphne workers, PostgreSQL, Redis `pubsub` layer, {where}",
                target=f"p99 ≤ 100 ms at {5000 * scale:,.0f} deliveries/s; a stream client's "
                "worker CPU per delivery within 2× a WebSocket's",
            )
        )
    if wanted("idle"):
        scenarios.append(
            await run_idle(
                max(100, round(5000 * scale)), processes, 90 * max(scale, 0.3), env, args.server
            )
        )
    if wanted("many"):
        scenarios.append(
            await run_idle(
                max(200, round(10000 * scale)),
                processes,
                120 * max(scale, 0.3),
                env,
                workers=2,
                redis_url=redis_url,
                hold=22.0 * max(scale, 0.4),
                behind_nginx=behind_nginx,
            )
        )
    if wanted("routing"):
        scenarios.append(await run_routing(scale, processes, redis_url, env))
    profile_text = ""
    shares: dict[str, float] = {}
    skipped: list[str] = []

    def in_budget(key: str, needs: float) -> bool:
        """The last two scenarios explain the others; they give way to the time limit."""
        if only is not None or time.monotonic() - started + needs <= TIME_BUDGET_SECONDS:
            return True
        skipped.append(key)
        log(f"{key}: skipped, the run would exceed {TIME_BUDGET_SECONDS:.0f} s")
        return False

    if wanted("memory") and in_budget("memory", 35):
        scenarios.append(await run_memory(max(100, round(200 * scale)), env))
    if wanted("profile") and not args.no_profile and in_budget("profile", 35):
        out = Path(tempfile_dir()) / "worker.pyisession"
        prof = await run_load(
            "profile",
            "Profile: one worker under pyinstrument",
            lambda: Deployment(workers=1, name="profile", profile_to=out, extra_env=env),
            clients=clients,
            rooms=10,
            loads=scaled([12000], scale),
            hold=None,
            processes=processes,
            setup="as (a), worker 0 run under pyinstrument (slower than without it)",
            profile=out,
        )
        scenarios.append(prof)
        window = prof.extra.get("profile_window", [])
        if out.exists() and len(window) == 2:
            try:
                profile_text, shares = render_profile(out, window)
            except Exception as exc:
                profile_text = f"(profile could not be rendered: {exc})"
        if os.environ.get("BENCH_KEEP_PROFILE"):
            log(f"profile session kept in {out}")
        else:
            shutil.rmtree(out.parent, ignore_errors=True)
    return {
        "machine": machine_facts(),
        "scale": scale,
        "processes": processes,
        "behind_nginx": behind_nginx,
        "seconds": time.monotonic() - started,
        "scenarios": [
            dataclasses.asdict(s) | {"highest_clean": s.highest_clean} for s in scenarios
        ],
        "skipped": skipped,
        "profile": profile_text,
        "profile_shares": shares,
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "env": env,
        "server": args.server,
    }


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The last results with the scenarios (and profile) of this run put in, each in the place
    its earlier result had (the page lists them in that order)."""
    keys = {s["key"] for s in new["scenarios"]}
    fresh = {s["key"]: s for s in new["scenarios"]}
    known = {s["key"] for s in old["scenarios"]}
    out = dict(old)
    out["scenarios"] = [fresh.get(s["key"], s) for s in old["scenarios"]] + [
        s for s in new["scenarios"] if s["key"] not in known
    ]
    if new.get("profile"):
        out["profile"], out["profile_shares"] = new["profile"], new["profile_shares"]
    out["skipped"] = [k for k in old.get("skipped", []) if k not in keys]
    out["merged"] = sorted({*old.get("merged", []), *keys})
    return out


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="chatsite-profile-")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="clients, loads and idle sockets")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument(
        "--only",
        default="",
        help="one-worker,two-core,two-pubsub,streams,idle,many,memory,profile,routing",
    )
    parser.add_argument("--direct", action="store_true", help="two workers without nginx")
    parser.add_argument(
        "--server",
        choices=["daphne", "uvicorn"],
        default="daphne",
        help="ASGI server of the one-worker and idle scenarios (uvicorn: if installed)",
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra worker setting"
    )
    parser.add_argument("--report-only", action="store_true", help="re-render the last results")
    parser.add_argument("--no-docs", action="store_true", help="write results JSON only")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace these scenarios in the last results instead of starting afresh",
    )
    args = parser.parse_args(argv)

    from . import report

    # `kill PID` (or a CI timeout) must still end the workers and clients we started.
    signal.signal(signal.SIGTERM, _interrupt)
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    if args.report_only:
        data = orjson.loads(latest.read_bytes())
    else:
        data = asyncio.run(run_all(args))
        if args.merge and latest.exists():
            data = merged(orjson.loads(latest.read_bytes()), data)
        latest.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        log(f"all scenarios took {data['seconds']:.0f}s; results in {latest.relative_to(ROOT)}")
    if not args.no_docs:
        written = report.write(data)
        for path in written:
            log(f"wrote {path.relative_to(ROOT)}")
    failed = [s["key"] for s in data["scenarios"] if s.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
