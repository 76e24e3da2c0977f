"""Configuration from the environment (contract §2): junk stops start-up with a clear error."""

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- Redis: several servers, or Sentinel (docs/scaling.md) -------------------------------------

LAYER_AND_CACHE = (
    "settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'], settings.CACHES['default'],"
    " settings.REDIS_KEY_PREFIX"
)

# The client of presence and rate limits (rooms/redis.py), made on an event loop: no connection
# is opened until a command is sent, so no server needs to answer.
PRESENCE_POOL = """
import asyncio
from rooms import redis as shared_redis

async def pool_of_client():
    return shared_redis.client().connection_pool

pool = asyncio.run(pool_of_client())
"""


def shown(show: str, setup: str = "", **env: str) -> tuple[Any, ...]:
    """start_up, and the values of `show` (expressions, comma-separated) it printed."""
    result = start_up(show=f"repr(({show},))", setup=setup, **env)
    assert result.returncode == 0, result.stderr
    return tuple(ast.literal_eval(result.stdout.strip()))


@pytest.mark.parametrize("kind", ["pubsub", "core"])
def test_several_redis_servers_shard_the_layer_and_the_rest_uses_the_first(kind):
    hosts, cache, prefix = shown(
        LAYER_AND_CACHE,
        CHATSITE_DEV="1",
        CHATSITE_CHANNEL_LAYER=kind,
        REDIS_URL="redis://one.internal:6379/2, redis://two.internal:6380/2",
    )
    assert hosts == [
        {"address": "redis://one.internal:6379/2", "socket_timeout": None},
        {"address": "redis://two.internal:6380/2", "socket_timeout": None},
    ]
    assert cache["LOCATION"] == "redis://one.internal:6379/2"
    assert prefix == "chatsite-db2"


def test_presence_and_rate_limits_use_the_first_of_several_servers():
    host, port, db, bounded = shown(
        "pool.connection_kwargs['host'], pool.connection_kwargs['port'],"
        " pool.connection_kwargs['db'], pool.max_connections",
        setup=PRESENCE_POOL,
        CHATSITE_DEV="1",
        REDIS_URL="redis://one.internal:6379/2,redis://two.internal:6380/2",
    )
    assert (host, port, db, bounded) == ("one.internal", 6379, 2, 32)


@pytest.mark.parametrize("kind", ["pubsub", "core"])
def test_sentinel_finds_the_master_for_the_layer_and_the_cache(kind):
    hosts, cache, prefix = shown(
        LAYER_AND_CACHE,
        CHATSITE_DEV="1",
        CHATSITE_CHANNEL_LAYER=kind,
        REDIS_SENTINELS="10.0.0.5:26379, 10.0.0.6:26380,[fd00::7]:26379",
        REDIS_SENTINEL_MASTER="chat-main",
        REDIS_URL="redis://:s3cret@chat-main/3",
    )
    sentinels = [("10.0.0.5", 26379), ("10.0.0.6", 26380), ("fd00::7", 26379)]
    assert hosts == [
        {
            "sentinels": sentinels,
            "master_name": "chat-main",
            "sentinel_kwargs": {"socket_connect_timeout": 1, "socket_timeout": 1},
            "socket_timeout": None,
            "db": 3,
            "password": "s3cret",
        }
    ]
    assert cache["LOCATION"] == "redis://chat-main/3"
    assert cache["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert cache["OPTIONS"]["SENTINELS"] == sentinels
    assert cache["OPTIONS"]["PASSWORD"] == "s3cret"
    assert prefix == "chatsite-db3"


def test_sentinel_without_redis_url_is_database_0_and_redis_is_on_everywhere():
    hosts, session_engine, enabled = shown(
        "settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'], settings.SESSION_ENGINE,"
        " shared_redis.enabled()",
        setup="from rooms import redis as shared_redis",
        CHATSITE_DEV="1",
        REDIS_URL="",
        REDIS_SENTINELS="10.0.0.5:26379",
        REDIS_SENTINEL_MASTER="chat",
    )
    assert (hosts[0]["master_name"], hosts[0]["db"], "password" in hosts[0]) == ("chat", 0, False)
    assert session_engine == "django.contrib.sessions.backends.cached_db"
    assert enabled is True


def test_presence_and_rate_limits_ask_the_sentinels_for_the_master():
    """A bounded pool of master connections, with today's timeouts, found through Sentinel."""
    pool = shown(
        "type(pool).__name__, pool.service_name, pool.is_master, pool.max_connections,"
        " pool.timeout, {k: pool.connection_kwargs.get(k) for k in"
        " ('db', 'password', 'socket_timeout', 'socket_connect_timeout')},"
        " [s.connection_pool.connection_kwargs['socket_timeout']"
        " for s in pool.sentinel_manager.sentinels]",
        setup=PRESENCE_POOL,
        CHATSITE_DEV="1",
        REDIS_URL="redis://:s3cret@/4",
        REDIS_SENTINELS="10.0.0.5:26379,10.0.0.6:26379",
        REDIS_SENTINEL_MASTER="chat",
    )
    assert pool == (
        "BlockingSentinelConnectionPool",
        "chat",
        True,
        32,
        5,
        {"db": 4, "password": "s3cret", "socket_timeout": 1, "socket_connect_timeout": 1},
        [1, 1],
    )


def test_the_cache_asks_the_sentinels_for_the_master():
    """django-redis reads the options as given (its pool is made without connecting)."""
    pool = shown(
        "type(pool).__name__, pool.service_name, pool.connection_kwargs['db'],"
        " pool.connection_kwargs['password'], pool.sentinel_manager.sentinels[0]"
        ".connection_pool.connection_kwargs['port']",
        setup="from django.core.cache import cache\n"
        "pool = cache.client.get_client().connection_pool",
        CHATSITE_DEV="1",
        REDIS_URL="redis://:s3cret@chat/5",
        REDIS_SENTINELS="10.0.0.5:26379",
        REDIS_SENTINEL_MASTER="chat",
    )
    assert pool == ("SentinelConnectionPool", "chat", 5, "s3cret", 26379)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"REDIS_SENTINELS": "10.0.0.5:26379"},
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together",
        ),
        (
            {"REDIS_SENTINEL_MASTER": "chat"},
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.5", "REDIS_SENTINEL_MASTER": "chat"},
            "REDIS_SENTINELS: '10.0.0.5' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.5:26379,10.0.0.6:sentinel", "REDIS_SENTINEL_MASTER": "c"},
            "REDIS_SENTINELS: '10.0.0.6:sentinel' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": ":26379", "REDIS_SENTINEL_MASTER": "chat"},
            "REDIS_SENTINELS: ':26379' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.5:70000", "REDIS_SENTINEL_MASTER": "chat"},
            "REDIS_SENTINELS: '10.0.0.5:70000' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.5:26379", "REDIS_SENTINEL_MASTER": "Chat Main"},
            "REDIS_SENTINEL_MASTER='Chat Main': use lower-case",
        ),
        (
            {
                "REDIS_SENTINELS": "10.0.0.5:26379",
                "REDIS_SENTINEL_MASTER": "chat",
                "REDIS_URL": "redis://10.0.0.9:6379/0",
            },
            "with REDIS_SENTINELS, Sentinel finds the server",
        ),
        (
            {
                "REDIS_SENTINELS": "10.0.0.5:26379",
                "REDIS_SENTINEL_MASTER": "chat",
                "REDIS_URL": "rediss://chat/0",
            },
            "with REDIS_SENTINELS, Sentinel finds the server",
        ),
        (
            {"REDIS_URL": "redis://one.internal:6379/0,redis://one.internal:6379/0"},
            "lists a server twice",
        ),
        (
            {"REDIS_URL": "redis://one.internal:6379/0,two.internal:6379"},
            "REDIS_URL='two.internal:6379' is not a Redis URL",
        ),
    ],
)
def test_bad_redis_server_settings_stop_start_up(env, error):
    result = start_up(CHATSITE_DEV="1", **{"REDIS_URL": "", **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and error in result.stderr, result.stderr
