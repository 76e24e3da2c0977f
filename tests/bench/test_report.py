"""`make bench` writes its figures into the blocks of docs/performance.md and nothing else: the
prose around them is the page's own and survives every run. The streams block sets each load
beside the same load on WebSockets only."""

from __future__ import annotations

import pytest

from bench import report
from bench.report import PERFORMANCE, SCALING, splice
from bench.run import merged

PAGE = """# Performance

Prose a person wrote.

<!-- bench:summary -->
| old | table |
<!-- /bench:summary -->

More prose, with a hand edit.
"""


def test_a_run_replaces_its_blocks_and_keeps_the_prose_around_them():
    page = splice(PAGE, "summary", ["| new | table |", "|---|---|"])
    assert page == PAGE.replace("| old | table |", "| new | table |\n|---|---|")
    assert splice(page, "summary", ["| new | table |", "|---|---|"]) == page


def test_a_page_without_the_block_is_refused_not_rewritten():
    with pytest.raises(ValueError, match="bench:results"):
        splice(PAGE, "results", ["x"])


def test_the_pages_have_every_block_a_run_writes():
    text = PERFORMANCE.read_text()
    for name in (
        "run",
        "summary",
        "method",
        "machine",
        "results",
        "streams",
        "profile",
        "before-after",
    ):
        assert f"<!-- bench:{name} -->" in text and f"<!-- /bench:{name} -->" in text
    assert "<!-- bench:layers -->" in SCALING.read_text()


def _step(offered, delivered_per_s, worker_cpu, p99, transports=None, clean=True):
    """A step record as bench.run keeps it, with what the streams block reads."""
    return {
        "offered": offered,
        "delivered_per_s": delivered_per_s,
        "delivered": int(delivered_per_s * 5),
        "lost": 0,
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        "server": {"cpu_percent": worker_cpu},
        "clients": {"cpu_percent": [5.0, 5.0]},
        "proxy": None,
        "redis_cpu_percent": 1.0,
        "postgres_cpu_percent": 2.0,
        "other_cpu_percent": 0.0,
        "errors": {},
        "closes": {},
        "clean": clean,
        "transports": transports or {},
    }


def _halves(stream_p99):
    return {
        "websocket": {"delivered": 12500, "p99_ms": 20.0, "ack_p99_ms": 5.0},
        "stream": {"delivered": 12500, "p99_ms": stream_p99, "ack_p99_ms": 30.0},
    }


def _run(mixed):
    websocket = _step(5000, 5000, [10.0, 10.0], 20.0)
    streams = {
        "key": "streams",
        "title": "(g) Two workers, half the clients on HTTP streams",
        "setup": "2 daphne workers",
        "target": "p99 ≤ 100 ms",
        "clients": 1000,
        "rooms": 10,
        "connect": {},
        "steps": [mixed],
        "extra": {"stream_share": 0.5, "websocket": {"steps": [websocket]}},
    }
    return {"scale": 1.0, "scenarios": [streams]}


def test_the_streams_block_sets_each_load_beside_websockets_only():
    # 40 µs per delivery with WebSockets only, 60 µs with half on streams: 80 µs per stream.
    data = _run(_step(5000, 5000, [15.0, 15.0], 60.0, _halves(60.0)))

    block = "\n".join(report.streams_section(data))
    summary = report.streams_summary(data)

    assert "| 5,000 | WebSockets only | 5,000 | 0 | 5.0 / 20.0 |" in block
    assert "| 5,000 | half streams | 5,000 | 0 | 15.0 / 60.0 | 20.0 / 60.0 | 5.0 / 30.0 |" in block
    assert "40 µs of CPU per delivery with WebSockets only and 60 µs" in block
    assert "about **80 µs, 2.0× a WebSocket's**" in block
    assert summary[0].endswith("(2.0×) | **yes** |")


def test_streams_miss_the_aim_on_latency_or_on_cpu():
    slow = _run(_step(5000, 5000, [15.0, 15.0], 150.0, _halves(150.0)))
    costly = _run(_step(5000, 5000, [20.0, 20.0], 60.0, _halves(60.0)))  # 120 µs: 3×

    assert report.streams_summary(slow)[0].endswith("| **no** |")
    assert report.streams_summary(costly)[0].endswith("(3.0×) | **no** |")


def test_a_run_without_the_streams_scenario_says_so():
    data = {"scale": 1.0, "scenarios": []}

    assert report.streams_summary(data) == []
    assert "--only streams --merge" in report.streams_section(data)[0]


def test_a_merged_scenario_keeps_its_place_on_the_page():
    old = {"scenarios": [{"key": "one-worker", "n": 1}, {"key": "streams", "n": 1}]}
    new = {"scenarios": [{"key": "one-worker", "n": 2}, {"key": "memory", "n": 2}]}

    out = merged(old, new)

    assert [(s["key"], s["n"]) for s in out["scenarios"]] == [
        ("one-worker", 2),
        ("streams", 1),
        ("memory", 2),
    ]
    assert out["merged"] == ["memory", "one-worker"]
