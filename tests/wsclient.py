"""A real client of the site for process-level tests: an HTTP session, then WebSocket tabs.

`Account` is a browser's session over plain HTTP (cookie jar, forms with CSRF, the JSON API);
`Socket` is one tab's connection to /ws/chat/ with a mailbox of frames. Every test that talks to
a real server process uses them: tests/rooms (single workers), tests/contract (two workers) and
the reconnecting `ChatClient` of tests/cluster, which builds on both.
"""

from __future__ import annotations

import asyncio
import html.parser
import http.cookiejar
import itertools
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

PASSWORD = "correct-horse-battery-staple"
HTTP_TIMEOUT = 10

Frame = dict[str, Any]  # one JSON frame


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report redirects instead of following them: a 302 is what a form post should answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Account:
    """A browser's signed-in session over plain HTTP (cookie jar and forms with CSRF).

    Redirects are not followed: `request` and `post_form` return the status (302 after a
    successful form) and the body.
    """

    def __init__(self, base: str, username: str = "") -> None:
        self.base = base.rstrip("/")
        self.username = username
        self.jar = http.cookiejar.CookieJar()
        self.http_retries: list[int] = []  # statuses of GETs retried by get_json
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def __repr__(self) -> str:
        return f"<Account {self.username or '?'} at {self.base}>"

    # --- plain HTTP -----------------------------------------------------------------------------

    def request(
        self, path: str, data: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> tuple[int, str]:
        """GET `path`, or POST `data` as a form (with the Origin and Referer a browser sends)."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body)  # noqa: S310 - test server
        if data is not None:
            request.add_header("Origin", self.base)
            request.add_header("Referer", self.base + path)
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def post_form(
        self, path: str, fields: dict[str, str], action: str | None = None
    ) -> tuple[int, str]:
        """Fill in the form on page `path` and post it (to `action`, by default the page)."""
        status, page = self.request(path)
        assert status == 200, f"GET {path}: {status}"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, f"{path} has no CSRF token"
        return self.request(action or path, {**fields, "csrfmiddlewaretoken": token.group(1)})

    def edit_form(self, path: str, form_id: str, changes: dict[str, str | None]) -> tuple[int, str]:
        """Post form `form_id` of page `path` as a browser would after editing it: every field
        keeps the value the page gave it but those in `changes` (None unticks or clears)."""
        status, page = self.request(path)
        assert status == 200, f"GET {path}: {status}"
        parser = _FormParser(form_id)
        parser.feed(page)
        assert parser.found, f"{path} has no form #{form_id}"
        fields = [(k, v) for k, v in parser.fields if k not in changes]
        fields += [(k, v) for k, v in changes.items() if v is not None]
        return self.request(path, fields)

    def get_json(self, path: str, retry_statuses: tuple[int, ...] = ()) -> tuple[int, Any]:
        """GET a JSON endpoint; a status in `retry_statuses` is retried after a pause, like a
        browser's fetch() retrying a GET the proxy could not place. Returns (status, data)."""
        status, body = self.request(path)
        for delay in (0.2, 0.5, 1, 2, 4):
            if status not in retry_statuses:
                break
            self.http_retries.append(status)
            time.sleep(delay)
            status, body = self.request(path)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def send_request(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Any request of this session, to `base` (another worker) or the account's server, as
        a page's script sends it: with Origin, and the CSRF token in X-CSRFToken. Returns the
        status, headers and raw body."""
        base = (base or self.base).rstrip("/")
        request = urllib.request.Request(  # noqa: S310 - test server
            base + path, data=body, method=method, headers=headers or {}
        )
        if method != "GET":
            request.add_header("Origin", base)
            request.add_header("X-CSRFToken", self.cookie_value("csrftoken") or "")
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def upload(
        self, slug: str, name: str, content: bytes, base: str | None = None
    ) -> tuple[int, Any]:
        """POST /api/rooms/<slug>/attachments: a multipart form with the file as `file`."""
        boundary = f"----chatsite{time.monotonic_ns()}"
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
                b"Content-Type: application/octet-stream\r\n\r\n",
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        status, _, answer = self.send_request(
            f"/api/rooms/{slug}/attachments",
            method="POST",
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            base=base,
        )
        try:
            return status, json.loads(answer)
        except ValueError:
            return status, answer

    # --- the site's forms -----------------------------------------------------------------------

    @classmethod
    def sign_up(cls, base: str, username: str, password: str = PASSWORD) -> Account:
        """Create an account through the real form (which signs it in)."""
        account = cls(base, username)
        status, page = account.post_form(
            "/accounts/signup/",
            {"username": username, "password1": password, "password2": password},
        )
        assert status == 302, f"sign-up of {username} answered {status}: {page[:500]}"
        assert account.session_id, "sign-up set no session cookie"
        return account

    @classmethod
    def sign_in(cls, base: str, username: str, password: str = PASSWORD) -> Account:
        """Sign in with Django's login form: a new session of an existing user."""
        account = cls(base, username)
        status, page = account.post_form(
            "/accounts/login/", {"username": username, "password": password}
        )
        assert status == 302, f"sign-in of {username} answered {status}: {page[:500]}"
        return account

    def sign_out(self) -> None:
        """The sign-out button every page has (a POST)."""
        self.post_form("/", {}, action="/accounts/logout/")

    def create_room(self, name: str, slug: str, *, topic: str = "", private: bool = False) -> None:
        fields = {"name": name, "slug": slug, "topic": topic}
        if private:
            fields["is_private"] = "on"
        status, page = self.post_form("/rooms/new/", fields)
        assert status == 302, f"creating #{slug} answered {status}: {page[:500]}"

    def api_history(self, slug: str, retry_statuses: tuple[int, ...] = ()) -> list[Frame]:
        """Every message of the room from the JSON API (the server's truth), page by page."""
        messages: list[Frame] = []
        after = 0
        while True:
            path = f"/api/rooms/{slug}/messages?after={after}&limit=100"
            status, page = self.get_json(path, retry_statuses)
            assert status == 200, f"history of #{slug}: {status} {str(page)[:300]}"
            messages += page["messages"]
            if not page["has_more"] or not page["messages"]:
                return messages
            after = page["messages"][-1]["seq"]

    # --- cookies and sockets --------------------------------------------------------------------

    def cookie_value(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    @property
    def session_id(self) -> str | None:
        return self.cookie_value("sessionid")

    @property
    def cookie(self) -> str:
        """The Cookie header a socket needs: the session."""
        session = self.session_id
        assert session, "not signed in"
        return f"sessionid={session}"

    @property
    def ws_base(self) -> str:
        return "ws" + self.base.removeprefix("http")

    async def open_socket(self, base: str | None = None, **options: Any) -> Socket:
        """A tab of this session on `base` (by default the account's own server), after hello."""
        base = (base or self.base).rstrip("/")
        sock = await Socket.open("ws" + base.removeprefix("http"), self.cookie, base, **options)
        await sock.wait_for_hello()
        return sock


class _FormParser(html.parser.HTMLParser):
    """The successful controls of one form, as a browser submits them (no submit buttons)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = self.found = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            self.found = self.found or self.inside
        if not self.inside or "disabled" in a:
            return
        name = a.get("name", "")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button", "image", "file", "reset"):
                self.fields.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self.fields.append((name, ""))  # the text, if any, follows as data

    def handle_data(self, data: str) -> None:
        if self.inside and self.fields and self.lasttag == "textarea" and data.strip():
            name, _ = self.fields[-1]
            self.fields[-1] = (name, data.strip("\n"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None


async def connect(ws_base: str, cookie: str | None, origin: str | None, **options: Any) -> Any:
    """Open a websockets connection to ws_base/ws/chat/ the way a browser tab does.

    `cookie` and `origin` of None leave the header out (to test the handshake's refusals).
    """
    headers = {}
    if cookie is not None:
        headers["Cookie"] = cookie
    if origin is not None:
        headers["Origin"] = origin
    options.setdefault("open_timeout", 10)
    return await websockets.connect(
        f"{ws_base.rstrip('/')}/ws/chat/", additional_headers=headers, **options
    )


class Socket:
    """One tab's connection with a mailbox, like the browser client keeps.

    Frames not asked for yet wait in `mailbox`, in arrival order, for a later `wait_for`.
    Several coroutines may wait on one socket at once (concurrent `request`s): one reads at a
    time and files what it reads for the others.
    """

    _refs = itertools.count(1)

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.mailbox: list[Frame] = []
        self.hello: Frame | None = None
        self._reading = asyncio.Lock()

    @classmethod
    async def open(
        cls, ws_base: str, cookie: str | None, origin: str | None, **options: Any
    ) -> Socket:
        # A test reads frames when it wants to: keep them all, never pause the server (a paused
        # socket could not even complete its closing handshake).
        options.setdefault("max_queue", None)
        return cls(await connect(ws_base, cookie, origin, **options))

    async def wait_for_hello(self, timeout: float = 5) -> Frame:
        """The first frame, which must be `hello`; kept as `self.hello`."""
        assert not self.mailbox, f"frames before hello: {self.mailbox}"
        frame = await self.wait_for(lambda f: True, timeout)
        assert frame["type"] == "hello", f"the first frame is not hello: {frame}"
        self.hello = frame
        return frame

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    def _take(self, accept: Callable[[Frame], bool]) -> Frame | None:
        for n, frame in enumerate(self.mailbox):
            if accept(frame):
                return self.mailbox.pop(n)
        return None

    async def _read_one(self) -> None:
        """Read the next frame into the mailbox (the caller holds the reading lock)."""
        self.mailbox.append(json.loads(await self.ws.recv()))

    async def wait_for(self, accept: Callable[[Frame], bool], timeout: float = 5) -> Frame:
        """The first frame, held or still to come, that `accept` likes; the rest stay held."""
        async with asyncio.timeout(timeout):
            while (frame := self._take(accept)) is None:
                async with self._reading:
                    # Another reader may have filed our frame while we queued for the lock.
                    if (frame := self._take(accept)) is not None:
                        return frame
                    # websockets' recv() is cancellation-safe: a timeout loses no frame.
                    await self._read_one()
            return frame

    async def request(self, timeout: float = 5, **frame: Any) -> Frame:
        """Send a frame with a fresh `ref` (unless given) and return the reply carrying it."""
        ref = frame.setdefault("ref", f"r{next(self._refs)}")
        await self.send(**frame)
        return await self.wait_for(
            lambda f: f.get("ref") == ref and f["type"] != "message", timeout
        )

    async def collect(self, seconds: float) -> list[Frame]:
        """Everything held plus everything that arrives within `seconds`; the mailbox empties."""
        try:
            async with asyncio.timeout(seconds), self._reading:
                while True:
                    await self._read_one()
        except TimeoutError:
            pass
        frames, self.mailbox = self.mailbox, []
        return frames

    async def settle(self, seconds: float = 0.3) -> list[Frame]:
        """Let the tab fall quiet: a ping's pong proves every earlier reply was written, and
        `seconds` more catch broadcasts still crossing workers. Returns what came (no pong)."""
        pong = await self.request(type="ping")
        assert pong["type"] == "pong", pong
        return await self.collect(seconds)

    async def close_code(self, timeout: float = 10) -> int:
        """Read until the server closes; its close code (1006 if none was sent)."""
        try:
            async with asyncio.timeout(timeout), self._reading:
                while True:
                    await self._read_one()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006

    async def close(self) -> None:
        await self.ws.close()
