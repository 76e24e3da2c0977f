"""The HTTP side of the contract, as a browser uses it: sign up, sign in, create rooms."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

TIMEOUT = 30.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SiteError(RuntimeError):
    """A page did not answer as the contract says."""


class Browser:
    """One visitor: a cookie jar and the CSRF dance of Django's forms."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or parts.hostname not in LOOPBACK:
            raise SiteError(f"refusing a non-loopback target: {base_url}")
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        for cookie in self.jar:
            if cookie.name == name:
                return cookie.value
        return None

    @property
    def session_key(self) -> str | None:
        return self.cookie("sessionid")

    def get(self, path: str) -> tuple[int, str, str]:
        """GET a page; returns (status, final path, body)."""
        # The base URL is checked to be http(s) on loopback in __init__.
        return self._open(urllib.request.Request(self.base + path))  # noqa: S310

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        """POST a form with the CSRF token of a previous GET of the same page."""
        token = self.cookie("csrftoken")
        if token is None:
            self.get(path)
            token = self.cookie("csrftoken")
        if token is None:
            raise SiteError(f"no CSRF cookie from {path}")
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback, checked in __init__)
            self.base + path,
            data=data,
            headers={"Referer": self.base + path, "Origin": self.base},
        )
        return self._open(request)

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:  # noqa: S310 (loopback)
                return response.status, urlsplit(response.url).path, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, urlsplit(exc.url).path, exc.read().decode(errors="replace")

    def signup(self, username: str, password: str) -> str:
        """Sign up (GET for the CSRF token, POST the form); returns the session key."""
        self.get("/accounts/signup/")
        status, path, _ = self.post_form(
            "/accounts/signup/",
            {"username": username, "password1": password, "password2": password},
        )
        if status != 200 or path.startswith("/accounts/signup") or not self.session_key:
            raise SiteError(f"sign-up of {username!r} failed: {status} at {path}")
        return self.session_key

    def login(self, username: str, password: str) -> str:
        """Sign in at /accounts/login/; returns the session key."""
        self.get("/accounts/login/")
        status, path, _ = self.post_form(
            "/accounts/login/", {"username": username, "password": password}
        )
        if status != 200 or path.startswith("/accounts/login") or not self.session_key:
            raise SiteError(f"sign-in of {username!r} failed: {status} at {path}")
        return self.session_key

    def create_room(self, name: str, slug: str) -> str:
        """Create a public room at /rooms/new/; returns its slug."""
        self.get("/rooms/new/")
        status, path, _ = self.post_form("/rooms/new/", {"name": name, "slug": slug, "topic": ""})
        if status != 200 or path.rstrip("/") != f"/rooms/{slug}":
            raise SiteError(f"creating room {slug!r} failed: {status} at {path}")
        return slug

    def healthy(self) -> bool:
        try:
            status, _, _ = self.get("/healthz")
        except OSError:
            return False
        return status == 200


OWNER_PASSWORD = "bench-owner-password-1234"


def sign_up_owner_with_rooms(
    base_url: str, count: int, prefix: str = "room", password: str = OWNER_PASSWORD
) -> tuple[list[str], str]:
    """Sign up `owner` over HTTP and create `count` public rooms; returns (slugs, session key)."""
    browser = Browser(base_url)
    browser.signup("owner", password)
    slugs = [browser.create_room(f"Room {i}", f"{prefix}-{i}") for i in range(count)]
    return slugs, browser.session_key or ""
