"""Sign-in is throttled (contract §4, "Limits that keep one user from hurting others"): after 10
failed attempts for one username, or 30 from one address, within 15 minutes, sign-in answers
429 and does not sign in even with the right password, until the lock expires or staff lift it
in the admin.

Every test runs a real daphne worker on a fresh SQLite database and talks to it over HTTP as a
browser does (forms with CSRF, a cookie jar). All requests come from 127.0.0.1, so a test that
locks the address has a worker of its own. The expiry of a lock is tested without waiting 15
minutes, in tests/accounts/test_throttle.py.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import create_superuser, fresh_worker, sqlite_worker
from tests.wsclient import PASSWORD, Account

USERNAME_LIMIT = 10
ADDRESS_LIMIT = 30
STAFF, STAFF_PASSWORD = "sam", "staff-" + PASSWORD


def attempt(
    base: str, username: str, password: str, headers: dict[str, str] | None = None
) -> tuple[int, str, Account]:
    """One sign-in through /accounts/login/ in a new browser session: (status, page, account)."""
    account = Account(base, username)
    account.opener.addheaders += list((headers or {}).items())
    status, page = account.post_form(
        "/accounts/login/", {"username": username, "password": password}
    )
    return status, page, account


def signed_in(account: Account) -> bool:
    """Whether the session opens a page that needs one."""
    return account.request("/rooms/")[0] == 200


def fail(base: str, username: str, times: int, headers: dict[str, str] | None = None) -> list[int]:
    return [attempt(base, username, "wrong-" + PASSWORD, headers)[0] for _ in range(times)]


def create_staff(database_url: str) -> None:
    create_superuser({"DATABASE_URL": database_url}, STAFF, STAFF_PASSWORD)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A worker of its own, with a staff user; yields its base URL."""
    database_url = f"sqlite:///{tmp_path / 'site.db'}"
    with fresh_worker(DATABASE_URL=database_url) as port:
        create_staff(database_url)
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def worker_behind_proxy() -> Iterator[str]:
    """A worker started as deploy/chatsite@.service starts it: daphne --proxy-headers."""
    with sqlite_worker(options=("--proxy-headers",)) as worker:
        yield worker.base


def test_ten_wrong_passwords_lock_the_username(site: str) -> None:
    Account.sign_up(site, "alice")
    Account.sign_up(site, "bob")

    statuses = fail(site, "alice", USERNAME_LIMIT)
    assert statuses == [200] * (USERNAME_LIMIT - 1) + [429]

    status, _, alice = attempt(site, "alice", PASSWORD)
    assert status == 429
    assert not signed_in(alice)

    # Another username from the same address is not held back.
    status, _, bob = attempt(site, "bob", PASSWORD)
    assert status == 302
    assert signed_in(bob)


def test_the_lockout_page_says_what_happened_and_when_to_retry(site: str) -> None:
    Account.sign_up(site, "alice")
    fail(site, "alice", USERNAME_LIMIT)

    status, page, _ = attempt(site, "alice", PASSWORD)
    assert status == 429
    assert "Sign-in paused" in page and "Try again in 15 minutes" in page


def test_thirty_failures_from_one_address_lock_it_and_fewer_do_not(site: str) -> None:
    Account.sign_up(site, "bob")

    # Spread over several usernames, none of which reaches its own limit.
    for i in range(ADDRESS_LIMIT - 1):
        assert fail(site, f"guest{i % 4}", 1) == [200]
    status, _, bob = attempt(site, "bob", PASSWORD)
    assert status == 302 and signed_in(bob)

    assert fail(site, "guest-last", 1) == [429]
    status, _, bob = attempt(site, "bob", PASSWORD)
    assert status == 429
    assert not signed_in(bob)

    # Without a proxy in front, X-Forwarded-For is the client's own claim: ignored.
    forged = {"X-Forwarded-For": "198.51.100.7"}
    status, _, bob = attempt(site, "bob", PASSWORD, headers=forged)
    assert status == 429
    assert not signed_in(bob)


def test_staff_unlock_a_locked_user_in_the_admin(site: str) -> None:
    Account.sign_up(site, "alice")
    fail(site, "alice", USERNAME_LIMIT)
    assert attempt(site, "alice", PASSWORD)[0] == 429

    staff = Account(site, STAFF)
    status, _ = staff.post_form(
        "/admin/login/?next=/admin/",
        {"username": STAFF, "password": STAFF_PASSWORD, "next": "/admin/"},
    )
    assert status == 302
    status, changelist = staff.request("/admin/axes/accessattempt/?q=alice")
    assert status == 200
    ids = set(re.findall(r"/admin/axes/accessattempt/(\d+)/change/", changelist))
    assert ids, "the admin lists no access attempt for alice"
    for pk in ids:
        # The confirmation page's own form, posted as the browser posts it.
        status, _ = staff.post_form(f"/admin/axes/accessattempt/{pk}/delete/", {"post": "yes"})
        assert status == 302

    status, _, alice = attempt(site, "alice", PASSWORD)
    assert status == 302
    assert signed_in(alice)


def test_behind_a_proxy_the_forwarded_client_address_is_counted() -> None:
    with worker_behind_proxy() as base:
        Account.sign_up(base, "bob")
        attacker = {"X-Forwarded-For": "203.0.113.1"}
        for i in range(ADDRESS_LIMIT):
            fail(base, f"guest{i % 4}", 1, headers=attacker)

        status, _, _ = attempt(base, "bob", PASSWORD, headers=attacker)
        assert status == 429
        # Someone else behind the same proxy (nginx's own address) still signs in.
        status, _, bob = attempt(base, "bob", PASSWORD, headers={"X-Forwarded-For": "203.0.113.2"})
        assert status == 302
        assert signed_in(bob)
