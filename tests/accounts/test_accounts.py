"""Sign up, sign in, sign out and password change through the real forms, with CSRF."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def post_form(client: Client, url: str, data: dict[str, str]):
    page = client.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token, f"{url} has no CSRF token"
    return client.post(url, {**data, "csrfmiddlewaretoken": token.group(1)})


def test_signup_signs_the_user_in_and_redirects():
    client = csrf_client()
    response = post_form(
        client,
        "/accounts/signup/",
        {"username": "dora", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="dora").exists()
    assert client.get("/rooms/").status_code == 200


def test_signup_rejects_weak_or_mismatched_passwords():
    client = csrf_client()
    weak = post_form(
        client, "/accounts/signup/", {"username": "dora", "password1": "123", "password2": "123"}
    )
    assert weak.status_code == 200 and b"too short" in weak.content
    mismatch = post_form(
        client,
        "/accounts/signup/",
        {"username": "dora", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert mismatch.status_code == 200
    assert not get_user_model().objects.filter(username="dora").exists()


def test_a_post_without_csrf_token_is_refused():
    response = csrf_client().post(
        "/accounts/signup/", {"username": "dora", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 403


def test_sign_in_and_sign_out(alice):
    client = csrf_client()
    response = post_form(client, "/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/rooms/").status_code == 200
    home = client.get("/")
    logout = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', home.content.decode())
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": logout.group(1)})
    assert response.status_code == 302
    assert client.get("/rooms/").status_code == 302


def test_wrong_password_does_not_sign_in(alice):
    client = csrf_client()
    response = post_form(client, "/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert client.get("/rooms/").status_code == 302


def test_password_change(alice):
    client = csrf_client()
    client.force_login(alice)
    new = PASSWORD + "-2"
    response = post_form(
        client,
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new)
