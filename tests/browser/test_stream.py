"""The chat page in real Chromium over the HTTP fallback of contract §5: tabs without WebSocket
chat over `GET /chat/stream/` and POSTs, with tabs on sockets too; a stream resumes by `seq`
after its worker restarts; a socket that never says hello moves the tab to the stream, and a
socket that gets through later moves it back. Last, two workers behind nginx (PostgreSQL and
Redis): a stream moves to the other worker when its own stops, and any worker takes its POSTs."""

from __future__ import annotations

import random
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest

from deploy.cluster import BASE_DIR, Cluster, ClusterConfig
from tests.conftest import PASSWORD, TEST_REDIS_URL, port_open, require

from .conftest import Pages, Server, _manage, bodies, connected, expect, send, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route, WebSocketRoute

pytestmark = pytest.mark.browser

FALLBACK = "Connected (HTTP fallback)"
# Two sockets given up after 5 s each, a backoff between them, then the stream.
FALLBACK_WITHIN_MS = 20_000
SOCKET_URL = re.compile(r"/ws/chat/$")
STREAM_URL = re.compile(r"/chat/stream/$")

ROOMS = """
from django.contrib.auth import get_user_model
from rooms import services

User = get_user_model()
alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
# Made by bob: alice's hourly budget of new rooms went on the package's seed.
for slug in ("stream", "stream-unread", "stream-mixed", "stream-restart", "stream-posts",
             "fallback", "fallback-back"):
    room = services.create_room(creator=bob, name=slug, slug=slug)
    services.join_room(user=alice, room=room)
"""


@pytest.fixture(scope="module", autouse=True)
def _rooms(server: Server) -> None:
    """This module's rooms, so that no other test's messages land in them."""
    _manage(server.env, "shell", "-c", ROOMS)


def without_websocket(context: BrowserContext) -> BrowserContext:
    """A browser with no WebSocket at all: the client must start on the stream."""
    context.add_init_script("delete window.WebSocket;")
    return context


def on_the_stream(page: Page, timeout: int = FALLBACK_WITHIN_MS) -> None:
    dot = page.locator("#conn-dot")
    expect(dot).to_have_attribute("title", FALLBACK, timeout=timeout)
    expect(dot).to_have_attribute("data-state", "open")
    expect(dot).to_have_attribute("data-transport", "stream")


def on_a_socket(page: Page, timeout: int | None = None) -> None:
    dot = page.locator("#conn-dot")
    expect(dot).to_have_attribute("data-transport", "socket", timeout=timeout)
    expect(dot).to_have_attribute("title", "Connected")


def message(page: Page, text: str):  # noqa: ANN201 - a Playwright locator
    return page.locator("#messages li.msg", has_text=text)


def stored(page: Page, slug: str) -> list[str]:
    answer = page.request.get(f"/api/rooms/{slug}/messages?limit=100").json()
    return [m["body"] for m in answer["messages"]]


def test_two_tabs_without_websocket_chat_over_the_stream(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/stream/", context=without_websocket(pages.context("alice")))
    bob = pages.open("bob", "/rooms/stream/", context=without_websocket(pages.context("bob")))
    on_the_stream(alice)
    on_the_stream(bob)

    # Typing first: the server relays one `typing` per user and room every few seconds, and
    # filling the composer counts.
    alice.locator("#composer-input").press_sequentially("Hello bob, over plain HTTP", delay=20)
    expect(bob.locator("#typing")).to_have_text("alice is typing…")
    alice.locator("#composer-input").press("Enter")
    expect(bob.locator("#typing")).to_have_text("")

    expect(message(bob, "Hello bob, over plain HTTP")).to_have_count(1)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)
    send(bob, "Loud and clear.\nTwo lines, even.")
    reply = message(alice, "Loud and clear.")
    expect(reply.locator(".msg-body")).to_have_text("Loud and clear.\nTwo lines, even.")
    expect(reply.locator(".msg-author")).to_have_text("bob")

    # Alice opens another room (the page stays, and so does its stream) and writes there: the
    # badge of that room rises live in bob's sidebar.
    alice.locator("#room-nav a[data-room=stream-unread]").click()
    expect(alice).to_have_url(re.compile(r"/rooms/stream-unread/$"))
    send(alice, "Psst, over here")
    expect(bob.locator("#room-nav a[data-room=stream-unread] .badge")).to_have_text("1")
    bob.locator("#room-nav a[data-room=stream-unread]").click()
    expect(message(bob, "Psst, over here")).to_have_count(1)
    expect(bob.locator("#room-nav a[data-room=stream-unread] .badge")).to_be_hidden()

    assert bodies(bob) == ["Psst, over here"]
    assert stored(alice, "stream") == [
        "Hello bob, over plain HTTP",
        "Loud and clear.\nTwo lines, even.",
    ]
    on_the_stream(alice)
    on_the_stream(bob)


def test_a_tab_on_a_socket_chats_with_a_tab_on_the_stream(pages: Pages) -> None:
    alice = pages.open(
        "alice", "/rooms/stream-mixed/", context=without_websocket(pages.context("alice"))
    )
    bob = pages.open("bob", "/rooms/stream-mixed/")
    on_the_stream(alice)
    connected(bob)
    on_a_socket(bob)

    for n in range(1, 4):
        send(alice, f"from the stream {n}")
        send(bob, f"from the socket {n}")
    expected = [f"from the {where} {n}" for n in range(1, 4) for where in ("stream", "socket")]
    for page in (alice, bob):
        expect(page.locator("#messages li.msg .msg-body")).to_have_count(6)
        expect(page.locator("#messages li.msg.pending")).to_have_count(0)
    # Both writers' messages interleave in the order the server stored them, the same in both.
    assert bodies(alice) == bodies(bob) == stored(bob, "stream-mixed")
    assert sorted(bodies(alice)) == sorted(expected)


def test_a_stream_resumes_after_its_worker_restarts(pages: Pages, server: Server) -> None:
    context = without_websocket(pages.context("alice"))
    alice = pages.open("alice", "/rooms/stream-restart/", context=context)
    bob = pages.open("bob", "/rooms/stream-restart/")
    on_the_stream(alice)
    connected(bob)
    send(alice, "before 1")
    expect(message(bob, "before 1")).to_have_count(1)
    send(bob, "before 2")
    for page in (alice, bob):
        expect(page.locator("#messages li.msg")).to_have_count(2)
        expect(page.locator("#messages li.msg.pending")).to_have_count(0)
    expected = ["before 1", "before 2"]

    # Alice's new streams are refused for a while: bob writes while she is away.
    def refuse(route: Route) -> None:
        route.abort()

    context.route(STREAM_URL, refuse)
    server.restart()
    expect(alice.locator("#conn-banner")).to_have_attribute("data-state", "offline")
    send(bob, "during the gap")
    expected.append("during the gap")
    expect(bob.locator("#messages li.msg.pending")).to_have_count(0, timeout=30_000)
    send(alice, "typed while the stream was down")
    expected.append("typed while the stream was down")
    expect(message(alice, "typed while the stream was down")).to_have_class(
        re.compile(r"\bpending\b")
    )
    assert "during the gap" not in bodies(alice)

    context.unroute(STREAM_URL, refuse)
    expect(alice.locator("#conn-banner")).to_have_attribute("data-state", "back", timeout=30_000)
    on_the_stream(alice)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)
    expect(alice.locator("#messages li.msg .msg-body")).to_have_text(expected)
    expect(bob.locator("#messages li.msg .msg-body")).to_have_text(expected, timeout=30_000)
    assert stored(alice, "stream-restart") == expected
    # And a reload renders the same, from the server.
    alice.reload()
    assert bodies(alice) == expected


@pytest.mark.parametrize(("status", "streams"), [(429, 1), (503, 1), (404, 2), (403, 2)])
def test_a_post_turned_away_is_sent_again_and_stored_once(
    pages: Pages, status: int, streams: int
) -> None:
    context = without_websocket(pages.context("alice"))
    sends: list[str] = []

    def first_one_turned_away(route: Route) -> None:
        body = route.request.post_data or ""
        if '"type":"send"' not in body:
            route.continue_()
            return
        sends.append(body)
        if len(sends) > 1:
            route.continue_()
        elif streams == 1:
            # It reaches the server all the same, so the retry must be stored as a repeat.
            route.fulfill(response=route.fetch(), status=status, headers={"Retry-After": "1"})
        else:
            route.fulfill(status=status, json={"error": "test", "detail": "turned away"})

    context.route(re.compile(r"/chat/stream/[^/]+/$"), first_one_turned_away)
    opened: list[str] = []
    context.on("request", lambda request: STREAM_URL.search(request.url) and opened.append(""))
    alice = pages.open("alice", "/rooms/stream-posts/", context=context)
    bob = pages.open("bob", "/rooms/stream-posts/")
    on_the_stream(alice)
    connected(bob)

    text = f"answered {status} once"
    send(alice, text)
    expect(message(bob, text)).to_have_count(1)
    # 429 and 503: the same batch again, on the same stream; 404 and 403: the stream counts as
    # dropped, and the message goes again (same ref) on a new one.
    for _ in range(100):
        if len(sends) > 1 and len(opened) == streams:
            break
        alice.wait_for_timeout(100)
    on_the_stream(alice)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)
    alice.wait_for_timeout(1_500)  # time enough for a stray retry or reconnect
    assert len(opened) == streams
    assert len(sends) == 2
    if streams == 1:
        assert sends[0] == sends[1]
    assert bodies(alice).count(text) == 1
    assert bodies(bob).count(text) == 1
    assert stored(bob, "stream-posts").count(text) == 1


def test_signing_out_elsewhere_ends_the_stream_and_offers_sign_in(pages: Pages) -> None:
    context = without_websocket(pages.context())
    page = context.new_page()
    sign_in(page, "dave")
    chat = pages.open("dave", "/rooms/", context=context)
    on_the_stream(chat)
    page.goto("/rooms/")
    page.locator(".sidebar-foot button[type=submit]").click()
    banner = chat.locator("#conn-banner")
    expect(banner).to_have_attribute("data-state", "signed-out")
    expect(banner.get_by_role("link", name="Sign in")).to_be_visible()
    expect(chat.locator("#conn-dot")).to_have_attribute("data-state", "closed")


def silent_sockets(context: BrowserContext) -> list[WebSocketRoute]:
    """Sockets that open but never say hello (a proxy that holds them): the page's sockets are
    answered by Playwright, which says nothing."""
    held: list[WebSocketRoute] = []

    def hold(ws: WebSocketRoute) -> None:
        held.append(ws)

    context.route_web_socket(SOCKET_URL, hold)
    return held


def refused_sockets(context: BrowserContext) -> None:
    """A browser whose `new WebSocket` throws, as when a policy forbids it."""
    context.add_init_script(
        """window.WebSocket = class {
            constructor() { throw new DOMException("refused", "SecurityError"); }
        };"""
    )


@pytest.mark.parametrize("sockets", [silent_sockets, refused_sockets], ids=["silent", "refused"])
def test_a_socket_that_never_says_hello_moves_the_tab_to_the_stream(
    pages: Pages, sockets: Callable[[BrowserContext], object]
) -> None:
    context = pages.context("alice")
    sockets(context)
    alice = pages.open("alice", "/rooms/fallback/", context=context)
    bob = pages.open("bob", "/rooms/fallback/")
    connected(bob)
    on_the_stream(alice)

    text = f"after the fallback ({sockets.__name__})"
    send(alice, text)
    expect(message(bob, text)).to_have_count(1)
    send(bob, f"{text}, answered")
    expect(message(alice, f"{text}, answered")).to_have_count(1)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)


def test_the_tab_goes_back_to_a_socket_once_one_gets_through(pages: Pages) -> None:
    context = pages.context("alice")
    through = {"now": False}
    held: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        if through["now"]:
            ws.connect_to_server()
        else:
            held.append(ws)

    context.route_web_socket(SOCKET_URL, route)
    # Fake timers, so the background socket (every 3 minutes or so) is tried without waiting.
    context.clock.install()
    alice = pages.open("alice", "/rooms/fallback-back/", context=context)
    bob = pages.open("bob", "/rooms/fallback-back/")
    connected(bob)
    on_the_stream(alice)
    assert len(held) == 2
    send(alice, "on the stream")
    expect(message(bob, "on the stream")).to_have_count(1)

    through["now"] = True
    context.clock.fast_forward("04:00")
    on_a_socket(alice, timeout=15_000)
    # Quietly: no banner, nothing lost, nothing doubled.
    expect(alice.locator("#conn-banner")).to_be_hidden()
    send(alice, "on the socket")
    expect(message(bob, "on the socket")).to_have_count(1)
    send(bob, "bob answers")
    expected = ["on the stream", "on the socket", "bob answers"]
    for page in (alice, bob):
        expect(page.locator("#messages li.msg .msg-body")).to_have_text(expected)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)
    assert stored(bob, "fallback-back") == expected


# --- two workers behind nginx ------------------------------------------------------------------

CLUSTER_DATABASE = "postgres://postgres@127.0.0.1:5432/chatsite_browser_stream"
# A Redis database of its own: off a developer's 0 and the cluster tests' 13.
_redis = urlparse(TEST_REDIS_URL)
CLUSTER_REDIS = f"redis://{_redis.hostname or '127.0.0.1'}:{_redis.port or 6379}/12"
CLUSTER_SEED = f"""
from django.contrib.auth import get_user_model
from rooms import services

User = get_user_model()
alice, bob = (User.objects.create_user(username=name, password={PASSWORD!r})
              for name in ("alice", "bob"))
services.join_room(user=bob, room=services.create_room(creator=alice, name="relay", slug="relay"))
"""


@dataclass
class Site:
    url: str


def _free_ports(count: int) -> int:
    """The first of `count` consecutive ports nothing holds, below the kernel's ephemeral range
    (32768 and up) so that no outgoing connection takes one before its server binds it."""
    for first in random.sample(range(20_000, 32_000, count), 50):  # noqa: S311 - not a secret
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports between 20000 and 32000")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """nginx and two daphne workers on a throwaway PostgreSQL database and Redis, as deployed."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    require("nginx", nginx is not None, "no nginx binary on PATH or in /usr/sbin")
    require("Redis", port_open(_redis.hostname or "127.0.0.1", _redis.port or 6379), "no Redis")
    require("PostgreSQL", port_open("127.0.0.1", 5432), "nothing answers at 127.0.0.1:5432")
    first = _free_ports(3)
    config = ClusterConfig(
        workers=2,
        port=first + 2,
        first_worker_port=first,
        database_url=f"{CLUSTER_DATABASE}_{uuid.uuid4().hex[:8]}",
        redis_url=CLUSTER_REDIS,
        run_dir=BASE_DIR / "run" / "browser-stream",
        env={"CHATSITE_LAYER_PREFIX": f"browser-stream-{uuid.uuid4().hex[:8]}"},
    )
    shutil.rmtree(config.run_dir, ignore_errors=True)
    site = Cluster(config)
    try:
        site.start()
        site.manage("shell", "-c", CLUSTER_SEED)
        yield site
    finally:
        site.stop(timeout=5)
        site.drop_database()


@pytest.fixture
def cluster_pages(browser: Browser, cluster: Cluster) -> Iterator[Pages]:
    """Pages on the cluster (through nginx), signed in through its sign-in form."""
    sessions = {}
    for name in ("alice", "bob"):
        context = browser.new_context(base_url=cluster.config.url)
        sign_in(context.new_page(), name)
        sessions[name] = context.storage_state()
        context.close()
    opened = Pages(browser, Site(cluster.config.url), sessions)  # type: ignore[arg-type]
    yield opened
    opened.close()
    assert not opened.problems, "script errors or CSP violations:\n" + "\n".join(opened.problems)


def posts_served_by(cluster: Cluster, since: int) -> set[str]:
    """The upstreams (host:port) nginx sent stream POSTs to, from byte `since` of its log."""
    log = (cluster.log_dir / "nginx-access.log").read_bytes()[since:].decode()
    return set(re.findall(r'"POST /chat/stream/\S+ HTTP/[\d.]+" 202 \d+ upstream=(\S+)', log))


def test_streams_move_between_workers_and_any_worker_takes_their_posts(
    cluster_pages: Pages, cluster: Cluster
) -> None:
    tabs = [
        cluster_pages.open(
            name, "/rooms/relay/", context=without_websocket(cluster_pages.context(name))
        )
        for name in ("alice", "bob")
    ]
    alice, bob = tabs
    expected: list[str] = []

    def chat(label: str) -> None:
        for n in (1, 2):
            for name, page in (("alice", alice), ("bob", bob)):
                text = f"{label}: {name} {n}"
                send(page, text)
                expected.append(text)
                expect(message(page, text)).not_to_have_class(re.compile(r"\bpending\b"))
        for page in tabs:
            expect(page.locator("#messages li.msg .msg-body")).to_have_text(expected)

    for page in tabs:
        on_the_stream(page)
    chat("both workers")

    # Worker 1 stops (4012 to its streams): every stream is on worker 2 afterwards.
    cluster.stop_worker(1)
    chat("worker 2 alone")
    cluster.start_worker(1)
    cluster.wait_in_rotation()
    # Worker 1 holds no stream now, so nginx (least_conn) sends it the POSTs: it hands them
    # to worker 2, which holds the streams.
    log = cluster.log_dir / "nginx-access.log"
    since = log.stat().st_size
    chat("posted to worker 1")
    worker1 = f"127.0.0.1:{cluster.config.worker_port(1)}"
    assert worker1 in posts_served_by(cluster, since)
    for page in tabs:
        on_the_stream(page)
        expect(page.locator("#messages li.msg.pending")).to_have_count(0)
    assert stored(alice, "relay") == expected
