"""Create many users, their sessions and (optionally) room memberships straight in a database.

Signing up costs one PBKDF2 hash (about 0.2 s of server CPU here), so a thousand sign-ups over
HTTP would take minutes; the load generator signs a few users up over HTTP and seeds the rest
with this command, run against the scenario's DATABASE_URL:

    python -m bench.seed --prefix u --count 1000 [--rooms a,b,c] > users.json

It prints `{"users": [[username, session_key], …]}`. Every user gets the same password hash
(`--password`), so any of them can also sign in over HTTP.

`--layout FILE` (`-`: standard input) also creates rooms, with their members given by user
index, so a thousand rooms cost a second instead of a thousand form posts:

    {"rooms": [{"slug": "pair-0", "kind": "private", "members": [0, 1000]}, …]}
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

DEFAULT_PASSWORD = "bench-password-1234"


def seed(
    prefix: str,
    count: int,
    rooms: list[str],
    password: str,
    layout: list[dict[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    """Create `count` users named prefix0…, one session each; user i joins rooms[i % len].
    Then create the rooms of `layout` (slug, kind, members: user indices), each with its
    members (the first one its owner)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from rooms.models import Membership, Room

    user_model = get_user_model()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    hashed = make_password(password)
    names = [f"{prefix}{i}" for i in range(count)]
    expires = timezone.now() + timedelta(days=1)
    with transaction.atomic():
        user_model.objects.bulk_create(
            [user_model(username=name, password=hashed) for name in names], batch_size=500
        )
        users = list(user_model.objects.filter(username__in=names).order_by("pk"))
        by_name = {u.get_username(): u for u in users}
        sessions = []
        keys = []
        for name in names:
            user = by_name[name]
            key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
            data = store.encode(
                {
                    SESSION_KEY: str(user.pk),
                    BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash(),
                }
            )
            sessions.append(Session(session_key=key, session_data=data, expire_date=expires))
            keys.append((name, key))
        Session.objects.bulk_create(sessions, batch_size=500)
        if rooms:
            room_rows = list(Room.objects.filter(slug__in=rooms))
            by_slug = {r.slug: r for r in room_rows}
            Membership.objects.bulk_create(
                [
                    Membership(
                        user=by_name[name],
                        room=by_slug[rooms[i % len(rooms)]],
                        last_read=by_slug[rooms[i % len(rooms)]].last_seq,
                    )
                    for i, name in enumerate(names)
                ],
                batch_size=500,
            )
        if layout:
            Room.objects.bulk_create(
                [
                    Room(
                        slug=spec["slug"],
                        name=spec.get("name") or spec["slug"],
                        kind=spec.get("kind", Room.Kind.PUBLIC),
                    )
                    for spec in layout
                ],
                batch_size=500,
            )
            made = dict(
                Room.objects.filter(slug__in=[spec["slug"] for spec in layout]).values_list(
                    "slug", "pk"
                )
            )
            Membership.objects.bulk_create(
                [
                    Membership(
                        user=by_name[names[member]],
                        room_id=made[spec["slug"]],
                        role=Membership.Role.OWNER if at == 0 else Membership.Role.MEMBER,
                    )
                    for spec in layout
                    for at, member in enumerate(spec["members"])
                ],
                batch_size=1000,
            )
    return keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="u")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rooms", default="", help="comma-separated slugs to make members of")
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument(
        "--layout", default="", help='rooms to create, JSON {"rooms": [...]} (-: standard input)'
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    rooms = [slug for slug in args.rooms.split(",") if slug]
    layout = None
    if args.layout:
        raw = sys.stdin.buffer.read() if args.layout == "-" else Path(args.layout).read_bytes()
        layout = orjson.loads(raw)["rooms"]
    keys = seed(args.prefix, args.count, rooms, args.password, layout)
    sys.stdout.buffer.write(orjson.dumps({"users": keys}))


if __name__ == "__main__":
    main()
