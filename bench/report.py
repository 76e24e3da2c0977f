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
        "- `make bench`: every scenario below, about four and a half minutes on this machine; "
        "`python -m bench.run --scale 0.2` runs a fifth of the clients, loads and idle sockets, "
        "`--only one-worker,idle` picks scenarios, `--env NAME=VALUE` sets a worker setting, "
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
        if s["key"] == "idle":
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
    idle = scenario(data, "idle")
    if idle and idle["extra"].get("sockets"):
        per = idle["extra"]["per_socket_bytes"]
        sockets = idle["extra"]["sockets"]
        rows.append(
            f"| ≤ 25 KB RSS per idle socket at {n(5000 * scale)} idle sockets | "
            f"{per / 1000:.1f} KB per socket at {n(sockets)} sockets | "
            f"{yes(per <= 25000 and sockets >= 5000 * scale)} |"
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
        '`{"type":"join","room":…}` (idle sockets are members already and join nothing). They '
        f"run in {data['processes']} client processes (asyncio, the `websockets` library's "
        "sans-I/O protocol, orjson); each room's sockets are split over every process and "
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
        "- **Idle sockets** open in batches on one worker; RSS per socket = (RSS with N "
        "sockets − RSS with one warm socket) / N, after a few seconds of quiet.",
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
        base = s["rss_idle_bytes"][0]
        out += [
            "",
            "| sockets | worker RSS MiB | per socket KB | batch connect s | handshake p99 ms |",
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
            f"Baseline (one warm socket): {mib(base)} MiB. After a few idle seconds: "
            f"{mib(s['rss_connected_bytes'][0])} MiB with {n(extra.get('sockets', 0))} sockets, "
            f"{n(extra.get('open_after_idle', 0))} still open: "
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


def findings(data: Data) -> list[str]:
    out = [
        "## Findings and recommended server changes",
        "",
        "What the figures above point to (the bench changes no server code):",
        "",
    ]
    shares = data.get("profile_shares") or {}
    one = scenario(data, "one-worker")
    held = one.get("hold") if one else None
    if held and held.get("server") and shares:
        wrapper = shares["session_send"] - shares["handle_reply"]
        us = per_delivery_us(held["server"], held["delivered_per_s"])
        out += [
            f"1. **A delivery costs the worker about {us:.0f} µs of CPU** (one "
            f"worker at {n(held['offered'])}/s, storing one message per "
            f"{n(held['expected'] / max(held['sent'], 1))} deliveries included), and most of "
            "the event loop's work is writing already-encoded frames. In the profile, "
            "`Hub.deliver` (rooms/fanout.py) takes "
            f"{shares['deliver']:.0f} % of the event loop, the consumer's own frame handling "
            f"(`ChatConsumer.receive`: parse, store, ack) {shares['receive']:.0f} %. Inside "
            "the delivery (shares of the event loop's time):",
            f"   - {wrapper:.0f} % is channels' `InstanceSessionWrapper.send` "
            "(channels/sessions.py:169), which `AuthMiddlewareStack` in chatsite/asgi.py puts "
            "around every `send`: it reads `scope['session'].modified` and `.is_empty()` through "
            "`LazyObject` on every frame, although the consumer never changes the session. "
            "**Recommended:** for `/ws/chat/`, resolve the session and user once at connect "
            "(channels' `CookieMiddleware` plus a small middleware in chatsite/ that sets "
            "`scope['session']` and `scope['user']`) and pass `send` through untouched.",
            f"   - {shares['handle_reply']:.0f} % is daphne → autobahn → Twisted, and Twisted's "
            "write path is the largest part of it: `FileDescriptor.write` never writes at once "
            "but registers the socket for writability (`startWriting` → `epoll_ctl`, "
            f"{shares['start_writing']:.0f} % of the loop), then sends on a later loop turn and "
            f"unregisters it (`doWrite` → `send()` + `epoll_ctl`, another "
            f"{shares['do_write']:.0f} % outside `Hub.deliver`): three system calls and two "
            "callbacks per delivery. autobahn also formats a debug-log argument (`hltype`) for "
            f"every frame with logging off ({shares['hltype']:.0f} %). None of this is in the "
            "site's code; an ASGI server on asyncio's own transports, which write at once and "
            "register only when the kernel buffer is full, avoids it. Measured by hand with the "
            "same site and bench (`pip install uvicorn`, then `python -m bench.run --only "
            "one-worker --server uvicorn --no-docs`; uvicorn 0.54, `--ws websockets-sansio`, "
            f"no uvloop): 29–30 µs per delivery instead of about {us:.0f}, every step up to "
            "20,000/s "
            "clean (p99 22 ms at 20,000/s) and 25,000/s clean in a separate run (p99 192 ms). "
            "**Recommended for evaluation:** run the workers under uvicorn. It changes what "
            "the stack facts say about daphne (close codes, the frame cap, SIGTERM handling "
            "that `Hub.drain` relies on), so the protocol and shutdown tests must pass on it "
            "before it replaces daphne.",
        ]
    twos = [
        s for s in (scenario(data, "two-core"), scenario(data, "two-pubsub")) if s and s["steps"]
    ]
    if twos:
        worst = max(
            (st for s in twos for st in s["steps"]),
            key=lambda st: (st.get("server") or {}).get("machine_cpu_percent", 0.0),
        )
        clean = [st for st in twos[0]["steps"] if st["clean"]] or twos[0]["steps"]
        first = clean[-1]
        nginx_us = per_delivery_us(first.get("proxy"), first["delivered_per_s"])
        client_us = per_delivery_us(first.get("clients"), first["delivered_per_s"])
        worker_us = per_delivery_us(first.get("server"), first["delivered_per_s"])
        out += [
            "2. **Two workers on two cores add no capacity.** At "
            f"{n(first['offered'])}/s (`{twos[0]['key'].split('-')[1]}` layer) the two "
            f"workers used {worker_us:.0f} µs per delivery "
            f"together, the client processes {client_us:.0f} µs"
            + (f", nginx {nginx_us:.0f} µs" if nginx_us else "")
            + ", plus Redis and PostgreSQL; at "
            f"{n(worst['offered'])}/s the machine was "
            f"{(worst.get('server') or {}).get('machine_cpu_percent', 0):.0f} % busy of 200 %. "
            "Every process of the test shares the same two cores, so a second worker only "
            "splits them further. The two-worker target needs more cores (or the clients on "
            "another machine); on this machine the figures say how the layers compare, not "
            "how far two workers scale.",
        ]
    memory = scenario(data, "memory")
    mem = (memory or {}).get("extra", {}).get("memory") if memory else None
    if mem:
        count = max(memory["extra"].get("sockets", 0), 1)
        lib = dict(mem["by_library"])

        def kb(*names: str) -> float:
            return sum(lib.get(name, 0) for name in names) / count / 1000

        own = sum(size for name, size in mem["by_library"] if "/" in name) / count / 1000
        lines = [
            f"`{line}` ({size / count / 1000:.2f} KB: "
            f"`{mem.get('sources', {}).get(line) or source_line(line)}`)"
            for line, size in mem["by_own_line"][:3]
        ]
        out += [
            f"3. **An idle socket holds {mem['total'] / count / 1000:.0f} KB of Python "
            f"objects**: daphne, Twisted and autobahn {kb('daphne', 'twisted', 'autobahn'):.1f} "
            f"KB (the protocol objects, the handshake's headers kept in three forms, daphne's "
            f"per-socket `asyncio.Queue`), channels {kb('channels'):.1f} KB (each middleware "
            "copies the scope; `await_many_dispatch` keeps tasks per socket), asyncio "
            f"{kb('asyncio'):.1f} KB, Django {kb('django'):.1f} KB (the decoded session and "
            f"the `User`), and the site's own code {own:.1f} KB, mostly "
            + ", ".join(lines)
            + ". **Recommended:** in rooms/consumers.py create the abuse-window deque on the "
            "first malformed frame, and keep room slugs → primary keys per socket instead of "
            "the `Room` instances of `selectors.memberships_of` (every socket of a room holds "
            "its own copy); a middleware stack that copies the scope once (item 1) saves "
            "another few KB. That still leaves about 30 KB: the ≤ 25 KB target needs fewer "
            "objects per socket in the server and in channels' consumer machinery, and a "
            "different server alone does not do it (measured by hand: 35.6 KB per idle socket "
            "under uvicorn at 5,000 sockets, the same as daphne).",
        ]
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
    reasons = {
        "core": (
            "`core` (`RedisChannelLayer`, the default) is the choice. With the per-worker hub "
            "(`rooms/fanout.py`) the layer carries one message per event per worker (queued "
            "events go in one `group_send`), so its cost does not grow with the room, and the "
            "delivery cost in the workers dominates either way. What differs is what happens "
            "when something goes wrong, and that favours `core`. Its messages wait in a Redis "
            "sorted set per worker channel, bounded by `capacity` (20,000 here) and `expiry`, "
            "so a worker that stalls or reconnects does not lose what was sent meanwhile, and "
            "Redis, not the worker, holds the backlog. "
            "`pubsub` sends one `PUBLISH` (one round trip instead of three: "
            "`ZREMRANGEBYSCORE`, `ZRANGE`, and the `ZADD` script), but a worker that is not "
            "subscribed at that instant (reconnecting after a Redis blip) loses the event for "
            "good, and a slow worker queues without bound in its own memory (stack fact 2: "
            "p99 of 12–15 s in the tutorial design). Worst, a Redis outage reaches the hub "
            "only with `core`, whose `receive` raises, and the hub answers by asking its "
            "sockets to resync (`Hub._resync_everyone`, close code 4012); `pubsub` reconnects "
            "inside the layer and the hub never learns that events were lost. Seen once while "
            "building this bench (2026-11-22, on this shared machine): another program "
            "restarted Redis during the `pubsub` run's 5,000/s step; 9,000 of 25,000 "
            "deliveries were lost and no socket was closed, so no client had a cue to resync."
        ),
        "pubsub": (
            "`pubsub` (`RedisPubSubChannelLayer`) measured better here: a broadcast is one "
            "`PUBLISH` round trip instead of three (`ZREMRANGEBYSCORE`, `ZRANGE`, and the "
            "`ZADD` script of `core`), and Redis pushes the event to each subscribed worker "
            "without a blocking pop. Its costs are the ones stack fact 2 names: no capacity "
            "(a slow worker queues without bound in its own memory) and no persistence (a "
            "worker not subscribed at that instant, for example while reconnecting after a "
            "Redis blip, misses the event; clients then resync by `seq`)."
        ),
    }
    return "\n".join(
        [
            LAYER_HEADING,
            "",
            "`CHATSITE_CHANNEL_LAYER` picks the channels-redis layer that carries room events "
            "between workers: `core` (`RedisChannelLayer`, the default) or `pubsub` "
            "(`RedisPubSubChannelLayer`). `make bench` runs the same two-worker scenario with "
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
            f"**Winner: `{winner}`.** " + reasons[winner],
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
