"""`GET /metrics` (contract §2): each worker's own figures, to allowed addresses only."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request

from tests.servers import ROOT, sqlite_worker
from tests.streamclient import StreamTab
from tests.wsclient import Account

CONTRACT_METRICS = (
    "chat_connections",
    "chat_frames_received_total",
    "chat_deliveries_total",
    "chat_layer_events_received_total",
    "chat_room_subscriptions",
    "chat_resyncs_total",
    "chat_handshake_queue",
    "chat_publish_to_deliver_seconds",
    "django_http_requests_total_by_method_total",
    "django_db_execute_total",
)


def scrape(base: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def value(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"no {name}{labels} in the metrics"
    return float(found.group(1))


def test_metrics_count_what_the_worker_does_over_sockets_and_streams() -> None:
    with sqlite_worker() as site:

        async def scenario() -> None:
            alice = Account.sign_up(site.base, "alice")
            bob = Account.sign_up(site.base, "bob")
            alice.create_room("Lobby", "lobby")
            status, before = scrape(site.base)
            assert status == 200
            for name in CONTRACT_METRICS:
                assert f"\n{name}" in before, f"{name} is missing"
            assert value(before, "chat_connections", '{transport="websocket"}') == 0
            # The dashboard in deploy/ plots only what the workers report.
            dashboard = (ROOT / "deploy" / "grafana-dashboard.json").read_text()
            for name in set(re.findall(r"\b(?:chat|django)_\w+", dashboard)):
                family = re.sub(r"_(total|bucket)$", "", name)
                reported = f"# TYPE {family} " in before or f"# TYPE {name} " in before
                assert reported, f"the dashboard plots {name}, which no worker reports"

            sock = await alice.open_socket()
            stream = await StreamTab.connect(bob, site.base)
            await stream.wait_for_hello()
            assert (await stream.request(type="join", room="lobby"))["type"] == "joined"
            for n in range(3):
                await sock.request(type="send", room="lobby", body=f"m{n}")
            for _ in range(3):
                await stream.wait_for(lambda f: f["type"] == "message")
            _, during = scrape(site.base)
            assert value(during, "chat_connections", '{transport="websocket"}') == 1
            assert value(during, "chat_connections", '{transport="stream"}') == 1
            assert value(during, "chat_frames_received_total", '{type="send"}') == 3
            assert value(during, "chat_frames_received_total", '{type="join"}') == 1
            assert value(during, "chat_room_subscriptions") == 1
            # Each message reached both connections (the sender's included).
            delivered = value(during, "chat_deliveries_total") - value(
                before, "chat_deliveries_total"
            )
            assert delivered >= 6
            assert value(during, "chat_layer_events_received_total") >= 3
            await sock.close()
            await stream.close()

        asyncio.run(scenario())


def test_metrics_are_refused_to_addresses_not_allowed() -> None:
    with sqlite_worker(CHATSITE_METRICS_ALLOW="10.9.8.0/24") as site:
        status, body = scrape(site.base)
        assert status == 403
        assert "chat_" not in body
