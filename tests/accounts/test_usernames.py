"""Usernames that impersonate are refused at sign-up; honest ones in any one script are not."""

import pytest
from django.test import Client

from accounts import validators
from accounts.forms import SignupForm
from tests.accounts.test_accounts import post_form
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signup_form(username: str) -> SignupForm:
    return SignupForm({"username": username, "password1": PASSWORD, "password2": PASSWORD})


def username_errors(username: str) -> list[str]:
    form = signup_form(username)
    form.is_valid()
    return form.errors.get("username", [])


@pytest.mark.parametrize("username", ["alice", "bob_2", "a.b-c@d", "Zoë", "Ölaf"])
def test_plain_latin_names_are_accepted(username):
    assert username_errors(username) == []


@pytest.mark.parametrize("username", ["Дмитрий", "山田", "Σωκράτης", "김민수", "やまだ"])
def test_names_in_one_script_are_accepted(username):
    assert username_errors(username) == []


@pytest.mark.parametrize("username", ["山田たろう", "ヤマダ太郎"])
def test_japanese_names_may_mix_kanji_and_kana(username):
    assert username_errors(username) == []


def test_names_are_nfkc_normalised_before_any_check():
    form = signup_form("ｆｕｌｌ\uff3fwidth")  # full-width letters and low line
    assert form.is_valid(), form.errors
    assert form.cleaned_data["username"] == "full_width"


@pytest.mark.parametrize(
    "username",
    [
        "\u0430lice",  # Cyrillic а
        "ali\u0441e",  # Cyrillic с
        "p\u0430yp\u0430l",
        "\u03b1lice",  # Greek α
        "b\u043eb_2",  # Cyrillic о
        "Ivan_Иван",
    ],
)
def test_look_alike_letters_from_another_script_are_refused(username):
    assert username_errors(username) == [validators.CONFUSABLE]


@pytest.mark.parametrize(
    "username",
    [
        "ali\u200bce",  # zero-width space
        "alice\u200d",  # zero-width joiner
        "al\u202eice",  # right-to-left override
        "ali\u00adce",  # soft hyphen
        "\u2060alice",  # word joiner
        "alice\u3164",  # Hangul filler: a letter to the regex, yet blank
        "alice\ufe0f",  # variation selector
    ],
)
def test_invisible_characters_are_refused(username):
    assert username_errors(username) == [validators.INVISIBLE]


def test_a_name_differing_only_in_case_is_refused(user_factory):
    user_factory("alice")
    user_factory("Дмитрий")
    assert username_errors("Alice") == [validators.TAKEN]
    assert username_errors("ALICE") == [validators.TAKEN]
    assert username_errors("ДМИТРИЙ") == [validators.TAKEN]
    assert username_errors("alice2") == []


def test_a_name_with_regex_characters_is_compared_literally(user_factory):
    user_factory("a.b")
    assert username_errors("a.b") == [validators.TAKEN]
    assert username_errors("axb") == []


def test_sign_up_shows_the_reason_and_creates_no_user():
    client = Client(enforce_csrf_checks=True)
    response = post_form(
        client,
        "/accounts/signup/",
        {"username": "\u0430lice", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "mixes look-alike letters" in response.content.decode()
    assert client.get("/rooms/").status_code == 302


def test_sign_up_with_a_name_in_another_script_signs_the_user_in():
    client = Client(enforce_csrf_checks=True)
    response = post_form(
        client,
        "/accounts/signup/",
        {"username": "Дмитрий", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert client.get("/rooms/").status_code == 200
