"""Configuration from the environment (contract §2): junk stops start-up with a clear error."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def clean_environment() -> dict[str, str]:
    """The caller's environment without any of the site's own variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHATSITE_"))}


# What start_up prints unless asked for something else.
BASICS = (
    "settings.DEBUG, settings.ALLOWED_HOSTS, settings.DATABASES['default']['ENGINE'],"
    " settings.CHANNEL_LAYERS['default']['BACKEND']"
)


def start_up(
    *, show: str = BASICS, setup: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Import the settings the way a worker does, in a clean process, and print `show`."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; {setup}\n"
            f"print({show})",
        ],
        cwd=ROOT,
        env={**clean_environment(), "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_debug_turns_on_with_the_usual_spellings(value):
    result = start_up(DJANGO_DEBUG=value, DATABASE_URL="", REDIS_URL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True")


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_debug_stays_off_with_the_usual_spellings(value):
    result = start_up(DJANGO_DEBUG=value, DJANGO_SECRET_KEY="x" * 50, REDIS_URL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("False")


def test_junk_debug_value_stops_start_up_with_a_clear_error():
    result = start_up(DJANGO_DEBUG="maybe", DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_production_without_a_secret_key_refuses_to_start():
    result = start_up()
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_defaults_are_sqlite_and_the_in_process_layer():
    result = start_up(CHATSITE_DEV="1", DATABASE_URL="sqlite:///x.db", REDIS_URL="")
    assert result.returncode == 0, result.stderr
    assert "['127.0.0.1', 'localhost']" in result.stdout
    assert "sqlite3" in result.stdout and "InMemoryChannelLayer" in result.stdout


def test_database_and_redis_urls_switch_to_postgresql_and_channels_redis():
    result = start_up(
        CHATSITE_DEV="1",
        DATABASE_URL="postgres://u:p@db.internal:5432/chat",
        REDIS_URL="redis://cache.internal:6379/0",
        DJANGO_ALLOWED_HOSTS="chat.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "['chat.example.com']" in result.stdout
    assert "postgresql" in result.stdout and "RedisPubSubChannelLayer" in result.stdout


def test_wildcard_allowed_hosts_is_refused():
    result = start_up(CHATSITE_DEV="1", DJANGO_ALLOWED_HOSTS="*")
    assert result.returncode != 0
    assert "'*' is not allowed" in result.stderr


def deploy_check(**overrides: str) -> subprocess.CompletedProcess[str]:
    """`check --deploy` with deploy/chatsite.env.example (and a real secret), as an operator
    runs it; `overrides` add to or replace the file's variables."""
    example = {}
    for line in (ROOT / "deploy" / "chatsite.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name] = value
    example["DJANGO_SECRET_KEY"] = "s3cr3t-" + "k" * 50
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean_environment(), **example, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_production_example_passes_the_deploy_check():
    """deploy/chatsite.env.example, with a real secret, is what `check --deploy` wants."""
    result = deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_production_example_leaves_hsts_subdomains_and_preload_off():
    """Both bind every subdomain, preload for months: an operator opts in, never by default."""
    example = (ROOT / "deploy" / "chatsite.env.example").read_text().splitlines()
    assert not [
        line for line in example if line.startswith(("DJANGO_HSTS_INCLUDE", "DJANGO_HSTS_P"))
    ]


def test_the_deploy_check_judges_hsts_subdomains_and_preload_once_set():
    """Silenced only while unset: an explicit value, even 0, is the check's to judge."""
    result = deploy_check(DJANGO_HSTS_INCLUDE_SUBDOMAINS="0", DJANGO_HSTS_PRELOAD="0")
    assert result.returncode != 0
    assert "security.W005" in result.stderr and "security.W021" in result.stderr
    result = deploy_check(DJANGO_HSTS_INCLUDE_SUBDOMAINS="1", DJANGO_HSTS_PRELOAD="1")
    assert result.returncode == 0, result.stdout + result.stderr


# --- Redis: one prefix for every key and channel, naming the database ---------------------------

PREFIXES = (
    "settings.REDIS_KEY_PREFIX, settings.CHANNEL_LAYERS['default']['CONFIG']['prefix'],"
    " settings.CACHES['default']['KEY_PREFIX']"
)


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("redis://cache.internal:6379/0", "chatsite-db0"),
        ("redis://cache.internal:6379", "chatsite-db0"),
        ("redis://cache.internal:6379/2", "chatsite-db2"),
        ("redis://:secret@cache.internal:6379/15", "chatsite-db15"),
        ("redis://cache.internal:6379?db=5", "chatsite-db5"),
        ("rediss://cache.internal:6380/3", "chatsite-db3"),
        ("unix:///run/redis/redis.sock?db=7", "chatsite-db7"),
    ],
)
def test_the_redis_prefix_follows_the_database_number(url, prefix):
    """Redis pub/sub ignores database numbers (stack fact 11): the names must not."""
    result = start_up(show=PREFIXES, CHATSITE_DEV="1", REDIS_URL=url)
    assert result.returncode == 0, result.stderr
    # The channel layer, the cache, presence and rate limits (REDIS_KEY_PREFIX) share it.
    assert result.stdout.split() == [prefix] * 3


def test_chatsite_layer_prefix_overrides_the_database_default():
    result = start_up(
        show=PREFIXES,
        CHATSITE_DEV="1",
        REDIS_URL="redis://cache.internal:6379/2",
        CHATSITE_LAYER_PREFIX="staging.chat",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["staging.chat"] * 3


@pytest.mark.parametrize("value", ["chat:site", "chat site", "chät", "x" * 51])
def test_a_layer_prefix_channels_cannot_use_stops_start_up(value):
    """The pub/sub layer starts channel names with the prefix; channels allows only these."""
    result = start_up(CHATSITE_DEV="1", REDIS_URL="redis://h/0", CHATSITE_LAYER_PREFIX=value)
    assert result.returncode != 0
    assert "CHATSITE_LAYER_PREFIX=" in result.stderr and "use 1 to 50" in result.stderr


def test_a_redis_url_that_is_no_redis_url_stops_start_up():
    result = start_up(CHATSITE_DEV="1", REDIS_URL="http://cache.internal:6379/0")
    assert result.returncode != 0
    assert "REDIS_URL='http://cache.internal:6379/0' is not a Redis URL" in result.stderr


def test_the_cache_turns_an_unreachable_redis_into_misses():
    """Sessions are `cached_db`: with the cache failing soft they come from the database."""
    result = start_up(
        show="settings.SESSION_ENGINE, cache.get('k', 'miss'), cache.set('k', 1)",
        setup="from django.core.cache import cache",
        CHATSITE_DEV="1",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.contrib.sessions.backends.cached_db", "miss", "None"]
    assert "Exception ignored" in result.stderr  # logged, not raised
