"""Turn a bench run (bench/results/latest.json) into docs/performance.md, its plot, and the
"Choosing the channel layer" section of docs/scaling.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .server import ROOT

DOCS = ROOT / "docs"
PERFORMANCE = DOCS / "performance.md"
PLOT = DOCS / "performance-latency.png"
SCALING = DOCS / "scaling.md"
LAYER_HEADING = "## Choosing the channel layer"
# A step during which other programs used more than this much CPU (% of a core) is flagged.
DISTURBED_PERCENT = 25

Data = dict[str, Any]


def write(data: Data) -> list[Path]:
    DOCS.mkdir(exist_ok=True)
    written = []
    if scenario(data, "one-worker"):
        if plot(data, PLOT):
            written.append(PLOT)
        PERFORMANCE.write_text(performance(data))
        written.append(PERFORMANCE)
    section = layer_section(data)
    if section:
        replace_section(SCALING, LAYER_HEADING, section)
        written.append(SCALING)
    return written


# --- small helpers ------------------------------------------------------------------------------


def scenario(data: Data, key: str) -> Data | None:
    return next((s for s in data["scenarios"] if s["key"] == key), None)


def n(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def cpu(usage: Data | None) -> str:
    if not usage:
        return "–"
    return " + ".join(f"{c:.0f}" for c in usage["cpu_percent"])


def yes(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def steps_of(s: Data) -> list[Data]:
    return list(s["steps"]) + ([s["hold"]] if s.get("hold") else [])


def step_at(s: Data | None, offered: float) -> Data | None:
    if s is None:
        return None
    held = s.get("hold")
    if held and abs(held["offered"] - offered) < 1:
        return held
    return next((st for st in s["steps"] if abs(st["offered"] - offered) < 1), None)


# --- docs/performance.md ------------------------------------------------------------------------


def performance(data: Data) -> str:
    scale = data["scale"]
    out = [
        "# Performance",
        "",
        "How fast the chat site fans messages out, measured by the load generator in `bench/`.",
        f"This file is written by `make bench` (`{data['command']}`, scale {scale:g}); the run "
        f"took {data['seconds']:.0f} s on {data['machine']['date']}. Raw results go to "
        "`bench/results/latest.json` (not committed); `python -m bench.run --report-only` "
        "renders them again.",
        "",
        "## Summary against the targets",
        "",
        *summary(data),
        "",
        "## Running it",
        "",
        "- `make bench`: the standard scenarios (one-worker, two-pubsub, many, then memory and "
        "profile as time allows), under five minutes; `make bench-layers` compares the two "
        "channel layers for docs/scaling.md. `python -m bench.run --scale 0.2` runs a fifth of "
        "the clients, loads and sockets, `--only one-worker,idle` picks scenarios (`--merge` "
        "puts them into the last results), `--env NAME=VALUE` sets a worker setting, "
        "`--direct` addresses two workers without nginx.",
        "- `python -m bench.loadgen --url ws://127.0.0.1:8011/ws/chat/ [--url …] [--pid PID] "
        "--clients 200 --rooms 4 --load 2000,5000`: the same clients against workers someone "
        "else started (one worker, several, or nginx); `--seed` creates the users with "
        "`bench.seed` from this environment's `DATABASE_URL` instead of signing each up.",
        "- `tests/bench/test_fanout_guard.py` (in `make test`): 200 sockets on one worker for "
        "three seconds; fails on any lost delivery.",
        "",
        "## Method",
        "",
        *method(data),
        "",
        "## Machine",
        "",
        *machine(data),
        "",
        "## Results",
        "",
    ]
    for s in data["scenarios"]:
        if s["key"] in ("idle", "many"):
            out += idle_section(s)
        elif s["key"] == "memory":
            out += memory_section(s)
        elif s["key"] != "profile":
            out += load_section(s)
    out += [
        "![Latency against offered load](performance-latency.png)",
        "",
        "*Left: p50 (dashed) and p99 (solid) delivery latency against offered load, log scale; "
        "the dotted lines mark 50 ms (the 10,000/s target) and 250 ms (the clean limit). "
        "Right: delivered against offered deliveries/s.*",
        "",
    ]
    out += profile_section(data)
    out += findings(data)
    return "\n".join(out).rstrip() + "\n"


def summary(data: Data) -> list[str]:
    rows = ["| target | measured | met |", "|---|---|---|"]
    one = scenario(data, "one-worker")
    scale = data["scale"]
    if one:
        best = one["highest_clean"]
        rows.append(
            f"| one worker, {n(one['clients'])} clients in {one['rooms']} rooms: highest clean "
            f"load ≥ {n(13000 * scale)}–{n(15000 * scale)} deliveries/s | {n(best)}/s "
            f"(steps: {', '.join(n(s['offered']) for s in one['steps'])}) | "
            f"{yes(best >= 13000 * scale)} |"
        )
        held = one.get("hold")
        if held:
            ok = held["lost"] == 0 and held["p99_ms"] <= 50 and held["expected"] > 0
            rows.append(
                f"| at {n(held['offered'])} deliveries/s (one worker, held "
                f"{held['duration']:.0f} s): zero loss and p99 ≤ 50 ms | lost "
                f"{n(held['lost'])} of {n(held['expected'])}, p99 {ms(held['p99_ms'])} ms | "
                f"{yes(ok)} |"
            )
    two = [s for s in (scenario(data, "two-core"), scenario(data, "two-pubsub")) if s]
    if two:
        best = max(s["highest_clean"] for s in two)
        measured = "; ".join(
            f"{n(s['highest_clean'])}/s with the `{s['key'].split('-')[1]}` layer" for s in two
        )
        rows.append(
            f"| two workers: ≥ {n(20000 * scale)} clean deliveries/s | {measured} | "
            f"{yes(best >= 20000 * scale)} |"
        )
    for idle in (scenario(data, "idle"), scenario(data, "many")):
        if not idle or not idle["extra"].get("sockets"):
            continue
        per = idle["extra"]["per_socket_bytes"]
        sockets = idle["extra"]["sockets"]
        per_worker = sockets / idle["workers"]
        rows.append(
            f"| ≤ 25 KB RSS per idle socket at {n(5000 * scale)} idle sockets | "
            f"{per / 1000:.1f} KB per socket at {n(per_worker)} sockets per worker "
            f"({idle['workers']} worker{'s' if idle['workers'] > 1 else ''}) | "
            f"{yes(per <= 25000 and per_worker >= 5000 * scale)} |"
        )
    many = scenario(data, "many")
    if many and many["extra"].get("sockets") is not None:
        extra = many["extra"]
        ok = extra["sockets"] >= 10000 * scale and extra.get("closed_while_idle", 1) == 0
        rows.append(
            f"| {n(10000 * scale)} concurrent sockets across two workers with heartbeats "
            f"running | {n(extra['sockets'])} open, {n(extra.get('closed_while_idle', 0))} "
            f"closed while held {extra.get('held_seconds', 0):.0f} s | {yes(ok)} |"
        )
    failed = [s for s in data["scenarios"] if s.get("error")]
    lines = rows
    if data.get("skipped"):
        lines += [
            "",
            "Skipped to keep the run under five minutes: "
            + ", ".join(f"`{key}`" for key in data["skipped"])
            + " (run them with `--only`).",
        ]
    if failed:
        lines += ["", *(f"- Scenario `{s['key']}` failed: {s['error']}" for s in failed)]
    return lines


def method(data: Data) -> list[str]:
    env = " ".join(f"{k}={v}" for k, v in (data.get("env") or {}).items())
    nginx = (
        "behind nginx, started by `deploy/cluster.py` with production settings (debug off, "
        "collectstatic), the load generator addressing nginx only"
        if data["behind_nginx"]
        else "addressed directly, each room's sockets split evenly across the workers"
    )
    return [
        "- **Fresh site per scenario.** Each scenario starts its own daphne worker(s) "
        "(`bench/server.py`) on a fresh database (a new SQLite file, or a PostgreSQL database "
        "created for the run and dropped after it) and, where Redis is used, a unique "
        "`CHATSITE_LAYER_PREFIX` whose keys are deleted afterwards. Every message is stored in "
        "the database before it is broadcast, as in production. The workers run with "
        "`CHATSITE_RATE_PER_SECOND`/`CHATSITE_RATE_BURST` raised (the load is far above 5 "
        "messages/s per user) and `DJANGO_LOG_LEVEL=WARNING`; everything else is the default "
        "configuration" + (f" plus `{env}`" if env else "") + ". Every process the bench starts — "
        "workers, nginx, client processes — is ended by its PID, also after an error.",
        f"- **Two workers** are {nginx}.",
        "- **Users.** The room owner and five more users sign up over HTTP as a browser does "
        "(GET `/accounts/signup/` for the CSRF token, POST the form, keep the session cookie); "
        "the owner creates the rooms with POST `/rooms/new/`. A sign-up costs one PBKDF2 hash "
        "(about 0.2 s of server CPU here), so the other users are created straight in the "
        "database with their sessions (`python -m bench.seed`).",
        "- **Clients.** Sockets open `/ws/chat/` with the user's session cookie and "
        "`Origin: http://127.0.0.1:<port>`, wait for `hello`, and send "
        '`{"type":"join","room":…}` (idle sockets are members already and join nothing). Each '
        "client process opens up to 500 sockets at once, a crowd the workers admit in turn "
        "(`chatsite/server/crowds.py`), so connect times are those of a crowd. They "
        f"run in {data['processes']} client processes (asyncio on uvloop, the "
        "`websockets` library's sans-I/O protocol, orjson: about a third less client CPU than "
        "on asyncio's own loop); each room's sockets are split over every process and "
        "every target URL. Ten sockets per room send.",
        "- **Load.** An offered load of *D* deliveries/s in rooms of *m* sockets is *D/m* "
        "messages/s, sent open-loop (at fixed times, without waiting for acks) with a `ref` of "
        "`b<step>.<process>.<n>.<send time in ns>`. The sender's own socket receives the "
        "message too, so each message should reach all *m* sockets of its room. Each step "
        f"sends for {5:.0f} s and then waits up to {3:.0f} s for the last deliveries.",
        "- **Deliveries and loss.** Every `message` event a socket receives is a delivery. "
        "Expected = for each message acked (or delivered at all), the number of sockets that "
        "joined its room; lost = expected − delivered. Latency = receive time − the send time "
        "in the `ref` (CLOCK_MONOTONIC, shared by every process of the machine). A step is "
        "**clean** when nothing is lost, every send is acked without error, and p99 < 250 ms.",
        "- **Server figures.** psutil on the worker PIDs: CPU over the step (100 % = one core; "
        "one figure per worker) and RSS. Redis CPU comes from `INFO cpu`, nginx CPU from its "
        "processes. *Rest of machine* is what every other process used meanwhile: PostgreSQL, "
        "and other programs — this machine is shared, so a high figure there marks a disturbed "
        "step.",
        "- **Idle sockets** open in batches; RSS per socket = (RSS of the workers with N "
        "sockets − their RSS with one warm socket) / N, after a few seconds of quiet. The "
        "`many` scenario then holds them through daphne's pings (every 20 s) and the presence "
        "heartbeat (every 10 s) and counts every socket the server closed meanwhile.",
    ]


def machine(data: Data) -> list[str]:
    m = data["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return [
        f"- CPU: {m['cores']} × {m['cpu']}; {m['memory_gib']} GiB memory; Linux {m['kernel']}.",
        f"- Python {m['python']}; {packages}.",
        f"- Redis {m.get('redis', '?')}, PostgreSQL {m.get('postgresql', '?')}, nginx "
        f"{m.get('nginx', '–')}; all on the same machine, over loopback.",
        "- Load generator, workers, Redis, PostgreSQL and nginx share the same two cores, so "
        "client CPU is server CPU lost: the figures are a floor for a machine with dedicated "
        "clients. Load average before the run: "
        + ", ".join(f"{x:.2f}" for x in m["load_average_before"])
        + ".",
        "- The machine's speed varies from hour to hour: with the same delivery path, one "
        "worker held at 10,000/s used 27 % of a core on 2026-12-02 at 21:29 UTC and 50 % on "
        "2026-12-03 at 08:29 UTC. Only runs made side by side compare.",
    ]


def load_section(s: Data) -> list[str]:
    out = [
        f"### {s['title']}",
        "",
        f"{s['setup']}; {n(s['clients'])} clients in {s['rooms']} rooms.",
    ]
    if s.get("target"):
        out += ["", f"Target: {s['target']}."]
    if s.get("error"):
        out += ["", f"**The scenario failed:** `{s['error']}`."]
    c = s.get("connect") or {}
    if c:
        idle = s.get("rss_idle_bytes") or []
        conn = s.get("rss_connected_bytes") or []
        per = (sum(conn) - sum(idle)) / max(c.get("opened", 0), 1) / 1000 if idle and conn else 0.0
        out += [
            "",
            f"Connect: {n(c['opened'])} of {n(c['requested'])} sockets in {c['seconds']:.1f} s "
            f"(handshake to `hello`: p50 {ms(c['p50_ms'])} ms, p99 {ms(c['p99_ms'])} ms"
            f"{', failures ' + str(c['failed']) if c.get('failed') else ''}); joins took "
            f"{s['join_seconds']:.1f} s. Worker RSS "
            + ", ".join(f"{mib(a)} → {mib(b)} MiB" for a, b in zip(idle, conn, strict=False))
            + f" ({per:.1f} KB per joined socket).",
        ]
    rows = steps_of(s)
    if rows:
        redis = any(st.get("redis_cpu_percent") is not None for st in rows)
        proxy = any(st.get("proxy") for st in rows)
        head = "| offered/s | msgs/s | delivered/s | expected | lost | p50 ms | p95 ms | p99 ms "
        head += "| max ms | worker CPU % | client CPU % |"
        sep = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        if redis:
            head += " Redis CPU % |"
            sep += "---:|"
        if proxy:
            head += " nginx CPU % |"
            sep += "---:|"
        head += " rest of machine % | machine % | clean |"
        sep += "---:|---:|:---:|"
        out += ["", head, sep]
        for st in rows:
            rate = st["sent"] / st["duration"]
            row = (
                f"| {n(st['offered'])}{' (held)' if st is s.get('hold') else ''} | {rate:,.0f} | "
                f"{n(st['delivered_per_s'])} | {n(st['expected'])} | {n(st['lost'])} | "
                f"{ms(st['p50_ms'])} | {ms(st['p95_ms'])} | {ms(st['p99_ms'])} | "
                f"{ms(st['max_ms'])} | {cpu(st.get('server'))} | {cpu(st.get('clients'))} |"
            )
            if redis:
                r = st.get("redis_cpu_percent")
                row += f" {r:.0f} |" if r is not None else " – |"
            if proxy:
                p = st.get("proxy")
                row += f" {p and sum(p['cpu_percent']):.0f} |" if p else " – |"
            machine = (st.get("server") or {}).get("machine_cpu_percent", 0.0)
            mark = " †" if st["other_cpu_percent"] > DISTURBED_PERCENT else ""
            row += (
                f" {st['other_cpu_percent']:.0f}{mark} | {machine:.0f} | "
                f"{'yes' if st['clean'] else 'no'} |"
            )
            out.append(row)
        if any(st.get("redis_restarted") for st in rows) or s["extra"].get("redis_restarts"):
            restarts = s["extra"].get("redis_restarts") or []
            out += [
                "",
                "‡ Another program restarted the shared Redis during "
                + (
                    ", ".join(
                        f"the {n(st['offered'])}/s step (lost {n(st['lost'])} of "
                        f"{n(st['expected'])})"
                        for st in restarts
                    )
                    or "a step"
                )
                + "; the bench measured the step again (the row above).",
            ]
        if any(st["other_cpu_percent"] > DISTURBED_PERCENT for st in rows):
            out += [
                "",
                f"† Other programs used more than {DISTURBED_PERCENT} % of a core during the "
                "step (this machine is shared): its latencies are less trustworthy.",
            ]
        problems = [
            f"{n(st['offered'])}/s: errors {st['errors']}" for st in rows if st["errors"]
        ] + [f"{n(st['offered'])}/s: closed {st['closes']}" for st in rows if st["closes"]]
        if problems:
            out += ["", "Also seen: " + "; ".join(problems) + "."]
        out += ["", f"Highest clean load: **{n(s['highest_clean'])} deliveries/s**."]
    out.append("")
    return out


def idle_section(s: Data) -> list[str]:
    out = [
        f"### {s['title']}",
        "",
        f"{s['setup']}; target {n(s['clients'])} sockets, members of {s['rooms']} rooms of 100.",
    ]
    if s.get("error"):
        out += ["", f"**The scenario failed:** `{s['error']}`."]
    extra = s.get("extra") or {}
    batches = extra.get("batches") or []
    if batches:
        base = sum(s["rss_idle_bytes"])
        out += [
            "",
            "| sockets | workers' RSS MiB | per socket KB | batch connect s | handshake p99 ms |",
            "|---:|---:|---:|---:|---:|",
        ]
        for b in batches:
            per = (b["rss_bytes"] - base) / max(b["sockets"], 1) / 1000
            out.append(
                f"| {n(b['sockets'])} | {mib(b['rss_bytes'])} | {per:.1f} | "
                f"{b['connect_seconds']:.1f} | {ms(b['p99_ms'])} |"
            )
        out += [
            "",
            f"Baseline (one warm socket): {mib(base)} MiB. After "
            f"{extra.get('held_seconds', 3):.0f} idle seconds: "
            f"{mib(sum(s['rss_connected_bytes']))} MiB with {n(extra.get('sockets', 0))} "
            f"sockets, {n(extra.get('open_after_idle', 0))} still open, "
            f"{n(extra.get('closed_while_idle', 0))} closed by the server meanwhile: "
            f"**{extra.get('per_socket_bytes', 0) / 1000:.1f} KB per idle socket**.",
        ]
        if extra.get("stopped"):
            out += ["", f"Stopped early: {extra['stopped']}."]
    out.append("")
    return out


def memory_section(s: Data) -> list[str]:
    out = [f"### {s['title']}", ""]
    if s.get("error"):
        return [*out, f"**The scenario failed:** `{s['error']}`.", ""]
    extra = s.get("extra") or {}
    memory = extra.get("memory") or {}
    count = max(extra.get("sockets", 0), 1)
    if not memory:
        return []
    out += [
        f"{s['setup']}: tracing starts with one warm socket open; then {n(count)} idle sockets "
        "connect, and what they left allocated is grouped by the library of the innermost "
        f"frame. Traced Python memory: **{memory['total'] / count / 1000:.1f} KB per socket** "
        "(RSS adds the allocator's slack).",
        "",
        "| library | KB per socket |",
        "|---|---:|",
        *(
            f"| {name} | {size / count / 1000:.2f} |"
            for name, size in memory["by_library"][:12]
            if size > 0
        ),
        "",
        "The lines that allocated most (innermost frame outside asyncio/collections):",
        "",
        "| line | KB per socket |",
        "|---|---:|",
        *(f"| `{line}` | {size / count / 1000:.2f} |" for line, size in memory["by_line"][:15]),
        "",
        "The site's own code (innermost frame in rooms/, chatsite/, accounts/):",
        "",
        "| line | code | KB per socket |",
        "|---|---|---:|",
        *(
            f"| `{line}` | `{memory.get('sources', {}).get(line) or source_line(line)}` | "
            f"{size / count / 1000:.2f} |"
            for line, size in memory["by_own_line"][:8]
        ),
        "",
    ]
    return out


def profile_section(data: Data) -> list[str]:
    prof = scenario(data, "profile")
    text = data.get("profile") or ""
    if not prof or not text:
        return []
    lines = [
        "## Where the time goes",
        "",
        "One worker as in (a), run under pyinstrument (`pyinstrument -r pyisession daphne …`), "
        "cut to the load steps ("
        + ", ".join(
            f"{n(st['offered'])}/s: {n(st['delivered_per_s'])} delivered/s, "
            f"p99 {ms(st['p99_ms'])} ms"
            for st in prof["steps"]
        )
        + "; the profiler itself slows the worker). First the functions with the most *self* "
        "time, then the call tree down to 3 %. Only the main thread (the event loop) is "
        "sampled; the database work runs in channels' sync thread. pyinstrument samples wall "
        "time, so `[self] asyncio/base_events.py` is time charged to the loop between callbacks, "
        "including waits for the GIL while that thread runs Python code.",
        "",
        "```text",
        text.rstrip(),
        "```",
        "",
    ]
    return lines


def per_delivery_us(usage: Data | None, delivered_per_s: float) -> float:
    """CPU µs per delivery: `usage` summed over its processes."""
    if not usage or delivered_per_s <= 0:
        return 0.0
    return sum(usage["cpu_percent"]) * 1e4 / delivered_per_s


def source_line(where: str) -> str:
    """The code at `rooms/consumers.py:56`, for the reader."""
    import linecache

    path, _, line = where.rpartition(":")
    return linecache.getline(str(ROOT / path), int(line or 0)).strip()


BASELINE = ROOT / "bench" / "baseline.json"


def before_and_after(data: Data) -> list[str]:
    """This run beside bench/baseline.json: the first complete version, measured on the same
    machine before the changes of the design section below."""
    if not BASELINE.exists():
        return []
    import json

    base = json.loads(BASELINE.read_text())
    rows = ["| measure | before | now |", "|---|---:|---:|"]
    one, one0 = scenario(data, "one-worker"), base["scenarios"].get("one-worker")
    if one and one0:
        for load in (5000, 10000):
            then, now = step_at(one0, load), step_at(one, load)
            if then and now:
                rows.append(
                    f"| one worker at {n(load)}/s: worker CPU (% of a core) / p99 ms | "
                    f"{cpu(then.get('server') or {'cpu_percent': then['server_cpu_percent']})} / "
                    f"{ms(then['p99_ms'])} | {cpu(now.get('server'))} / {ms(now['p99_ms'])} |"
                )
        rows.append(
            f"| one worker: highest clean load | {n(one0['highest_clean'])}/s | "
            f"{n(one['highest_clean'])}/s |"
        )
    # The baseline ran the `core` layer, the default then; now the default is `pubsub`.
    two = scenario(data, "two-pubsub") or scenario(data, "two-core")
    two0 = base["scenarios"].get("two-core")
    if two and two0:
        then, now = step_at(two0, 10000), step_at(two, 10000)
        if then and now:
            rows.append(
                "| two workers behind nginx (the default layer) at 10,000/s: delivered/s, "
                "p99 ms | "
                f"{n(then['delivered_per_s'])}, {ms(then['p99_ms'])} | "
                f"{n(now['delivered_per_s'])}, {ms(now['p99_ms'])} |"
            )
    idle0 = base["scenarios"].get("idle")
    idle = scenario(data, "idle") or scenario(data, "many")
    if idle0 and idle and idle["extra"].get("per_socket_bytes"):
        rows.append(
            f"| RSS per idle socket | {idle0['per_socket_bytes'] / 1000:.1f} KB | "
            f"{idle['extra']['per_socket_bytes'] / 1000:.1f} KB |"
        )
    return [
        f"Before = commit {base['commit']} (the first complete version), measured on this "
        f"machine on {base['date']} with the same bench; now = the run above. Only runs made "
        "side by side compare: this machine is shared, and the same code measured "
        "noticeably faster on other days.",
        "",
        *rows,
        "",
    ]


def findings(data: Data) -> list[str]:
    shares = data.get("profile_shares") or {}
    one = scenario(data, "one-worker")
    held = one.get("hold") if one else None
    us = per_delivery_us(held["server"], held["delivered_per_s"]) if held else 0.0
    out = [
        "## The design, and what it bought",
        "",
        *before_and_after(data),
        "What the site does to fan out, each part chosen by profiling (the section above) and "
        "kept because the bench said so:",
        "",
        "1. **Per-worker fan-out** (`rooms/fanout.py`). The Redis channel layer stays the "
        "broadcast between workers, but its only member per worker is the worker's hub, not "
        "each socket: a stored message costs one `group_send` (queued events travel together "
        "in one), the frame is JSON-encoded once (orjson), and the hub writes that string to "
        "each local socket that may see the room. The per-connection rules stay per "
        "connection in the hub's index: typing skips the typist's sockets, a socket is "
        "subscribed only to its rooms, `leave` unsubscribes every tab, deactivation and "
        "sign-out close the user's sockets on every worker. No query and no encoding per "
        "recipient.",
        "2. **Each broadcast framed once** (`chatsite/server/prepared_frames.py`). An ASGI "
        "`websocket.send` per recipient cost daphne and autobahn a dispatch, a UTF-8 encode, "
        "the WebSocket framing and two debug log calls whose arguments are built even with "
        "debug logging off: about a third of the loop in the profile before this step. The hub "
        "now frames an event once (autobahn's `PreparedMessage`, its broadcast API) and hands "
        "the bytes to each open socket's transport; a socket that is not open yet, uses "
        "compression or runs under another server takes the ASGI path. Measured side by side: "
        "one worker at 10,000/s went from 52 % to 47 % of a core, and its highest clean load "
        "from 20,000/s to 30,000/s (runs minutes apart; on this shared machine the same code "
        "measured 20,000–30,000/s over the day).",
        "3. **Writes at the end of the loop's turn** (`chatsite/server/batched_writes.py`). "
        "Twisted buffers every write, registers the socket with epoll, sends on a later turn and "
        "unregisters it: three system calls and two callbacks per frame, about 45 % of the "
        "worker's event loop in the first profile. Now a write to an idle connection schedules "
        "one flush at the end of the turn, which sends every frame written to that socket "
        "meanwhile in one `send()`; only what the kernel refuses goes through epoll. (Sending "
        "each frame at once, tried first, costs one system call and one packet per frame and "
        "did no better behind nginx.)"
        + (
            f" In the profile the flush is {shares['flush']:.0f} % of the loop."
            if shares.get("flush")
            else ""
        ),
        "4. **The user once per socket** (`chatsite/websocket_auth.py`). channels' "
        "`AuthMiddlewareStack` wraps every `send` to save a changed session (10 % of the loop "
        "in the first profile); the site resolves the user and the session key at the "
        "handshake and leaves `send` alone. It reads the session from the database even with "
        "`cached_db`: Django's cache handles are per async context, so every socket opened a "
        "Redis connection of its own and kept it, and 10,000 sockets ran Redis out of "
        "clients.",
        "5. **A lean consumer** (`ChatConsumer.__call__`): no channel-layer channel, no task "
        "per socket to await it, no database-thread hop per frame to close old connections "
        "(every query goes through `database_sync_to_async`, which does it anyway).",
        "6. **Less per idle socket**: the socket keeps a `User` with the five fields it uses, "
        "one shared `Room` instance per room and worker, a list of its rooms, and no "
        "abuse-window deque until a first malformed frame. Once it is open, "
        "`chatsite/server/lean_sockets.py` lets go of what daphne kept of the handshake: the HTTP "
        "channel it was upgraded from (still registered as the transport's producer, and with "
        "it the request, its headers and buffers), the raw and parsed handshake in autobahn's "
        "and daphne's protocol objects, and two never-used deques and an event of daphne's "
        "per-socket queue. Measured side by side: traced memory per idle socket 24.9 → "
        "17.3 KB, RSS per idle socket at 5,000 sockets 27.2 → 18.4 KB.",
        "7. **The cheaper layer, made safe** (`rooms/fanout.py`, docs/scaling.md). "
        "`RedisPubSubChannelLayer` costs one `PUBLISH` per event where `RedisChannelLayer` "
        "costs a dozen Redis commands across the workers, but it loses events without a word "
        "when a subscription lapses. Every hub now numbers its broadcasts and beats every 2 s; "
        "a hub that sees a number skipped, or stops hearing itself, asks its "
        "sockets to resync (4012). With that, `pubsub` is the default. Measured side by side "
        "(two workers behind nginx, runs a minute apart): highest clean load 15,000/s with "
        "`core`, 20,000/s with `pubsub`, and at 15,000/s the workers used 82 % of a core "
        "together with `core`, 66 % with `pubsub`.",
        "8. **A message stored in one statement on PostgreSQL** (`rooms/services.py`). The "
        "seq, the author's read mark and the insert are one autocommit statement: two round "
        "trips per message instead of six (health check, `BEGIN`, seq, read mark, insert, "
        "`COMMIT`). Under load each round trip waits for a core, and a worker's one database "
        "thread queued the messages behind them: two workers at 15,000/s went from p99 1.6 s "
        "to 0.45 s (`core` layer, runs minutes apart). The health check is left out too "
        "while a connection is busy (`chatsite/postgresql/base.py`): Django's "
        "`CONN_HEALTH_CHECKS` sends `SELECT 1` at the start of every request, and channels "
        "makes every frame's queries a request, so it cost a round trip per message and a "
        "third of the database thread's time in a crowd of sockets connecting. Now a "
        "connection used less than a second ago counts as checked (measured one post at a "
        "time: 490 → 430 µs of PostgreSQL CPU, 370 → 260 µs of the worker's).",
        "9. **Crowds admitted in turn** (`chatsite/server/crowds.py`). Sockets arrive in crowds: a "
        "restarted worker's, a drained worker's (4012), the whole site's after a resync. "
        "Opened at the same moment (2026-12-03, this machine), 1,000 sockets took 28 s to get "
        "`hello` from one worker: Twisted listens with a queue of 50 and the kernel dropped "
        "the rest of the SYNs, retried after 1, 3, 7 s. With a queue of 4,096: 3.6 s. 2,500 "
        "at once got none in: every handshake in progress shared the worker, none finished "
        "within daphne's 5 s connect timeout, and the retries met the same queue. 5,000 "
        "through nginx got 5 in: nginx counted the dropped handshakes as worker failures and "
        "answered 502 with no live worker left. A worker now admits 32 handshakes at a time, "
        "in arrival order, and the connect timeout counts from admission, so a socket waits "
        "in line instead of failing: 2,500 of 2,500 on one worker (18 s), 5,000 of 5,000 "
        "through nginx onto two workers (23 s), and 10,000 of 10,000 (63 s) once nginx's "
        "`worker_connections` (8,192 per process, two connections per socket) was raised to "
        "32,768. Most of a crowd's time is presence: each user coming online is announced to "
        "their room. autobahn pretty-printed its configuration for a debug line on every "
        "connection, even with debug off: a tenth of a worker's time in a crowd, now lazy. "
        "The bench's clients open 500 sockets per process at once, so the connect figures "
        "above are crowds; `tests/server/test_crowds.py` opens 1,000 at once against a worker with "
        "a 3 s connect timeout.",
        "10. **Limits that keep one user from hurting others, off the hot path** "
        "(`chatsite/server/limits.py`, docs/security.md). A socket's output is bounded "
        "through Twisted's producer interface (the socket is told when its send buffer fills "
        "and empties; nothing is measured per write), its input by pausing the transport, its "
        "frames by a token bucket in the consumer, and a broadcast's way to the socket gains "
        "one comparison. Measured side by side on 2026-12-05, one worker, the commit before "
        "and after, runs interleaved: at 20,000/s 49 % and 47 % of a core before, 46 % and "
        "42 % after; held at 10,000/s 27 % and 23 % before, 24 % and 31 % after (the spread "
        "is the machine's); two workers at 20,000/s 26 % and 25 % each, before and after; RSS "
        "per idle socket 19.9 KB before, 19.5 KB after (the limits keep their state on the "
        "class until a socket needs it).",
        "11. **Not taken**: holding a busy worker's broadcasts for a fixed interval so that "
        "more travel in one `group_send` (two workers at 8,000/s: 10 ms saved nothing "
        "measurable, 25 ms about 12 % of the workers' CPU, for up to 25 ms more latency on "
        "every message); uvloop in the workers (daphne builds its own asyncio loop for "
        "Twisted when it is imported, before the site's code runs, and the contract's "
        "`daphne … chatsite.asgi:application` command leaves no place to choose another; the "
        "bench's client processes do run on uvloop).",
        "",
        "What is left:",
        "",
    ]
    if held:
        out.append(
            f"- A delivery costs the worker about **{us:.0f} µs** of CPU at "
            f"{n(held['offered'])}/s held, storing one message per "
            f"{n(held['expected'] / max(held['sent'], 1))} deliveries included; most of it is "
            "the system call and the event loop, not the site's code (profile above)."
        )
    twos = [s for s in (scenario(data, "two-pubsub"), scenario(data, "two-core")) if s]
    twos = [s for s in twos if s["steps"]]
    if twos:
        first = ([st for st in twos[0]["steps"] if st["clean"]] or twos[0]["steps"])[-1]
        worker_us = per_delivery_us(first.get("server"), first["delivered_per_s"])
        client_us = per_delivery_us(first.get("clients"), first["delivered_per_s"])
        nginx_us = per_delivery_us(first.get("proxy"), first["delivered_per_s"])
        out.append(
            "- **Two workers share two cores with everything else.** At "
            f"{n(first['offered'])}/s the two workers used {worker_us:.0f} µs per delivery "
            f"together, the client processes {client_us:.0f} µs"
            + (f", nginx {nginx_us:.0f} µs" if nginx_us else "")
            + ", plus Redis and PostgreSQL, all on the same two cores: every delivery also "
            "crosses nginx, and near 20,000/s the machine is full. Sampled with py-spy, a "
            "worker spends its CPU mostly in system calls: one `send()` per delivery, one "
            "`PUBLISH` per message and two PostgreSQL round trips per stored message. How much "
            "room is left depends on what else the machine runs: on a busier hour (the layer "
            "comparison of docs/scaling.md names one) the default layer was only just clean at "
            "20,000/s, p99 225 ms; more cores, or the clients and nginx elsewhere, give room."
        )
    memory = scenario(data, "memory")
    mem = (memory or {}).get("extra", {}).get("memory") if memory else None
    if mem:
        count = max(memory["extra"].get("sockets", 0), 1)
        lib = dict(mem["by_library"])

        def kb(*names: str) -> float:
            return sum(lib.get(name, 0) for name in names) / count / 1000

        own = sum(size for name, size in mem["by_library"] if "/" in name) / count / 1000
        out.append(
            f"- **An idle socket holds {mem['total'] / count / 1000:.1f} KB of Python "
            f"objects**, of which daphne, Twisted and autobahn "
            f"{kb('daphne', 'twisted', 'autobahn'):.1f} KB (the protocol objects, "
            "daphne's per-socket queue and task), asyncio "
            f"{kb('asyncio'):.1f} KB, channels {kb('channels'):.1f} KB, Django "
            f"{kb('django'):.1f} KB and the site's own code {own:.1f} KB; RSS adds the "
            "allocator's slack. The largest single part left is autobahn's protocol object "
            "itself: about a hundred attributes per socket, most of them copies of the "
            "factory's options."
        )
    return [*out, ""]


# --- the plot -----------------------------------------------------------------------------------


def plot(data: Data, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [s for s in data["scenarios"] if s["steps"] and s["key"] != "profile"]
    if not series:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    top = 0.0
    for color, s in zip(colors, series, strict=False):
        steps = sorted(s["steps"], key=lambda st: st["offered"])
        x = [st["offered"] for st in steps]
        top = max([top, *x])
        label = s["title"]
        left.plot(
            x, [max(st["p99_ms"], 0.1) for st in steps], "o-", color=color, label=f"{label} p99"
        )
        left.plot(x, [max(st["p50_ms"], 0.1) for st in steps], "s--", color=color, alpha=0.7)
        right.plot(x, [st["delivered_per_s"] for st in steps], "o-", color=color, label=label)
    left.set_yscale("log")
    left.axhline(50, color="grey", linestyle=":", linewidth=1)
    left.axhline(250, color="black", linestyle=":", linewidth=1)
    left.set_xlabel("offered deliveries/s")
    left.set_ylabel("delivery latency, ms (p99 solid, p50 dashed)")
    left.set_title("Latency")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)
    right.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="offered")
    right.set_xlabel("offered deliveries/s")
    right.set_ylabel("delivered deliveries/s")
    right.set_title("Throughput")
    right.legend(fontsize=8)
    right.grid(True, alpha=0.3)
    fig.suptitle(f"Chat fan-out, {data['machine']['cores']} cores ({data['machine']['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- docs/scaling.md: "Choosing the channel layer" ----------------------------------------------


def layer_section(data: Data) -> str:
    core = scenario(data, "two-core")
    pubsub = scenario(data, "two-pubsub")
    if not core or not pubsub or not core["steps"] or not pubsub["steps"]:
        return ""
    loads = sorted(
        {st["offered"] for st in core["steps"]} | {st["offered"] for st in pubsub["steps"]}
    )
    rows = [
        "| offered/s | core: delivered/s | core: p50 / p99 ms | core: lost | "
        "pubsub: delivered/s | pubsub: p50 / p99 ms | pubsub: lost |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in loads:
        cells = [n(load)]
        for s in (core, pubsub):
            st = step_at(s, load)
            if st is None:
                cells += ["–", "–", "–"]
            else:
                cells += [
                    n(st["delivered_per_s"]),
                    f"{ms(st['p50_ms'])} / {ms(st['p99_ms'])}",
                    n(st["lost"]),
                ]
        rows.append("| " + " | ".join(cells) + " |")
    best_core, best_pubsub = core["highest_clean"], pubsub["highest_clean"]
    common = [
        load
        for load in loads
        if (a := step_at(core, load)) and (b := step_at(pubsub, load)) and a["clean"] and b["clean"]
    ]
    if common:
        load = max(common)
        a, b = step_at(core, load), step_at(pubsub, load)
        assert a and b
        p99_note = (
            f"At {n(load)}/s, the highest load both handled cleanly, p99 was "
            f"{ms(a['p99_ms'])} ms with `core` and {ms(b['p99_ms'])} ms with `pubsub`."
        )
    else:
        a = b = None
        p99_note = "No load was clean with both layers."
    # One step apart is within this machine's run-to-run noise: only a clear margin counts.
    clearly = 1.25
    if best_pubsub > clearly * max(best_core, 1):
        winner, margin = "pubsub", True
    elif best_core > clearly * max(best_pubsub, 1):
        winner, margin = "core", True
    else:
        winner, margin = "core", False
    redis = {
        key: max((st.get("redis_cpu_percent") or 0.0 for st in s["steps"]), default=0.0)
        for key, s in (("core", core), ("pubsub", pubsub))
    }
    if best_core != best_pubsub:
        ahead = "core" if best_core > best_pubsub else "pubsub"
    elif a and b:
        ahead = "core" if a["p99_ms"] < b["p99_ms"] else "pubsub"
    else:
        ahead = ""
    verdict = (
        f"`{winner}` handled clearly more load cleanly in this run."
        if margin
        else (f"`{ahead}` was ahead in this run, " if ahead else "")
        + "but by no more than one load step, which is within this machine's run-to-run "
        "noise: the two layers measure alike."
    )
    incidents = []
    for key, s in (("core", core), ("pubsub", pubsub)):
        for st in s["extra"].get("redis_restarts") or []:
            told = sum(st["closes"].values())
            incidents.append(
                f"During this run another program restarted the shared Redis in the middle of "
                f"the `{key}` layer's {n(st['offered'])}/s step: {n(st['lost'])} of "
                f"{n(st['expected'])} deliveries were lost and "
                + (
                    f"{n(told)} sockets were closed (told to resync)."
                    if told
                    else "no socket was closed, so no client had a cue to resync."
                )
            )
    setup = core["setup"].replace("Redis `core` layer", "Redis")
    choice = (
        "`pubsub` (`RedisPubSubChannelLayer`) is the default. With the per-worker hub "
        "(`rooms/fanout.py`) either layer carries one message per event per worker, so its "
        "cost does not grow with the room; what differs is the cost per event. `pubsub` sends "
        "one `PUBLISH` and nothing per receive (Redis pushes the event to each subscribed "
        "worker), where `core` sends four commands per `group_send` (`ZREMRANGEBYSCORE`, "
        "`ZRANGE`, a pipelined expiry and the `ZADD` script) and four per worker per receive "
        "(a script, `BZPOPMIN`, `ZADD`, `ZREM`). On two cores shared with everything else "
        "that shows when the machine is busy: in runs a minute apart on 2026-12-02 at 19:00 "
        "UTC, `core` was clean up to 15,000/s and `pubsub` up to 20,000/s (p99 225 ms), the "
        "workers using 82 % and 66 % of a core together at 15,000/s. What `pubsub` "
        "gives up is that it can lose events without a word: a worker not subscribed at that "
        "instant (Redis restarted, or dropped it as a slow subscriber, and the layer "
        "reconnects by itself) misses them for good. Seen once while building this bench, "
        "before the hubs numbered their broadcasts (2026-11-22, on this shared machine): "
        "another program restarted Redis during the `pubsub` run's 5,000/s step; 9,000 of "
        "25,000 deliveries were lost and no socket was closed, so no client had a cue to "
        "resync. `core` loses silently too, only elsewhere: a Redis restart empties its "
        "groups (stack fact 3) and a full channel drops what does not fit (stack fact 2). "
        "So every hub numbers its broadcasts and sends a beat every `HUB_BEAT_SECONDS` (2 s) "
        "when idle: a hub that sees a number skipped, or stops hearing its own beats, closes "
        "its sockets with 4012 and their clients resume by `seq` "
        "(tests/rooms/test_numbering.py, on both layers, and the Redis restart of "
        "tests/cluster/test_faults.py). With loss detected on either layer, the cheaper one "
        "is the default; `CHATSITE_CHANNEL_LAYER=core` keeps the backlog in Redis instead "
        "of the worker's memory, for a worker that may stall for long."
    )
    return "\n".join(
        [
            LAYER_HEADING,
            "",
            "`CHATSITE_CHANNEL_LAYER` picks the channels-redis layer that carries room events "
            "between workers: `pubsub` (`RedisPubSubChannelLayer`, the default) or `core` "
            "(`RedisChannelLayer`). `make bench` runs the same two-worker scenario with "
            f"each ({setup}; {n(core['clients'])} clients in {core['rooms']} rooms, "
            f"offered load stepped; run of {data['machine']['date']}, details in "
            "[performance.md](performance.md)):",
            "",
            *rows,
            "",
            f"Highest clean load (nothing lost, p99 < 250 ms): `core` {n(best_core)}/s, "
            f"`pubsub` {n(best_pubsub)}/s. {p99_note} Redis used at most "
            f"{redis['core']:.0f} % of a core with `core` and {redis['pubsub']:.0f} % with "
            f"`pubsub`. {verdict}",
            *(["", *incidents] if incidents else []),
            "",
            "**Default: `pubsub`.** " + choice,
            "",
        ]
    )


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the section that starts with `heading` (up to the next `## `), or append it."""
    text = path.read_text() if path.exists() else "# Scaling\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body.rstrip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + body.rstrip() + "\n"
    path.write_text(text.rstrip() + "\n")
