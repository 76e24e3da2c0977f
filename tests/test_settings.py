"""Configuration from the environment (contract §2): junk stops start-up with a clear error."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_up(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings the way a worker does, in a clean process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHATSITE_"))}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            "print(settings.DEBUG, settings.ALLOWED_HOSTS, settings.DATABASES['default']['ENGINE'],"
            " settings.CHANNEL_LAYERS['default']['BACKEND'])",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
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


def test_the_production_example_passes_the_deploy_check():
    """deploy/chatsite.env.example, with a real secret, is what `check --deploy` wants."""
    example = {}
    for line in (ROOT / "deploy" / "chatsite.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name] = value
    example["DJANGO_SECRET_KEY"] = "s3cr3t-" + "k" * 50
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHATSITE_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **example},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
