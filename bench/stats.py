"""Numbers about a run: latency percentiles, and CPU and memory of the processes under test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(fraction * len(sorted_values) + 0.5)) - 1))
    return float(sorted_values[rank])


@dataclass
class Usage:
    """What a set of processes used over an interval."""

    seconds: float
    cpu_percent: list[float]  # per process, 100 = one core
    rss_bytes: list[int]  # per process, at the end
    peak_rss_bytes: list[int]
    machine_cpu_percent: float = 0.0  # all cores together, 100 = one core

    @property
    def total_cpu_percent(self) -> float:
        return sum(self.cpu_percent)


@dataclass
class Sampler:
    """Samples RSS and CPU time of some PIDs in a thread; `usage()` reports since `start()`."""

    pids: list[int]
    interval: float = 0.25
    _procs: list[psutil.Process] = field(default_factory=list, init=False)
    _cpu0: list[float] = field(default_factory=list, init=False)
    _t0: float = field(default=0.0, init=False)
    _machine0: float = field(default=0.0, init=False)
    _peak: list[int] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        self._procs = [psutil.Process(pid) for pid in self.pids]
        self._cpu0 = [self._cpu(p) for p in self._procs]
        self._peak = [self._rss(p) for p in self._procs]
        self._t0 = time.monotonic()
        self._machine0 = _busy_seconds()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def usage(self) -> Usage:
        """Stop sampling and report CPU and memory since `start()`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        seconds = max(time.monotonic() - self._t0, 1e-9)
        cpu = [
            100.0 * (self._cpu(p) - c0) / seconds
            for p, c0 in zip(self._procs, self._cpu0, strict=True)
        ]
        rss = [self._rss(p) for p in self._procs]
        peak = [max(a, b) for a, b in zip(self._peak, rss, strict=True)]
        machine = 100.0 * (_busy_seconds() - self._machine0) / seconds
        return Usage(
            seconds=seconds,
            cpu_percent=cpu,
            rss_bytes=rss,
            peak_rss_bytes=peak,
            machine_cpu_percent=machine,
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for i, proc in enumerate(self._procs):
                self._peak[i] = max(self._peak[i], self._rss(proc))

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            return float(times.user + times.system)
        return 0.0

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        with contextlib.suppress(psutil.Error):
            return int(proc.memory_info().rss)
        return 0


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, all cores together."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def cpu_seconds_of(pids: Sequence[int]) -> list[float]:
    """User plus system CPU seconds of each PID so far (0 for one that is gone)."""
    seconds = []
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            seconds.append(float(times.user + times.system))
        except psutil.Error:
            seconds.append(0.0)
    return seconds


def scrape(base_url: str) -> dict[str, float]:
    """A worker's `GET /metrics` (Prometheus text) as {sample: value}, a sample named with its
    labels as written (`chat_connections{transport="websocket"}`)."""
    from .site import Browser

    status, _, text = Browser(base_url).get("/metrics")
    if status != 200:
        raise RuntimeError(f"{base_url}/metrics answered {status}")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def rss_of(pids: Sequence[int]) -> list[int]:
    """Resident set size of each PID now (0 for one that is gone)."""
    sizes = []
    for pid in pids:
        try:
            sizes.append(int(psutil.Process(pid).memory_info().rss))
        except psutil.Error:
            sizes.append(0)
    return sizes


class RedisCpu:
    """Redis's own CPU seconds (INFO), and whether Redis restarted meanwhile (its run_id)."""

    def __init__(self, url: str | None) -> None:
        self.client = None
        if url:
            import redis

            self.client = redis.Redis.from_url(url, socket_timeout=5)
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._run_id = ""
        self.restarted = False

    def _info(self) -> tuple[float, str]:
        assert self.client is not None
        info = self.client.info()
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"]), str(info["run_id"])

    def start(self) -> None:
        self._t0 = time.monotonic()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self._cpu0, self._run_id = self._info()

    def percent(self) -> float | None:
        """Redis CPU since start() (100 = one core); None if unknown or Redis restarted."""
        if self.client is None:
            return None
        try:
            cpu, run_id = self._info()
        except Exception:
            self.restarted = True
            return None
        if run_id != self._run_id:
            self.restarted = True
            return None
        return 100.0 * (cpu - self._cpu0) / max(time.monotonic() - self._t0, 1e-9)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()


class PostgresCpu:
    """The CPU of a PostgreSQL server on this machine over an interval: its live processes, and
    the backends that ended meanwhile (the postmaster's children times, once it reaped them).
    A connection opened per request shows here, not in the workers' figures."""

    def __init__(self) -> None:
        self.masters = [
            proc
            for proc in psutil.process_iter(["name", "ppid"])
            if proc.info["name"] == "postgres" and _name_of(proc.info["ppid"]) != "postgres"
        ]
        self._t0 = 0.0
        self._cpu0 = 0.0

    def _total(self) -> float:
        total = 0.0
        for master in self.masters:
            with contextlib.suppress(psutil.Error):
                times = master.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
                for child in master.children():
                    with contextlib.suppress(psutil.Error):
                        ct = child.cpu_times()
                        total += ct.user + ct.system
        return total

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = self._total()

    def percent(self) -> float | None:
        """PostgreSQL's CPU since start() (100 = one core); None without a local server."""
        if not self.masters:
            return None
        return 100.0 * (self._total() - self._cpu0) / max(time.monotonic() - self._t0, 1e-9)


def _name_of(pid: int) -> str:
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return ""
