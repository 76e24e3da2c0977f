"""Turn a bench run (bench/results/latest.json) into docs/performance.md, its plot, and the
"Choosing the channel layer" and "Routing each room's events" sections of docs/scaling.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .server import ROOT

DOCS = ROOT / "docs"
PERFORMANCE = DOCS / "performance.md"
PLOT = DOCS / "performance-latency.png"
SCALING = DOCS / "scaling.md"
# A step during which other programs used more than this much CPU (% of a core) is flagged.
DISTURBED_PERCENT = 25

Data = dict[str, Any]


def write(data: Data) -> list[Path]:
    DOCS.mkdir(exist_ok=True)
    written = []
    if scenario(data, "one-worker"):
        if plot(data, PLOT):
            written.append(PLOT)
        text = PERFORMANCE.read_text()
        for name, lines in performance(data).items():
            text = splice(text, name, lines)
        PERFORMANCE.write_text(text)
        written.append(PERFORMANCE)
    text = SCALING.read_text()
    for name, lines in (("layers", layer_section(data)), ("routing", routing_section(data))):
        if lines:
            text = splice(text, name, lines)
    if text != SCALING.read_text():
        SCALING.write_text(text)
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


def performance(data: Data) -> dict[str, list[str]]:
    """The generated blocks of docs/performance.md, by marker name; the prose around them is
    the page's own (`splice`)."""
    results: list[str] = []
    for s in data["scenarios"]:
        if s["key"] in ("idle", "many"):
            results += idle_section(s)
        elif s["key"] == "memory":
            results += memory_section(s)
        elif s["key"] not in ("profile", "streams", "routing"):
            results += load_section(s)
    results += [
        "![Latency against offered load](performance-latency.png)",
        "",
        "*Left: p50 (dashed) and p99 (solid) delivery latency against offered load, log scale; "
        "the dotted lines mark 50 ms (the 10,000/s target) and 250 ms (the clean limit). "
        "Right: delivered against offered deliveries/s.*",
    ]
    return {
        "run": [
            f"The last run: `{data['command']}`, scale {data['scale']:g}, "
            f"{data['seconds']:.0f} s on {data['machine']['date']}."
            + (
                " Measured afterwards and merged in (`--merge`): "
                + ", ".join(f"`{key}`" for key in data["merged"])
                + "."
                if data.get("merged")
                else ""
            )
        ],
        "summary": summary(data),
        "method": method(data),
        "machine": machine(data),
        "results": results,
        "streams": streams_section(data),
        "profile": profile_section(data),
        "before-after": before_and_after(data),
        "left": what_is_left(data),
    }


def splice(text: str, name: str, lines: list[str]) -> str:
    """Replace what stands between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if begin not in text or end not in text:
        raise ValueError(f"the page has no {begin} … {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = "\n".join(lines).strip("\n")
    return f"{head}{begin}\n{body}\n{end}{tail}"


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
    rows += streams_summary(data)
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
        "- **Streams** (scenario g). A stream client reads `GET /chat/stream/` as the browser's "
        "EventSource would (chunked HTTP/1.1, Server-Sent Events, the same asyncio protocol "
        "style as the WebSocket client) and POSTs its frames to `/chat/stream/<ID>/` over a "
        "kept-alive connection of its own with the session cookie, a CSRF token and an "
        "`Origin`: one POST in flight per stream, frames queued meanwhile sent together as a "
        "JSON array. Its users are room members already (seeded so), so both halves of the "
        "scenario start without a round of joins. Latencies are kept by the receiving "
        "client's transport; *ack p99* is the sender's own way up (send → stored → `ack` on "
        "its connection) by the sending client's transport. PostgreSQL's CPU is the whole "
        "server's on this machine (whatever else uses it included), backends that ended during "
        "the step included.",
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


# --- the HTTP fallback beside WebSockets (scenario g) ---------------------------------------------

STREAM_P99_MS = 100.0  # the aim at STREAM_AIM_LOAD deliveries/s (× the run's scale)
STREAM_AIM_LOAD = 5000
STREAM_CPU_RATIO = 2.0  # a stream client's CPU per delivery, at most this × a WebSocket's


def costs_us(st: Data) -> dict[str, float]:
    """CPU µs per delivery of a step, by who spent it."""
    rate = st["delivered_per_s"]

    def of(percent: float | None) -> float:
        return (percent or 0.0) * 1e4 / rate if rate > 0 else 0.0

    out = {
        "workers": per_delivery_us(st.get("server"), rate),
        "nginx": per_delivery_us(st.get("proxy"), rate),
        "postgres": of(st.get("postgres_cpu_percent")),
        "redis": of(st.get("redis_cpu_percent")),
        "clients": per_delivery_us(st.get("clients"), rate),
    }
    out["server_side"] = out["workers"] + out["nginx"] + out["postgres"] + out["redis"]
    return out


def stream_share_us(ws: Data, mixed: Data, what: str = "workers") -> float | None:
    """What a delivery to a stream client cost in the mixed step, its share of the POSTs
    included: the mixed step's CPU less what its WebSocket deliveries cost at the
    WebSocket-only step's rate, over the stream deliveries."""
    stream = (mixed.get("transports") or {}).get("stream")
    if not stream or not mixed["delivered"]:
        return None
    share = stream["delivered"] / mixed["delivered"]
    if share <= 0:
        return None
    return (costs_us(mixed)[what] - (1 - share) * costs_us(ws)[what]) / share


def stream_pairs(s: Data) -> list[tuple[float, Data | None, Data | None]]:
    """(offered, WebSocket-only step, half-streams step) for each load offered."""
    ws_steps = ((s.get("extra") or {}).get("websocket") or {}).get("steps") or []
    loads = sorted({st["offered"] for st in ws_steps} | {st["offered"] for st in s["steps"]})

    def at(steps: list[Data], load: float) -> Data | None:
        return next((st for st in steps if abs(st["offered"] - load) < 1), None)

    return [(load, at(ws_steps, load), at(s["steps"], load)) for load in loads]


def stream_aim(data: Data, s: Data) -> tuple[Data | None, Data | None, bool]:
    """The steps at the aim's load and whether they met it."""
    load = STREAM_AIM_LOAD * data["scale"]
    ws, mixed = next(((w, m) for o, w, m in stream_pairs(s) if abs(o - load) < 1), (None, None))
    if ws is None or mixed is None:
        return ws, mixed, False
    ws_us = costs_us(ws)["workers"]
    own = stream_share_us(ws, mixed)
    ok = (
        mixed["clean"]
        and mixed["p99_ms"] <= STREAM_P99_MS
        and own is not None
        and ws_us > 0
        and own <= STREAM_CPU_RATIO * ws_us
    )
    return ws, mixed, ok


def streams_summary(data: Data) -> list[str]:
    s = scenario(data, "streams")
    if not s:
        return []
    ws, mixed, ok = stream_aim(data, s)
    aim = (
        f"| two workers, half the clients on HTTP streams: p99 ≤ {STREAM_P99_MS:.0f} ms at "
        f"{n(STREAM_AIM_LOAD * data['scale'])} deliveries/s, a stream client's worker CPU per "
        f"delivery within {STREAM_CPU_RATIO:g}× a WebSocket's |"
    )
    if ws is None or mixed is None:
        return [f"{aim} not measured{': ' + s['error'] if s.get('error') else ''} | **no** |"]
    ws_us, mixed_us = costs_us(ws)["workers"], costs_us(mixed)["workers"]
    own = stream_share_us(ws, mixed) or 0.0
    return [
        f"{aim} {n(mixed['delivered_per_s'])}/s delivered, p99 {ms(mixed['p99_ms'])} ms "
        f"(WebSockets only: {ms(ws['p99_ms'])} ms); {mixed_us:.0f} µs per delivery against "
        f"{ws_us:.0f} µs, so about {own:.0f} µs per delivery to a stream "
        f"({own / max(ws_us, 1e-9):.1f}×) | {yes(ok)} |"
    ]


def streams_section(data: Data) -> list[str]:
    """The block `bench:streams`: the same users on WebSockets only, then half on streams."""
    s = scenario(data, "streams")
    if not s:
        return ["Not measured in the last run (`python -m bench.run --only streams --merge`)."]
    extra = s.get("extra") or {}
    websocket = extra.get("websocket") or {}
    share = extra.get("stream_share", 0.5)
    part = "half" if share == 0.5 else f"{share:.0%}"
    pairs = stream_pairs(s)
    loads = " and ".join(f"{n(load)}/s" for load, _, _ in pairs) or "the same load"
    out = [
        f"### {s['title']}",
        "",
        f"{s['setup']}; {n(s['clients'])} clients in {s['rooms']} rooms, members already. First "
        f"all of them on WebSockets; then the same users with {part} of them, and {part} of "
        "each room's ten senders, on the HTTP fallback: `GET /chat/stream/` read as "
        "Server-Sent Events, frames POSTed to `/chat/stream/<ID>/`, where any worker may take "
        f"them. Each half is offered {loads}, seconds apart.",
        "",
        f"Target: {s['target']}.",
    ]
    if s.get("error"):
        out += ["", f"**The scenario failed:** `{s['error']}`."]
    connects = [("WebSockets only", websocket.get("connect")), ("half streams", s.get("connect"))]
    said = [
        f"{label} {n(c['opened'])} of {n(c['requested'])} in {c['seconds']:.1f} s (to `hello`: "
        f"p50 {ms(c['p50_ms'])} ms, p99 {ms(c['p99_ms'])} ms"
        f"{', failures ' + str(c['failed']) if c.get('failed') else ''})"
        for label, c in connects
        if c
    ]
    if said:
        out += ["", "Connect: " + "; ".join(said) + "."]
    if pairs:
        out += [
            "",
            "| offered/s | clients | delivered/s | lost | p50 / p99 ms | p99 ms to WebSockets / "
            "streams | ack p99 ms from WebSockets / streams | worker CPU % | µs per delivery: "
            "workers | nginx | PostgreSQL | Redis | clients | rest of machine % | clean |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
        ]
        disturbed = False
        for load, ws, mixed in pairs:
            for label, st in (("WebSockets only", ws), ("half streams", mixed)):
                if st is None:
                    continue
                by = st.get("transports") or {}
                w, h = by.get("websocket"), by.get("stream")
                to = f"{ms(w['p99_ms']) if w else '–'} / {ms(h['p99_ms']) if h else '–'}"
                up = f"{ms(w['ack_p99_ms']) if w else '–'} / {ms(h['ack_p99_ms']) if h else '–'}"
                c = costs_us(st)
                mark = " †" if st["other_cpu_percent"] > DISTURBED_PERCENT else ""
                disturbed = disturbed or bool(mark)
                out.append(
                    f"| {n(load)} | {label} | {n(st['delivered_per_s'])} | {n(st['lost'])} | "
                    f"{ms(st['p50_ms'])} / {ms(st['p99_ms'])} | {to} | {up} | "
                    f"{cpu(st.get('server'))} | **{c['workers']:.0f}** | {c['nginx']:.0f} | "
                    f"{c['postgres']:.0f} | {c['redis']:.0f} | {c['clients']:.0f} | "
                    f"{st['other_cpu_percent']:.0f}{mark} | {'yes' if st['clean'] else 'no'} |"
                )
        if disturbed:
            out += [
                "",
                f"† Other programs used more than {DISTURBED_PERCENT} % of a core during the "
                "step (this machine is shared): its latencies are less trustworthy.",
            ]
        problems = [
            f"{n(st['offered'])}/s ({label}): "
            + ", ".join(f"{what} {st[what]}" for what in ("errors", "closes") if st.get(what))
            for _, ws, mixed in pairs
            for label, st in (("WebSockets only", ws), ("half streams", mixed))
            if st is not None and (st.get("errors") or st.get("closes"))
        ]
        if problems:
            out += ["", "Also seen: " + "; ".join(problems) + "."]
        said = []
        for load, ws, mixed in pairs:
            if ws is None or mixed is None:
                continue
            a, b = costs_us(ws), costs_us(mixed)
            own = stream_share_us(ws, mixed)
            own_all = stream_share_us(ws, mixed, "server_side")
            if own is None or own_all is None or a["workers"] <= 0:
                continue
            said.append(
                f"- At {n(load)}/s the workers spent {a['workers']:.0f} µs of CPU per delivery "
                f"with WebSockets only and {b['workers']:.0f} µs with half the clients on streams "
                f"({b['workers'] / a['workers']:.1f}×): a delivery to a stream client, with its "
                f"share of the POSTs, cost about **{own:.0f} µs, {own / a['workers']:.1f}× a "
                f"WebSocket's**. With nginx, PostgreSQL and Redis: {a['server_side']:.0f} and "
                f"{b['server_side']:.0f} µs, about {own_all:.0f} µs per delivery to a stream "
                f"({own_all / max(a['server_side'], 1e-9):.1f}×)."
            )
        if said:
            out += ["", *said]
    out.append("")
    return out


def profile_section(data: Data) -> list[str]:
    prof = scenario(data, "profile")
    text = data.get("profile") or ""
    if not prof or not text:
        return []
    lines = [
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


def what_is_left(data: Data) -> list[str]:
    """What the run says is left to gain (the design itself is prose in the page)."""
    one = scenario(data, "one-worker")
    held = one.get("hold") if one else None
    us = per_delivery_us(held["server"], held["delivered_per_s"]) if held else 0.0
    out = [
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
    return out


# --- the plot -----------------------------------------------------------------------------------


def plot(data: Data, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [
        s
        for s in data["scenarios"]
        if s["steps"] and s["key"] not in ("profile", "streams", "routing")
    ]
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


def layer_section(data: Data) -> list[str]:
    """The layer comparison's block of docs/scaling.md (`bench:layers`)."""
    core = scenario(data, "two-core")
    pubsub = scenario(data, "two-pubsub")
    if not core or not pubsub or not core["steps"] or not pubsub["steps"]:
        return []
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
    return [
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
    ]


# --- docs/scaling.md: "Routing each room's events to the workers that need them" ----------------


def routing_section(data: Data) -> list[str]:
    """The routing comparison's block of docs/scaling.md (`bench:routing`): the same load with
    CHATSITE_ROUTING=broadcast and =rooms."""
    s = scenario(data, "routing")
    if not s:
        return []
    extra = s["extra"]
    modes = extra.get("modes") or {}
    if not all(mode in modes for mode in ("broadcast", "rooms")):
        return []
    rows = [
        "| `CHATSITE_ROUTING` | layer events received per worker/s (mean / max) | "
        "layer events per message | worker CPU µs per delivery | p50 / p99 ms | lost | "
        "other programs' CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("broadcast", "rooms"):
        m = modes[mode]
        st = m["step"]
        rows.append(
            f"| `{mode}` | {n(m['events_per_worker_per_s_mean'])} / "
            f"{n(m['events_per_worker_per_s_max'])} | {m['events_per_message']:.2f} | "
            f"{m['cpu_us_per_delivery']:.0f} | {ms(st['p50_ms'])} / {ms(st['p99_ms'])} | "
            f"{n(st['lost'])} of {n(st['expected'])} | "
            f"{st.get('other_cpu_percent') or 0.0:.0f} % of a core |"
        )
    b, r = modes["broadcast"], modes["rooms"]
    scale = data.get("scale", 1.0)
    other = max(m["step"].get("other_cpu_percent") or 0.0 for m in (b, r))
    events_ratio = (
        r["events_per_worker_per_s_mean"] / b["events_per_worker_per_s_mean"]
        if b["events_per_worker_per_s_mean"]
        else 0.0
    )
    cpu_ratio = (
        r["cpu_us_per_delivery"] / b["cpu_us_per_delivery"] if b["cpu_us_per_delivery"] else 0.0
    )
    redis = [m["step"].get("redis_cpu_percent") for m in (b, r)]
    publish = [m.get("redis_publish_per_s") for m in (b, r)]
    incidents = [
        f"Redis restarted during the `{mode}` half (not by the bench): its figures are suspect."
        for mode in ("broadcast", "rooms")
        if modes[mode].get("redis_restarted")
    ] + [
        f"During the `{mode}` half the workers closed {n(closed)} sockets with "
        f"{', '.join(f'`{code}`' for code in sorted(m['step']['closes']))}"
        + (
            " (resync: a hub that missed events, or stopped hearing its own beats)"
            if "4012" in m["step"]["closes"]
            else ""
        )
        + "; the bench does not reconnect them, so their deliveries count as lost."
        for mode, m in modes.items()
        if (closed := sum(m["step"].get("closes", {}).values()))
    ]
    lag = [m.get("publish_to_deliver_ms_mean") for m in (b, r)]
    return [
        "`CHATSITE_ROUTING=rooms` (the default) sends a room's events to the room's layer group, "
        "which a worker's hub joins only while it has a socket in the room; `broadcast` sends "
        "every event to every worker. `make bench-routing` runs the same load with each, on "
        f"fresh workers and a fresh database ({s['setup']}; {n(s['clients'])} sockets, one user "
        f"each: {n(extra['pairs'])} two-person rooms, every user in one, and "
        f"{n(extra['crowds'])} rooms of {n(extra['crowd_size'])}; "
        f"{extra['pair_rate']:g} messages/s into random two-person rooms and "
        f"{extra['crowd_rate']:g}/s into random rooms of {n(extra['crowd_size'])}, each by a "
        f"random member, for {extra['seconds']:g} s: {n(extra['offered'])} deliveries/s, half "
        f"in each kind of room" + (f"; scale {scale:g}" if scale != 1 else "") + "; run of "
        f"{extra.get('date') or data['machine']['date']} on a "
        f"{extra.get('cores') or data['machine']['cores']}-core machine shared with "
        f"other programs, which used up to {other:.0f} % of a core meanwhile). Layer events are "
        "counted by each worker (`chat_layer_events_received_total`, beats not included) and "
        "its CPU time read, before and after the window; rates are per second of sending:",
        "",
        *rows,
        "",
        f"With `rooms` each worker received {events_ratio:.2f}× the layer events it did with "
        f"`broadcast` ({r['events_per_message']:.2f} layer events per message sent instead of "
        f"{b['events_per_message']:.2f}), and the workers spent {cpu_ratio:.2f}× the CPU per "
        "delivery."
        + (
            f" Redis used {redis[0]:.0f} % of a core and ran {n(publish[0])} PUBLISH/s with "
            f"`broadcast`, {redis[1]:.0f} % and {n(publish[1])}/s with `rooms` (every client of "
            "that Redis counted: the messages, and each hub's numbered beat every 2 s; with "
            "`rooms` what a hub sends at once is one message per room, pipelined)."
            if None not in redis and None not in publish
            else ""
        )
        + (
            f" From a hub publishing a batch to a hub delivering it "
            f"(`chat_publish_to_deliver_seconds`) took {lag[0]:.1f} ms on average with "
            f"`broadcast` and {lag[1]:.1f} ms with `rooms`."
            if None not in lag
            else ""
        ),
        *(["", *incidents] if incidents else []),
    ]
