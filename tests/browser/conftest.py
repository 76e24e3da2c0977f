"""Browser tests: a real daphne worker and real Chromium driven by Playwright's sync API.

The server runs as a subprocess on its own database (a temporary SQLite file, or a fresh
PostgreSQL database when DATABASE_URL points at one) so a test can stop it with SIGTERM and start
it again on the same port. Personas: alice, bob and carol share #lobby; dave signs in on his own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from deploy.workers import daphne_command, end, free_port, start
from tests.conftest import PASSWORD, require

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        WebSocketRoute,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - the `server` fixture skips (or fails under CI)
    sync_playwright = expect = None

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
START_TIMEOUT = 30.0
NETWORK_NOISE = ("WebSocket connection", "Failed to load resource", "net::ERR_")
# Expectations wait at most this long (ms): generous for CI, still bounded.
WAIT_MS = 10_000

SEED = """
import datetime
from django.contrib.auth import get_user_model
from django.utils import timezone
from rooms import services
from rooms.models import Message, Room

User = get_user_model()
people = {name: User.objects.create_user(username=name, password=PASSWORD)
          for name in ("alice", "bob", "carol", "dave")}
alice, bob, carol = people["alice"], people["bob"], people["carol"]

def room(slug, name, topic="", members=(), private=False):
    made = services.create_room(creator=alice, name=name, slug=slug, topic=topic,
                                is_private=private)
    for person in members:
        services.join_room(user=person, room=made)
    return made

room("lobby", "lobby", "Say hi: everyone is welcome", members=(bob, carol))
room("random", "random", "Anything goes", members=(bob,))
room("notes", "notes", "Alice's scratch pad")
room("typing", "typing", members=(bob,))
room("restart", "restart", members=(bob,))
room("xss", "xss", members=(bob,))
room("missed", "missed", members=(bob,))
room("history", "history", members=(bob,))
room("book-club", "book-club", "Currently reading: The Left Hand of Darkness")
room("announcements", "announcements", "News from the team", members=(bob,))
room("staff", "staff", "Private: staff only", private=True)

history = Room.objects.get(slug="history")
for n in range(1, 131):
    services.post_message(author=alice if n % 2 else bob, room=history, body=f"history {n}")

# The longest messages there are: 4,000 characters of four bytes each. 130 of them.
emoji = room("emoji", "emoji", "The longest messages", members=(bob, carol))
for n in range(1, 131):
    services.post_message(author=bob, room=emoji, body=f"{n:03d} " + "😀" * 3996)

design = room("design", "design", "Design reviews and the new client", members=(bob, carol))
now = timezone.now()
script = [
    (alice, -1500, "Morning! I pushed the new chat client to the staging site."),
    (alice, -1499, "It renders the latest messages on the server, so the page paints at once."),
    (bob, -1440, "Nice. Does it survive a server restart?"),
    (alice, -1430, "Yes: it reconnects with backoff and asks for history after the last seq."),
    (carol, -1380, "The spec is here: https://example.com/specs/chat-client"),
    (bob, -50, "Looks great on my phone too."),
    (bob, -49, "One thing: can we make the unread badges a bit bolder?"),
    (carol, -20, "Agreed. I'll open an issue for the badge colours."),
    (alice, -5, "Thanks both! Shipping it after lunch."),
]
for author, minutes, body in script:
    message = services.post_message(author=author, room=design, body=body).message
    Message.objects.filter(pk=message.pk).update(
        created_at=now + datetime.timedelta(minutes=minutes))
last = Message.objects.filter(room=design).order_by("-seq").first()
Message.objects.filter(pk=last.pk).update(edited_at=now)
""".replace("PASSWORD", repr(PASSWORD))


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"daphne did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}")


class Server:
    """A daphne worker we can stop (SIGTERM) and start again on the same port."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "daphne.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start(daphne_command(self.port), self.env, self.log)
        _wait_http(f"{self.url}/healthz", self.proc, self.log, START_TIMEOUT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            end(proc, grace=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the environment's PostgreSQL, and how to drop it."""
    import psycopg

    parsed = urlparse(url)
    name = f"chatsite_browser_{uuid.uuid4().hex[:10]}"
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parsed._replace(path=f"/{name}")), drop


def _flush_redis(url: str, prefix: str) -> None:
    """Delete the keys our worker left (presence, the layer's groups and channels)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="package", autouse=True)
def _sync_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in this thread; Django refuses sync ORM calls
    there. Allowed for this folder's tests only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    """A migrated, seeded site served by one daphne worker for the whole session."""
    require("Chromium", CHROMIUM is not None, "no chromium executable on PATH")
    require("Chromium", sync_playwright is not None, "the playwright package is not installed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="chat-browser-"))
    prefix = f"browser-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        {
            "CHATSITE_DEV": "1",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Unique Redis keys and channels: never mix with another suite's workers.
            "CHATSITE_LAYER_PREFIX": prefix,
            # Uploaded attachments go with the rest of the run, never into the checkout.
            "CHATSITE_MEDIA_ROOT": str(workdir / "media"),
            "DJANGO_LOG_LEVEL": "WARNING",
        }
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    drop: Callable[[], None] | None = None
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        env["DATABASE_URL"], drop = _postgres_database(database_url)
    else:
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'browser.sqlite3'}"
    site = Server(env, workdir)
    try:
        _manage(env, "migrate", "--noinput")
        _manage(env, "shell", "-c", SEED)
        site.start()
        yield site
    finally:
        site.stop()
        # Kept for a person to read after a failure (artifacts/ is ignored by git).
        if site.log.exists():
            shutil.copy(site.log, SCREENSHOTS.parent / "browser-daphne.log")
        if drop is not None:
            drop()
        if env.get("REDIS_URL"):
            _flush_redis(env["REDIS_URL"], prefix)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="package")
def browser(server: Server) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def sessions(browser: Browser, server: Server) -> dict[str, dict]:
    """Signed-in storage state per persona, made once through the real sign-in form."""
    states = {}
    for name in ("alice", "bob", "carol"):
        context = browser.new_context(base_url=server.url)
        sign_in(context.new_page(), name)
        states[name] = context.storage_state()
        context.close()
    return states


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url, timeout=WAIT_MS)


class Pages:
    """Opens pages as a persona; every page must end the test without a script error or a
    Content-Security-Policy violation."""

    def __init__(self, browser: Browser, server: Server, sessions: dict[str, dict]) -> None:
        self.browser = browser
        self.server = server
        self.sessions = sessions
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []

    def context(self, user: str | None = None, **options: object) -> BrowserContext:
        state = self.sessions[user] if user else None
        context = self.browser.new_context(base_url=self.server.url, storage_state=state, **options)
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        return context

    def open(self, user: str | None, path: str, context: BrowserContext | None = None) -> Page:
        page = (context or self.context(user)).new_page()
        page.on("pageerror", lambda error: self.problems.append(f"{user}: {error}"))
        page.on("console", lambda message: self._console(user, message))
        page.goto(path)
        return page

    def _console(self, user: str | None, message: ConsoleMessage) -> None:
        text = message.text
        # A server stopped on purpose, or a 403 page, is network noise; anything else is a bug.
        noise = any(part in text for part in NETWORK_NOISE)
        if "Content Security Policy" in text or (message.type == "error" and not noise):
            self.problems.append(f"{user}: {text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser, server: Server, sessions: dict[str, dict]) -> Iterator[Pages]:
    opened = Pages(browser, server, sessions)
    yield opened
    opened.close()
    assert not opened.problems, "script errors or CSP violations:\n" + "\n".join(opened.problems)


class LossyRelay:
    """A browser context's chat sockets, relayed through Playwright: while `dropping`, the
    server frames that `lose` picks never reach the page, as for a socket that is away when
    they happen; `cut()` drops the socket, and the page reconnects."""

    def __init__(self, context: BrowserContext, lose: Callable[[str], bool]) -> None:
        self.lose = lose
        self.dropping = False
        self.sockets: list[WebSocketRoute] = []
        context.route_web_socket(re.compile(r"/ws/chat/$"), self._relay)

    def _relay(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if self.dropping and isinstance(message, str) and self.lose(message):
                return
            ws.send(message)

        server.on_message(to_page)
        self.sockets.append(ws)

    def cut(self, code: int = 1001) -> None:
        self.sockets[-1].close(code=code, reason="test: reconnect")


def connected(page: Page) -> None:
    """Wait until the page's socket has said hello."""
    page.wait_for_selector("#conn-dot[data-state=open]", state="attached", timeout=WAIT_MS)


def send(page: Page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def bodies(page: Page) -> list[str]:
    return page.locator("#messages li.msg .msg-body").all_inner_texts()
