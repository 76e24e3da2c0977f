"""The chat's figures for Prometheus, each worker its own (`GET /metrics`, chatsite/metrics.py).

Counters are bumped once per frame, per layer message or per event, never per recipient:
`chat_deliveries_total` grows by an event's number of local recipients in one step. Gauges
that describe the worker's state (connections, room subscriptions) are read from its hub when
scraped, so keeping them costs nothing in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import protocol

FRAMES = Counter(
    "chat_frames_received",
    "Client frames received, by type (`invalid`: not a frame of a known type).",
    ["type"],
)
# One child per type, made now: a frame costs one increment, no label lookup.
FRAMES_BY_TYPE = {kind: FRAMES.labels(kind) for kind in (*protocol.FRAME_FIELDS, "invalid")}
DELIVERIES = Counter("chat_deliveries", "Events written to this worker's connections.")
LAYER_EVENTS = Counter(
    "chat_layer_events_received", "Events this worker's hub received from the channel layer."
)
RESYNCS = Counter(
    "chat_resyncs",
    "Times this worker asked its connections to resync (close 4012), having maybe missed events.",
)
LAG = Histogram(
    "chat_publish_to_deliver_seconds",
    "From a hub sending a batch of events to this hub delivering it (clocks of one machine "
    "compare exactly; across machines, mind their skew).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def frame_received(kind: str | None) -> None:
    FRAMES_BY_TYPE.get(kind or "invalid", FRAMES_BY_TYPE["invalid"]).inc()


class HubCollector(Collector):
    """Connections, room subscriptions and layer groups of this worker's hub, read when
    scraped."""

    def describe(self) -> Iterator[Any]:
        """What `collect` yields, without a hub (the registry asks when registering)."""
        return self._families(None)

    hub: Any = None  # this worker's (rooms/fanout.py), once started

    def collect(self) -> Iterator[Any]:
        return self._families(self.hub)

    def _families(self, hub: Any) -> Iterator[Any]:
        connections = GaugeMetricFamily(
            "chat_connections", "Open chat connections of this worker.", labels=["transport"]
        )
        counts = {"websocket": 0, "stream": 0}
        for conn in hub.connections() if hub is not None else ():
            kind = "stream" if getattr(conn.transport, "stream_id", None) else "websocket"
            counts[kind] += 1
        for kind, count in counts.items():
            connections.add_metric([kind], count)
        yield connections
        yield GaugeMetricFamily(
            "chat_room_subscriptions",
            "Rooms with at least one subscribed connection on this worker.",
            value=len(hub.by_room) if hub is not None else 0,
        )
        yield GaugeMetricFamily(
            "chat_layer_groups",
            "Channel-layer groups of rooms and users this worker's hub is a member of.",
            value=len(hub.groups) if hub is not None else 0,
        )


HUB = HubCollector()
REGISTRY.register(HUB)


def watch(hub: Any) -> None:
    """Report this hub's connections and subscriptions (the worker's, from its start on)."""
    HUB.hub = hub
