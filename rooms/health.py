"""GET /healthz: the truth for the load balancer."""

import asyncio
import contextlib
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

from . import fanout

LAYER_TIMEOUT_SECONDS = 2.0


def _database_ok() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        # Drop the broken connection so the next check (or request) opens a fresh one.
        with contextlib.suppress(Exception):
            connection.close()
        return False


async def _layer_round_trip() -> bool:
    """Send a message to a fresh channel and read it back."""
    layer = get_channel_layer()
    if layer is None:
        return False
    # The default prefix: channels-redis reads all of a process's channels of one prefix through
    # one list, so this shares the hub's reader instead of waiting for its lock.
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.check", "token": token})
    message = await layer.receive(channel)
    return message.get("token") == token


async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer both answer, else 503 naming the culprit
    (and 503 with `"worker": "draining"` while this worker shuts down)."""
    database = await sync_to_async(_database_ok)()
    try:
        layer = await asyncio.wait_for(_layer_round_trip(), LAYER_TIMEOUT_SECONDS)
    except Exception:
        layer = False
    hub = fanout.Hub.running
    draining = hub is not None and hub.draining
    healthy = database and layer and not draining
    body = {
        "status": "ok" if healthy else "error",
        "database": "ok" if database else "error",
        "channel_layer": "ok" if layer else "error",
    }
    if draining:
        body["worker"] = "draining"
    return JsonResponse(body, status=200 if healthy else 503)
