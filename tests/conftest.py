"""Fixtures shared by every test: personas (alice owns, bob is a member, carol is an outsider)
and the real services the suite uses where they run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model

IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct-horse-battery-staple"


def require(component: str, available: bool, reason: str) -> None:
    """Skip with a one-line reason when a component is missing; under CI=true, fail."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{component} is required under CI=true: {reason}")
    pytest.skip(f"{component} unavailable: {reason}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


TEST_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def require_redis() -> str:
    """The test Redis URL; skips (fails under CI=true) when nothing answers there."""
    parsed = urlparse(TEST_REDIS_URL)
    require(
        "Redis",
        port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379),
        f"nothing answers at {parsed.hostname}:{parsed.port}",
    )
    return TEST_REDIS_URL


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis (skipped without one)."""
    return require_redis()


@pytest.fixture
def user_factory(db: None) -> Callable[..., object]:
    def make(username: str, **extra: object) -> object:
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(user_factory: Callable[..., object]) -> object:
    return user_factory("alice")


@pytest.fixture
def bob(user_factory: Callable[..., object]) -> object:
    return user_factory("bob")


@pytest.fixture
def carol(user_factory: Callable[..., object]) -> object:
    return user_factory("carol")


@pytest.fixture
def staff(user_factory: Callable[..., object]) -> object:
    return user_factory("sam", is_staff=True, is_superuser=True)


@pytest.fixture
def public_room(alice: object, bob: object) -> object:
    """#lobby: owned by alice, bob has joined."""
    from rooms import services

    room = services.create_room(creator=alice, name="Lobby", slug="lobby", topic="Say hi")
    services.join_room(user=bob, room=room)
    return room


@pytest.fixture
def private_room(alice: object, bob: object) -> object:
    """#secret: private, alice and bob are members, carol is not."""
    from rooms import moderation, services

    room = services.create_room(creator=alice, name="Secret", slug="secret", is_private=True)
    moderation.invite(actor=alice, room=room, target=bob)
    return room


@pytest.fixture(autouse=True)
def _reset_local_state() -> Iterator[None]:
    """In-process presence and rate limits start empty in every test."""
    from rooms import presence, ratelimit

    presence._local_presence.conns.clear()
    ratelimit.reset_local()
    yield
