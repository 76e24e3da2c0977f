"""The HTTP fallback transport (contract §5): one Server-Sent Events stream down, POSTs up.

`GET /chat/stream/` carries a `ChatSession` (rooms/session.py) as a WebSocket does: the
`StreamConsumer` writes each server frame as one event and hands the session the client frames
that POSTs bring, one at a time and in order. It has no chat logic of its own.

A POST may land on any worker. A stream's ID is signed and names the worker holding it (its
hub's own channel-layer channel, rooms/fanout.py) and a random token. The worker taking the POST
sends the frames there (or, holding the stream itself, queues them at once) and answers with what
the holder said: 202 once they are queued, 404 for a stream it does not hold (ended, or its
worker gone), 403 for another user's, 429 while the stream's queue is full. A client posts one
batch at a time, so its frames are handled in the order it posted them.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import itertools
import logging
import secrets
from collections import deque
from functools import partial
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

import orjson
from channels.auth import get_user
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.core import signing
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware

from . import fanout, protocol
from .session import ChatSession
from .sockets import Broadcast, server_stream

logger = logging.getLogger(__name__)
LIMITS = settings.CHAT

SIGNING_SALT = "rooms.streams"
KEEPALIVE = b": keep-alive\n\n"

ACCEPTED, FORBIDDEN, GONE, BUSY, UNAVAILABLE = 202, 403, 404, 429, 503
DETAILS = {
    FORBIDDEN: ("forbidden", "This stream belongs to another user."),
    GONE: ("not_found", "No such stream: open a new one and resume by seq."),
    BUSY: ("rate_limited", "The stream has frames waiting: post again shortly."),
    UNAVAILABLE: ("internal", "The stream's worker cannot be reached: post again shortly."),
}

# This worker's open streams by token, and POSTs waiting for another worker's answer by id.
_held: dict[str, StreamConsumer] = {}
_waiting: dict[str, asyncio.Future[int]] = {}
_event_ids = itertools.count(1)


class StreamConsumer(AsyncHttpConsumer):
    """`GET /chat/stream/`: a `ChatSession` over Server-Sent Events (the session's Transport)."""

    session: ChatSession | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the stream until its client leaves or the session ends it.

        Unlike AsyncHttpConsumer's, it outlives the request (the response goes on) and has no
        channel-layer channel of its own: the hub writes room events and posted frames to it.
        """
        self.scope = scope
        self.base_send = send
        # The stream's own context: posted frames are handled in it, whoever brought them.
        self.context = contextvars.copy_context()
        self.server = server_stream(scope)
        self.token = secrets.token_urlsafe(18)
        self.stream_id = ""
        self.accepted = False
        self.finished = False
        self.overflowed = False
        self.busy = False  # written to since the last keep-alive round
        # Posted frames not yet handled (None: one over MAX_FRAME_BYTES), and their size.
        self.inbox: deque[str | None] = deque()
        self.inbox_bytes = 0
        self.reader: asyncio.Task[None] | None = None
        try:
            while True:
                message = await receive()
                if message["type"] == "http.request" and not message.get("more_body"):
                    await self.start()
                elif message["type"] == "http.disconnect":
                    await self.disconnect()
                    return
        except StopConsumer:
            pass

    async def start(self) -> None:
        """Greet the user with `hello`, or refuse the stream (403)."""
        if self.scope.get("method") != "GET":
            await self._refuse(405, b"GET opens a stream; POST frames to /chat/stream/<ID>/.")
            return
        if not _origin_allowed(self.scope):
            await self._refuse(403, b"Origin not allowed.")
            return
        user = self.scope.pop("user", None)
        # The stream is its session's transport and its ServerSocket too: a broadcast is one
        # event, encoded once for every stream of the worker (`push`).
        self.session = ChatSession(self, self, user, self.scope.get("session_key"))
        try:
            await self.session.open()
        finally:
            self.server.handshake_over()

    async def disconnect(self) -> None:
        """The client left, or the response ended: forget the stream."""
        self.finished = True
        _held.pop(self.token, None)
        self.inbox.clear()
        if self.session is not None:
            await self.session.end()

    # --- the session's Transport ------------------------------------------------------------

    async def accept(self) -> None:
        hub = fanout.Hub.running
        assert hub is not None  # the session reached it before accepting
        _serve(hub)
        self.stream_id = signing.dumps([hub.channel or "", self.token], salt=SIGNING_SALT)
        self.accepted = True
        _held[self.token] = self
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache, no-store"),
                # nginx passes the stream on as it comes instead of buffering it.
                (b"x-accel-buffering", b"no"),
            ],
        )

    def hello_fields(self) -> dict[str, Any]:
        return {"stream": self.stream_id}

    async def send_text(self, text: str) -> None:
        """One server frame as one event."""
        await self._write(_event(text))

    async def close(self, code: int | None = None) -> None:
        """End the stream with a `close` event; before `accept`, refuse it (403)."""
        if self.finished:
            return
        if not self.accepted:
            await self._refuse(403, b"Sign in first.")
            return
        self.finished = True
        _held.pop(self.token, None)
        self.server.finishing(self.overflowed)
        frame = protocol.encode(protocol.closed(code or protocol.CLOSE_SHUTDOWN))
        await self.send_body(b"data: %s\n\n" % frame.encode(), more_body=False)

    async def _write(self, data: bytes) -> None:
        if self.finished:
            return
        if not self.server.admit(len(data)):
            self.overflowed = True
            await self.close(protocol.CLOSE_SLOW_READER)
            return
        self.busy = True
        await self.send_body(data, more_body=True)

    async def _refuse(self, status: int, body: bytes) -> None:
        self.finished = True
        self.server.finishing(False)
        await self.send_response(status, body, headers=[(b"content-type", b"text/plain")])

    # --- the session's ServerSocket: what the server beneath offers ---------------------------

    def push(self, frame: Broadcast) -> bool:
        """Write a broadcast's event straight to the response if the server can."""
        if self.finished:
            return True
        if frame.event is None:
            frame.event = _event(frame.text)
        self.busy = True
        return self.server.write_now(frame.event)

    def handshake_over(self) -> None:
        self.server.handshake_over()

    def opened(self) -> None:
        self.server.opened()

    def frame_taken(self) -> None:
        return None

    async def wait_for_output(self) -> None:
        await self.server.wait_for_output()

    async def keep_alive(self) -> None:
        """A comment: proxies see traffic on an idle stream and keep it open."""
        await self._write(KEEPALIVE)

    # --- posted frames ------------------------------------------------------------------------

    def take(self, frames: list[str | None]) -> int:
        """Queue posted frames for the session (ACCEPTED), or say why not."""
        if self.finished or self.session is None or self.session.closed:
            return GONE
        size = sum(len(frame) if frame is not None else 0 for frame in frames)
        if self.inbox and (
            len(self.inbox) + len(frames) > 2 * LIMITS["STREAM_BATCH_FRAMES"]
            or self.inbox_bytes + size > LIMITS["STREAM_POST_BYTES"]
        ):
            # Two batches waiting: the client posts faster than the session takes them.
            return BUSY
        self.inbox.extend(frames)
        self.inbox_bytes += size
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read(), context=self.context)
        return ACCEPTED

    async def _read(self) -> None:
        """Hand the session its posted frames, one at a time, in order."""
        session = self.session
        assert session is not None
        while self.inbox and not self.finished:
            frame = self.inbox.popleft()
            # As over a WebSocket: a client that asks without reading gets its next answer
            # once it has read the last one.
            await self.server.wait_for_output()
            if frame is None:
                await session.close_with(protocol.CLOSE_TOO_BIG)
                continue
            self.inbox_bytes -= len(frame)
            await session.receive(frame)


def _event(text: str) -> bytes:
    """A server frame as one event. Its `id` (this worker's count of events) lets an
    EventSource say where it was; a broadcast's event, and so its id, is the same on every
    stream of the worker."""
    return b"id: %d\ndata: %s\n\n" % (next(_event_ids), text.encode())


def _origin_allowed(scope: dict[str, Any]) -> bool:
    """An `Origin`, when sent, must name an allowed host (as for the WebSocket handshake)."""
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            validator = AllowedHostsOriginValidator(None)
            return bool(validator.valid_origin(urlparse(value.decode("latin1"))))
    return True


# --- the worker's part: posted frames reach the stream wherever it is ------------------------


def _serve(hub: fanout.Hub) -> None:
    """Let this worker's hub take posted frames, answer for them and keep its streams alive."""
    # Layer messages between hubs: frames for a stream, to the hub holding it, and the holder's
    # status for them, back to the hub that took the POST.
    hub.on("stream.post", partial(_on_post, hub))
    hub.on("stream.answer", _answered)
    hub.run_alongside("stream-keepalive", _keep_alive)


def _on_post(hub: fanout.Hub, message: dict[str, Any]) -> None:
    # A task per POST, started in arrival order: each takes its frames before its first wait
    # (unless its session must be looked up), so frames are queued in the order they came.
    hub.loop.create_task(_answer(hub, message))


async def _answer(hub: fanout.Hub, message: dict[str, Any]) -> None:
    status = await _take(message["token"], message["session"], message["frames"])
    answer = {"type": "stream.answer", "id": message["id"], "status": status}
    try:
        await hub.send_to(message["reply"], answer, LIMITS["STREAM_ANSWER_SECONDS"])
    except Exception:
        logger.warning("could not answer a stream POST", exc_info=True)


def _answered(message: dict[str, Any]) -> None:
    waiting = _waiting.get(message.get("id", ""))
    if waiting is not None and not waiting.done():
        waiting.set_result(int(message["status"]))


async def _take(token: str, session_key: str, frames: list[str | None]) -> int:
    """Queue posted frames for the stream if the POST's session may post to it.

    A POST comes from the session that opened the stream, as a rule: then the keys match and
    nothing is looked up. Only another session's POST costs a query, to compare its user.
    """
    stream = _held.get(token)
    if stream is None or stream.session is None:
        return GONE
    if session_key != stream.session.session_key and (
        await _user_of(session_key) != stream.session.user_id
    ):
        return FORBIDDEN
    return stream.take(frames)


async def _user_of(session_key: str) -> int | None:
    """The pk of the session's signed-in user, if any."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = await get_user({"session": store})
    return user.pk if user.is_authenticated else None


async def _keep_alive() -> None:
    """A comment to every stream that nothing was written to since the last round: whatever
    happens, a stream hears from the worker at least every two rounds."""
    while True:
        await asyncio.sleep(LIMITS["STREAM_KEEPALIVE_SECONDS"])
        for stream in list(_held.values()):
            if stream.busy:
                stream.busy = False
                continue
            try:
                await stream.keep_alive()
            except Exception:
                logger.debug("keep-alive to a closing stream failed", exc_info=True)


async def hand_over(stream_id: str, session_key: str, frames: list[str | None]) -> int:
    """Give frames posted by a session to the stream, on whichever worker holds it; the
    holder's status for them."""
    try:
        channel, token = signing.loads(stream_id, salt=SIGNING_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return GONE
    hub = await fanout.Hub.get()
    if not await hub.wait_ready():
        return UNAVAILABLE
    _serve(hub)
    if channel == (hub.channel or ""):
        return await _take(token, session_key, frames)
    if not channel:
        return GONE  # a stream of a worker without a channel layer
    request_id = secrets.token_hex(8)
    answer = _waiting[request_id] = hub.loop.create_future()
    try:
        message = {
            "type": "stream.post",
            "token": token,
            "session": session_key,
            "frames": frames,
            "reply": hub.channel,
            "id": request_id,
        }
        try:
            await hub.send_to(channel, message, LIMITS["STREAM_ANSWER_SECONDS"])
        except Exception:
            logger.warning("could not hand posted frames over", exc_info=True)
            return UNAVAILABLE
        try:
            return await asyncio.wait_for(answer, LIMITS["STREAM_ANSWER_SECONDS"])
        except TimeoutError:
            return GONE  # nobody holds it: its worker is gone
    finally:
        _waiting.pop(request_id, None)


class BadBatch(ValueError):
    pass


def split(body: bytes) -> list[str | None]:
    """A POST body as client frames: a JSON array is a batch, anything else is one frame (the
    session answers what is wrong with it). A frame over MAX_FRAME_BYTES is None: it is not
    carried, and the stream closes with 4009 when it comes to it."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list):
        if len(parsed) > LIMITS["STREAM_BATCH_FRAMES"]:
            raise BadBatch(f"At most {LIMITS['STREAM_BATCH_FRAMES']} frames per POST.")
        frames = [orjson.dumps(item).decode() for item in parsed]
    else:
        frames = [body.decode("utf-8", "replace")]
    limit = LIMITS["MAX_FRAME_BYTES"]
    return [f if len(f) <= limit // 4 or len(f.encode()) <= limit else None for f in frames]


class PostConsumer(AsyncHttpConsumer):
    """`POST /chat/stream/<ID>/` (`post`), straight from the ASGI router.

    A POST is a stream's way up, as a message is a socket's: through Django's request handling
    (every middleware, and request signals that each hop to a database thread) it cost the
    worker several times the frames it carried (docs/performance.md). It needs none of it but
    the CSRF check, which is Django's own middleware here too.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        body: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= LIMITS["STREAM_POST_BYTES"]:
                body.append(chunk)  # past the limit, read on but keep nothing (413)
            if not message.get("more_body"):
                break
        too_big = size > LIMITS["STREAM_POST_BYTES"]
        response = await self.respond(None if too_big else b"".join(body))
        await self.send_response(
            response.status_code,
            response.content,
            headers=[(k.encode("latin1"), v.encode("latin1")) for k, v in response.items()],
        )

    async def respond(self, body: bytes | None) -> HttpResponse:
        request = ASGIRequest(self.scope, io.BytesIO(body or b""))
        try:
            refused = CsrfViewMiddleware(_no_view).process_view(request, _no_view, (), {})
        except SuspiciousOperation:  # a Host not allowed
            return _error(400, "bad_request", "Host not allowed.")
        if refused is not None:
            return refused
        if body is None:
            limit = LIMITS["STREAM_POST_BYTES"]
            return _error(413, "too_long", f"A POST carries at most {limit} bytes.")
        return await post(request, self.scope["url_route"]["kwargs"]["stream_id"])


def _no_view(request: HttpRequest) -> HttpResponse:
    """Stands for the view the CSRF middleware asks about: only its check is used."""
    raise AssertionError("never called")


async def post(request: HttpRequest, stream_id: str) -> JsonResponse:
    """One client frame, or a JSON array of up to 50, for the stream; 202 once the stream's
    worker has them (the replies come on the stream)."""
    if request.method != "POST":
        return _error(405, "bad_request", "POST frames here; GET /chat/stream/ opens a stream.")
    # The session, not its user: the stream's worker compares it with the stream's own, so
    # a POST costs no database query (Django would run one in a thread, and so a database
    # connection, of the request's own).
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    if not session_key:
        return _error(FORBIDDEN, "forbidden", "Sign in first.")
    limit = LIMITS["STREAM_POST_BYTES"]
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit or len(request.body) > limit:
        return _error(413, "too_long", f"A POST carries at most {limit} bytes.")
    try:
        frames = split(request.body)
    except BadBatch as exc:
        return _error(400, "bad_frame", str(exc))
    status = await hand_over(stream_id, session_key, frames)
    if status == ACCEPTED:
        return JsonResponse({"accepted": len(frames)}, status=ACCEPTED)
    response = _error(status, *DETAILS[status])
    if status in (BUSY, UNAVAILABLE):
        response["Retry-After"] = "1"
    return response


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)
