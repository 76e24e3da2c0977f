"""Sign-in throttling through Django's test client: every sign-in form, the two limits, and a
lock that lifts when its cool-off has passed. tests/security/test_signin.py runs the same
rules against a real worker over HTTP."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.accounts.test_accounts import post_form
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "wrong-" + PASSWORD


@pytest.fixture(autouse=True)
def fast_password_hashes(settings):
    """Dozens of failed sign-ins per test: hash them cheaply (before the personas are made)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(path: str, username: str, password: str, address: str = "127.0.0.1"):
    """One sign-in through the form at `path`, as a new browser at `address`: (response, client)."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    response = post_form(client, path, {"username": username, "password": password})
    return response, client


def signed_in(client: Client) -> bool:
    return client.get("/rooms/").status_code == 200


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/admin/login/"])
def test_ten_wrong_passwords_lock_the_username_on_every_sign_in_form(path, staff):
    statuses = [sign_in(path, "sam", WRONG)[0].status_code for _ in range(10)]
    assert statuses == [200] * 9 + [429]

    response, client = sign_in(path, "sam", PASSWORD)
    assert response.status_code == 429
    assert b"Sign-in paused" in response.content
    assert not signed_in(client)


def test_the_lockout_page_is_ours_and_says_when_to_retry(alice):
    for _ in range(10):
        sign_in("/accounts/login/", "alice", WRONG)
    response, _ = sign_in("/accounts/login/", "alice", PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    assert b"Try again in 15 minutes" in response.content


def test_failures_for_one_username_count_from_every_address(alice):
    for i in range(10):
        sign_in("/accounts/login/", "alice", WRONG, address=f"10.0.0.{i}")
    response, client = sign_in("/accounts/login/", "alice", PASSWORD, address="10.0.1.1")
    assert response.status_code == 429
    assert not signed_in(client)


def test_nine_failures_then_the_right_password_signs_in(alice):
    for _ in range(9):
        sign_in("/accounts/login/", "alice", WRONG)
    response, client = sign_in("/accounts/login/", "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_thirty_failures_from_one_address_lock_it_for_every_username(alice, bob):
    for i in range(29):
        assert sign_in("/accounts/login/", f"guest{i % 5}", WRONG)[0].status_code == 200
    assert sign_in("/accounts/login/", "alice", PASSWORD)[0].status_code == 302

    assert sign_in("/accounts/login/", "guest-last", WRONG)[0].status_code == 429
    response, client = sign_in("/accounts/login/", "bob", PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)
    # Another address is not held back.
    assert sign_in("/accounts/login/", "bob", PASSWORD, address="10.0.0.2")[0].status_code == 302


def test_the_lock_lifts_once_the_cool_off_has_passed(alice, settings):
    for _ in range(10):
        sign_in("/accounts/login/", "alice", WRONG)
    assert sign_in("/accounts/login/", "alice", PASSWORD)[0].status_code == 429

    # A cool-off shorter than the time since the last failure is what its passing looks like.
    settings.AXES_COOLOFF_TIME = timedelta(microseconds=1)
    response, client = sign_in("/accounts/login/", "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_attempts_during_a_lock_do_not_make_it_longer(alice):
    for _ in range(10):
        sign_in("/accounts/login/", "alice", WRONG)
    locked_at = AccessAttempt.objects.get(username="alice").attempt_time
    for _ in range(3):
        assert sign_in("/accounts/login/", "alice", PASSWORD)[0].status_code == 429
    attempt = AccessAttempt.objects.get(username="alice")
    assert attempt.attempt_time == locked_at
    assert attempt.failures_since_start == 10


def test_deleting_the_attempt_in_the_admin_lifts_the_lock(alice, staff):
    for _ in range(10):
        sign_in("/accounts/login/", "alice", WRONG, address="10.0.0.9")
    admin = Client()
    admin.force_login(staff)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"alice" in listing.content

    pk = AccessAttempt.objects.get(username="alice").pk
    confirm = admin.get(f"/admin/axes/accessattempt/{pk}/delete/")
    assert confirm.status_code == 200
    assert admin.post(f"/admin/axes/accessattempt/{pk}/delete/", {"post": "yes"}).status_code == 302

    response, client = sign_in("/accounts/login/", "alice", PASSWORD, address="10.0.0.9")
    assert response.status_code == 302
    assert signed_in(client)
