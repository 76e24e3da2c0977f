"""Chat clients in one or more processes, over /ws/chat/ or the HTTP fallback, and what they
measured.

A `LoadGenerator` spreads clients over client processes (or runs them in the calling process
with `processes=0`, as the CI guard does) and over the given ws URLs, so it can target one
worker, several, or a load balancer. A client is a WebSocket (`ChatSocket`) or, for a share of
them (`plan(stream_share=…)`), an HTTP stream (`ChatStream`: `GET /chat/stream/` read as
Server-Sent Events, its frames POSTed to `/chat/stream/<ID>/` over a kept-alive connection of
its own). Each carries a signed-in session cookie and an allowed `Origin`, joins its room with
`{"type": "join"}` and, if it is a sender, sends `{"type": "send", "ref": …}` at its share of a
fixed total rate (open loop: sends do not wait for acks); or a step follows a plan of sends
made beforehand (`step(planned=…)`: when, who, into which of their rooms). Every `message` event
a client receives is a delivery; its `ref` carries the step, the sending process and the
sender's CLOCK_MONOTONIC time in nanoseconds, which every process on the machine shares, so the
receiving process computes the latency itself:

    ref = "b<step>.<process>.<n>.<monotonic_ns at send>"

A step's deliveries expected are, for each message acked (or delivered at least once), the
number of clients that joined its room; lost = expected − delivered within the drain window.
Latencies are kept by the receiving client's transport, and the sender's own `ack` gives the
way up (send → stored → ack) by the sending client's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from .stats import Sampler, Usage, percentile

# Sockets a client process opens at once: a crowd, which the workers admit in turn
# (chatsite/server/crowds.py). Joins go at most JOIN_CONCURRENCY at once.
CONNECT_CONCURRENCY = 500
JOIN_CONCURRENCY = 32
CONNECT_ATTEMPTS = 3
OPEN_TIMEOUT = 30.0
REPLY_TIMEOUT = 30.0
CALL_TIMEOUT = 900.0  # one command to a client process, at most
BODY = "load test message " * 4
CLEAN_P99_MS = 250.0  # a step is clean with nothing lost and p99 under this
# The two transports of the chat (contract §4 and §5).
WEBSOCKET, STREAM = "websocket", "stream"
TRANSPORTS = (WEBSOCKET, STREAM)
STREAM_BATCH_FRAMES = 50  # frames per POST, at most (the contract's limit)


@dataclass(frozen=True)
class ClientSpec:
    """One client to open: where, as whom, which room to join, whether it sends, and over
    which transport (a stream POSTs its frames to `post_url`, by default `url`'s worker).
    `also`: more rooms the user is a member of already (seeded so, `join(members=True)`),
    whose messages the client receives too."""

    url: str
    session_key: str
    room: str | None = None
    sender: bool = False
    transport: str = WEBSOCKET
    post_url: str = ""
    also: tuple[str, ...] = ()

    @property
    def rooms(self) -> tuple[str, ...]:
        return (self.room, *self.also) if self.room is not None else self.also


def origin_of(ws_url: str) -> str:
    """The Origin a browser on that site would send: http://host:port."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


def check_loopback(url: str) -> None:
    """Only plain ws:// to this machine: a load test never leaves the loopback interface."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"the load generator speaks plain ws:// only, not {url}")
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError(f"the load generator only targets loopback addresses, not {url}")


class ChatSocket(asyncio.Protocol):
    """One client socket: the websockets library's sans-I/O protocol on an asyncio transport.

    Frames are handled in `data_received`, without a task or a future per message, so a
    client process spends its CPU on reading deliveries, not on waking coroutines.
    """

    kind = WEBSOCKET

    def __init__(self, worker: ClientWorker, spec: ClientSpec) -> None:
        self.worker = worker
        self.spec = spec
        self.ws = ClientProtocol(
            parse_uri(spec.url), origin=Origin(origin_of(spec.url)), max_size=None
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.joined = False
        self.closing = False
        self._fragments: list[bytes] = []

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.closing and self.ws.state is State.OPEN

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        request = self.ws.connect()
        request.headers["Cookie"] = f"sessionid={self.spec.session_key}"
        request.headers["User-Agent"] = "chatsite-bench"
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT or event.opcode is Opcode.CONT:
                    if not event.fin:
                        self._fragments.append(event.data)
                        continue
                    if self._fragments:
                        payload = b"".join([*self._fragments, event.data])
                        self._fragments = []
                    else:
                        payload = event.data
                    self.worker.on_frame(self, payload)
                elif event.opcode is Opcode.CLOSE:
                    self._closed_by_peer()
            elif isinstance(event, Response) and self.ws.handshake_exc is not None:
                self._fail(self.ws.handshake_exc)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self._closed_by_peer()
        self.closing = True
        self._fail(exc or ConnectionError("socket closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    # --- what the worker calls ----------------------------------------------------------------

    def send_text(self, text: bytes) -> bool:
        if not self.is_open:
            return False
        self.ws.send_text(text)
        self._flush()
        return True

    async def request(self, frame: dict[str, Any], ref: str) -> dict[str, Any]:
        """Send a frame with `ref` and wait for the reply that echoes it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ref] = future
        try:
            if not self.send_text(orjson.dumps({**frame, "ref": ref})):
                raise ConnectionError("socket closed")
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            self.pending.pop(ref, None)

    async def close(self) -> None:
        """Close with 1000 and wait (briefly) for the server to end the connection."""
        self.closing = True
        if self.transport is None:
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 5)
        self.transport.abort()

    # --- internals ----------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        if self.ws.close_expected():
            self.transport.close()

    def _closed_by_peer(self) -> None:
        if self.closing:
            return
        self.closing = True
        code = self.ws.close_rcvd.code if self.ws.close_rcvd is not None else 1006
        self.worker.closes[str(code)] += 1

    def _fail(self, exc: BaseException) -> None:
        if not self.hello.done():
            self.hello.set_exception(exc)
            self.hello.exception()  # handled by whoever awaits; no "never retrieved" warning
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))


class Dechunker:
    """The body of a chunked HTTP/1.1 response (RFC 9112 §7.1), as it arrives."""

    __slots__ = ("raw", "left", "crlf", "ended")

    def __init__(self) -> None:
        self.raw = bytearray()
        self.left = 0  # bytes of the current chunk still to come
        self.crlf = 0  # bytes of the CRLF after it still to skip
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes in `data` (and in what came before it, unparsed)."""
        raw = self.raw
        raw += data
        out = bytearray()
        while raw and not self.ended:
            if self.crlf:
                skip = min(self.crlf, len(raw))
                del raw[:skip]
                self.crlf -= skip
            elif self.left:
                take = min(self.left, len(raw))
                out += raw[:take]
                del raw[:take]
                self.left -= take
                if not self.left:
                    self.crlf = 2
            else:
                end = raw.find(b"\r\n")
                if end < 0:
                    break
                self.left = int(bytes(raw[:end]).split(b";", 1)[0], 16)
                del raw[: end + 2]
                if not self.left:
                    self.ended = True  # the last chunk; trailers are not read
        return bytes(out)


class StreamRefused(ConnectionError):
    """`GET /chat/stream/` answered another status than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"GET /chat/stream/ answered {status}")
        self.status = status


def failure_name(exc: BaseException) -> str:
    """How a client that could not open is counted: the error's type, with the HTTP status of
    a refused handshake or stream (`InvalidStatus 503`)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def response_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """An HTTP/1.1 response's status and headers (lower-case names) from its head."""
    lines = raw.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class ChatStream(asyncio.Protocol):
    """One client on the HTTP fallback (contract §5), with the interface of `ChatSocket`.

    This protocol reads `GET /chat/stream/`: a chunked body of Server-Sent Events, each event's
    `data:` a server frame handed to the worker as a WebSocket's frame is. Frames to send go to
    a `StreamPosts` connection of the client's own, kept alive, one POST in flight at a time;
    frames queued meanwhile go together in the next POST, as a JSON array.
    """

    kind = STREAM

    def __init__(self, worker: ClientWorker, spec: ClientSpec) -> None:
        self.worker = worker
        self.spec = spec
        self.origin = origin_of(spec.url)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.joined = False
        self.closing = False
        self.stream_id = ""
        # A browser's csrftoken cookie: Django accepts any well-formed secret the client holds,
        # as long as the X-CSRFToken header repeats it.
        self.csrf = secrets.token_hex(16)
        self.posts: StreamPosts | None = None
        self.outbox: list[bytes] = []  # frames not yet posted
        self._connecting = False
        self._head = b""
        self._headers_done = False
        self._body: Dechunker | None = None
        self._events = bytearray()

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.closing and bool(self.stream_id)

    # --- asyncio.Protocol: the stream ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host = urlsplit(self.spec.url).netloc
        self.transport.write(
            (
                f"GET /chat/stream/ HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                f"Cookie: sessionid={self.spec.session_key}\r\nOrigin: {self.origin}\r\n"
                "User-Agent: chatsite-bench\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self._headers_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status, headers = response_head(self._head[:end])
            data, self._head = self._head[end + 4 :], b""
            self._headers_done = True
            if status != 200:
                self._fail(StreamRefused(status))
                self.closing = True
                self.transport.abort()  # type: ignore[union-attr]
                return
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._body = Dechunker()
        body = self._body.feed(data) if self._body is not None else data
        events = self._events
        events += body
        on_frame = self.worker.on_frame
        while (end := events.find(b"\n\n")) >= 0:
            block = bytes(events[:end])
            del events[: end + 2]
            at = block.find(b"data:")
            if at >= 0:  # else a comment (`: keep-alive`)
                on_frame(self, block[at + 5 :])
        if self._body is not None and self._body.ended and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.worker.closes["1006"] += 1
        self.closing = True
        self._fail(exc or ConnectionError("stream ended"))
        if self.posts is not None and self.posts.transport is not None:
            self.posts.transport.abort()
        if not self.lost.done():
            self.lost.set_result(None)

    # --- what the worker calls ----------------------------------------------------------------

    def greeted(self, hello: dict[str, Any]) -> None:
        self.stream_id = hello.get("stream", "")

    def ended(self, code: int) -> None:
        """The stream's `close` event: it ends as a socket closes with `code`."""
        if not self.closing:
            self.closing = True
            self.worker.closes[str(code)] += 1

    def send_text(self, text: bytes) -> bool:
        if not self.is_open:
            return False
        self.outbox.append(text)
        self.post_next()
        return True

    async def request(self, frame: dict[str, Any], ref: str) -> dict[str, Any]:
        """Send a frame with `ref` and wait for the reply that echoes it (on the stream)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ref] = future
        try:
            if not self.send_text(orjson.dumps({**frame, "ref": ref})):
                raise ConnectionError("stream closed")
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            self.pending.pop(ref, None)

    async def open_posts(self) -> None:
        """Open the connection the frames are POSTed over (again, after the server closed it)."""
        if self._connecting:
            return
        self._connecting = True
        try:
            parts = urlsplit(self.spec.post_url or self.spec.url)
            posts = StreamPosts(self)
            await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(
                    lambda: posts, parts.hostname, parts.port or 80
                ),
                OPEN_TIMEOUT,
            )
            self.posts = posts
        finally:
            self._connecting = False
        self.post_next()

    def post_next(self) -> None:
        """POST what waits, unless a POST is in flight (its answer calls this again)."""
        posts = self.posts
        if not self.outbox or self.closing:
            return
        if posts is None or posts.transport is None or posts.transport.is_closing():
            if not self._connecting:
                self.posts = None
                task = asyncio.get_running_loop().create_task(self.open_posts())
                self.worker.background(task)
            return
        if posts.in_flight:
            return
        batch = self.outbox[:STREAM_BATCH_FRAMES]
        del self.outbox[:STREAM_BATCH_FRAMES]
        posts.post(batch)

    async def close(self) -> None:
        """Leave, as a closed tab does: drop both connections."""
        self.closing = True
        if self.posts is not None and self.posts.transport is not None:
            self.posts.transport.abort()
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if not self.hello.done():
            self.hello.set_exception(exc)
            self.hello.exception()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("stream closed"))


class StreamPosts(asyncio.Protocol):
    """The kept-alive HTTP/1.1 connection a `ChatStream` POSTs its frames over, as a browser's
    fetch() sends them: session cookie, CSRF token, Origin; `202` expected, the replies come on
    the stream."""

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.in_flight: list[bytes] = []
        spec = stream.spec
        parts = urlsplit(spec.post_url or spec.url)
        self.head = (
            f"POST /chat/stream/{stream.stream_id}/ HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Cookie: sessionid={spec.session_key}; csrftoken={stream.csrf}\r\n"
            f"X-CSRFToken: {stream.csrf}\r\nOrigin: {origin_of(parts.geturl())}\r\n"
            "Content-Type: application/json\r\nUser-Agent: chatsite-bench\r\n"
        ).encode()
        self._reset()

    def _reset(self) -> None:
        self._raw = b""
        self._status = 0
        self._length: int | None = None  # of the answer's body; None: chunked
        self._chunks: Dechunker | None = None
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def post(self, batch: list[bytes]) -> None:
        body = batch[0] if len(batch) == 1 else b"[" + b",".join(batch) + b"]"
        self.in_flight = batch
        assert self.transport is not None
        self.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))

    def data_received(self, data: bytes) -> None:
        self._raw += data
        if not self._status:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self._status, headers = response_head(self._raw[:end])
            self._raw = self._raw[end + 4 :]
            self._close_after = headers.get("connection", "").lower() == "close"
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._chunks = Dechunker()
            else:
                self._length = int(headers.get("content-length") or 0)
        if self._chunks is not None:
            self._chunks.feed(self._raw)
            self._raw = b""
            if not self._chunks.ended:
                return
        elif self._length is not None and len(self._raw) < self._length:
            return
        self._answered()

    def _answered(self) -> None:
        status, close_after = self._status, self._close_after
        self._reset()
        batch, self.in_flight = self.in_flight, []
        stream = self.stream
        if close_after and self.transport is not None:
            self.transport.close()
        if status == 202:
            stream.post_next()
            return
        stream.worker.errors[f"post_{status}"] += 1
        if status in (429, 503):
            # Not taken: posted again after the Retry-After of a second.
            stream.outbox[:0] = batch
            asyncio.get_running_loop().call_later(1.0, stream.post_next)

    def connection_lost(self, exc: Exception | None) -> None:
        # A POST the server never answered is posted again: every frame carries a ref, so
        # nothing is stored twice.
        self.transport = None
        if self.in_flight:
            self.stream.outbox[:0] = self.in_flight
            self.in_flight = []
        if self.stream.posts is self:
            self.stream.posts = None
        self.stream.post_next()


Client = ChatSocket | ChatStream


class ClientWorker:
    """The clients of one client process; every public coroutine is a command of the pool."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sockets: list[Client] = []
        self.counts: dict[str, int] = {}
        # Delivery latencies by the receiver's transport; ack latencies by the sender's.
        self.latencies_us: dict[str, list[int]] = {kind: [] for kind in TRANSPORTS}
        self.ack_us: dict[str, list[int]] = {kind: [] for kind in TRANSPORTS}
        self.last_ns = 0
        self.acked: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.others: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.received = 0
        self._background: set[asyncio.Task[None]] = set()

    # --- commands -----------------------------------------------------------------------------

    async def connect(
        self,
        specs: list[ClientSpec],
        at_once: int = CONNECT_CONCURRENCY,
        attempts: int = CONNECT_ATTEMPTS,
    ) -> dict[str, Any]:
        """Open the sockets (at most `at_once` at a time), each until `hello`."""
        gate = asyncio.Semaphore(at_once)
        times: list[float] = []
        failures: Counter[str] = Counter()

        async def open_one(spec: ClientSpec) -> None:
            async with gate:
                for attempt in range(attempts):
                    started = time.monotonic()
                    try:
                        sock = await self._open(spec)
                    except Exception as exc:
                        if attempt == attempts - 1:
                            failures[failure_name(exc)] += 1
                            return
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    times.append(time.monotonic() - started)
                    self.sockets.append(sock)
                    return

        started = time.monotonic()
        await asyncio.gather(*(open_one(spec) for spec in specs))
        return {
            "opened": len(times),
            "failed": dict(failures),
            "seconds": time.monotonic() - started,
            "times": times,
        }

    async def join(self, members: bool = False) -> dict[str, Any]:
        """Join each client's room; returns how many clients joined each room (in all and by
        transport). `members`: the users are members already (seeded so), and a client whose
        `hello` lists its room counts as joined without asking."""
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        failures: Counter[str] = Counter()

        async def join_one(n: int, sock: Client) -> None:
            if members:
                listed = {room["slug"] for room in sock.hello.result()["rooms"]}
                sock.joined = all(room in listed for room in sock.spec.rooms)
                if not sock.joined:
                    failures["not_a_member"] += 1
                return
            async with gate:
                try:
                    reply = await sock.request(
                        {"type": "join", "room": sock.spec.room}, f"j{self.index}.{n}"
                    )
                except Exception as exc:
                    failures[type(exc).__name__] += 1
                    return
                if reply.get("type") == "joined":
                    sock.joined = True
                else:
                    failures[str(reply.get("code"))] += 1

        started = time.monotonic()
        await asyncio.gather(
            *(join_one(n, s) for n, s in enumerate(self.sockets) if s.spec.room is not None)
        )
        rooms = Counter(room for s in self.sockets if s.joined for room in s.spec.rooms)
        by_transport = {
            kind: dict(
                Counter(
                    room
                    for s in self.sockets
                    if s.joined and s.kind == kind
                    for room in s.spec.rooms
                )
            )
            for kind in TRANSPORTS
        }
        return {
            "rooms": dict(rooms),
            "by_transport": by_transport,
            "failed": dict(failures),
            "seconds": time.monotonic() - started,
        }

    async def send(
        self, step: int, rate: float, duration: float, start_at: float
    ) -> dict[str, Any]:
        """Send `rate` messages/s for `duration` s from time `start_at` (time.monotonic)."""
        senders = self._senders()
        sent: dict[str, str] = {}
        if not senders or rate <= 0:
            return {"sent": sent, "late_ms": 0.0}
        interval = 1.0 / rate
        total = int(rate * duration)
        worst_late = 0.0
        for n in range(total):
            target = start_at + n * interval
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                worst_late = max(worst_late, -delay)
            sock = senders[n % len(senders)]
            self._send_one(sock, sock.spec.room or "", step, n, sent)
        return {"sent": sent, "late_ms": worst_late * 1000}

    async def send_planned(
        self, step: int, plan: list[tuple[float, str, str]], start_at: float
    ) -> dict[str, Any]:
        """Send the planned messages of this process's clients: (seconds after `start_at`,
        session key, room) each, in time order."""
        by_key = {s.spec.session_key: s for s in self.sockets if s.joined}
        sent: dict[str, str] = {}
        worst_late = 0.0
        for n, (at, key, room) in enumerate(plan):
            delay = start_at + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                worst_late = max(worst_late, -delay)
            sock = by_key.get(key)
            if sock is not None:
                self._send_one(sock, room, step, n, sent)
        return {"sent": sent, "late_ms": worst_late * 1000}

    def _send_one(self, sock: Client, room: str, step: int, n: int, sent: dict[str, str]) -> None:
        ref = f"b{step}.{self.index}.{n}.{time.monotonic_ns()}"
        if sock.send_text(orjson.dumps({"type": "send", "room": room, "body": BODY, "ref": ref})):
            sent[ref] = room

    async def progress(self) -> dict[str, Any]:
        return {"received": self.received, "acked": len(self.acked)}

    async def collect(self) -> dict[str, Any]:
        """Hand over (and forget) what was recorded since the last collect."""
        result = {
            "counts": self.counts,
            "latencies_us": self.latencies_us,
            "ack_us": self.ack_us,
            "last_ns": self.last_ns,
            "acked": sorted(self.acked),
            "errors": dict(self.errors),
            "others": dict(self.others),
            "closes": dict(self.closes),
            "open": sum(1 for s in self.sockets if s.is_open),
        }
        self.counts, self.acked = {}, set()
        self.latencies_us = {kind: [] for kind in TRANSPORTS}
        self.ack_us = {kind: [] for kind in TRANSPORTS}
        self.errors, self.others, self.closes = Counter(), Counter(), Counter()
        self.last_ns = 0
        self.received = 0
        return result

    async def close(self) -> dict[str, Any]:
        """Close every client (the last command: the process ends after it)."""
        return await self.disconnect()

    async def disconnect(self) -> dict[str, Any]:
        """Close every socket with code 1000 and drop every stream; the process stays."""
        started = time.monotonic()
        gate = asyncio.Semaphore(256)

        async def close_one(sock: Client) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await sock.close()

        await asyncio.gather(*(close_one(s) for s in self.sockets))
        count = len(self.sockets)
        self.sockets = []
        return {"closed": count, "seconds": time.monotonic() - started}

    # --- what the clients call ----------------------------------------------------------------

    def on_frame(self, sock: Client, raw: bytes) -> None:
        """One server frame; the hot path is a `message` with a bench ref."""
        now = time.monotonic_ns()
        event = orjson.loads(raw)
        kind = event.get("type")
        if kind == "message":
            ref = event["message"].get("ref")
            if ref and ref[0] == "b":
                self.counts[ref] = self.counts.get(ref, 0) + 1
                self.latencies_us[sock.kind].append((now - int(ref.rsplit(".", 1)[1])) // 1000)
                self.received += 1
                self.last_ns = now
            return
        ref = event.get("ref")
        if kind == "ack":
            self.acked.add(ref)
            if ref and ref[0] == "b":
                self.ack_us[sock.kind].append((now - int(ref.rsplit(".", 1)[1])) // 1000)
            return
        if ref is not None:
            future = sock.pending.get(ref)
            if future is not None and not future.done():
                future.set_result(event)
        if kind == "error":
            self.errors[str(event.get("code"))] += 1
        elif kind == "hello":
            if isinstance(sock, ChatStream):
                sock.greeted(event)
            if not sock.hello.done():
                sock.hello.set_result(event)
        elif kind == "close" and isinstance(sock, ChatStream):
            sock.ended(int(event.get("code") or 1006))
        else:
            self.others[str(kind)] += 1

    def background(self, task: asyncio.Task[None]) -> None:
        """Keep a task of a client's own (a stream reopening its POST connection) alive."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- internals ----------------------------------------------------------------------------

    def _senders(self) -> list[Client]:
        """Sender clients, interleaved by room so consecutive sends go to different rooms."""
        by_room: dict[str, list[Client]] = defaultdict(list)
        for sock in self.sockets:
            if sock.spec.sender and sock.joined and sock.spec.room:
                by_room[sock.spec.room].append(sock)
        columns = [by_room[room] for room in sorted(by_room)]
        order: list[Client] = []
        for i in range(max((len(c) for c in columns), default=0)):
            order.extend(column[i] for column in columns if i < len(column))
        return order

    async def _open(self, spec: ClientSpec) -> Client:
        """Connect, send the handshake (or the stream's GET) with the session cookie and Origin,
        wait for `hello`; a stream then opens its connection for POSTs."""
        parts = urlsplit(spec.url)
        loop = asyncio.get_running_loop()
        sock: Client = (
            ChatStream(self, spec) if spec.transport == STREAM else ChatSocket(self, spec)
        )
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: sock, parts.hostname, parts.port or 80),
                OPEN_TIMEOUT,
            )
            await asyncio.wait_for(asyncio.shield(sock.hello), OPEN_TIMEOUT)
            if isinstance(sock, ChatStream):
                await sock.open_posts()
        except BaseException:
            sock.closing = True
            posts = sock.posts if isinstance(sock, ChatStream) else None
            for transport in (sock.transport, posts.transport if posts else None):
                if transport is not None:
                    transport.abort()
            raise
        return sock


# --- client processes ---------------------------------------------------------------------------


def _serve(conn: multiprocessing.connection.Connection, index: int) -> None:
    """A client process: run commands from the pool until `close` (or the pipe ends).

    On uvloop: its C event loop reads a socket for less CPU than asyncio's own, and client
    CPU is CPU the workers lose on a machine shared with them.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_async(conn, index))


async def _serve_async(conn: multiprocessing.connection.Connection, index: int) -> None:
    worker = ClientWorker(index)
    loop = asyncio.get_running_loop()
    while True:
        try:
            name, args = await loop.run_in_executor(None, conn.recv)
        except (EOFError, OSError):
            await worker.close()
            return
        try:
            reply: tuple[str, Any] = ("ok", await getattr(worker, name)(*args))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)
        if name == "close":
            return


class _Handle:
    """The pool's end of one client: a process and its pipe, or a worker in this process."""

    def __init__(self, index: int, in_process: bool) -> None:
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.local: ClientWorker | None = None
        if in_process:
            self.local = ClientWorker(index)
            return
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, index), name=f"bench-client-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.conn = parent

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def call(self, name: str, *args: Any) -> Any:
        if self.local is not None:
            return await getattr(self.local, name)(*args)
        return await asyncio.to_thread(self._call, name, args)

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        assert self.conn is not None and self.process is not None
        self.conn.send((name, args))
        deadline = time.monotonic() + CALL_TIMEOUT
        while not self.conn.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(f"client process {self.index} died")
            if time.monotonic() > deadline:
                raise TimeoutError(f"client process {self.index}: {name} timed out")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"client process {self.index}: {name}: {value}")
        return value

    def end(self) -> None:
        """End the process by its PID: SIGTERM, then SIGKILL."""
        if self.conn is not None:
            self.conn.close()
        if self.process is None:
            return
        self.process.join(3)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


# --- the coordinator ----------------------------------------------------------------------------


@dataclass
class ConnectReport:
    requested: int
    opened: int
    failed: dict[str, int]
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class TransportFigures:
    """A step as the clients of one transport saw it: the deliveries they received, and the
    acks their own sends got (send → stored → ack, the way up)."""

    clients: int
    expected: int
    delivered: int
    lost: int
    delivered_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    acks: int
    ack_p50_ms: float
    ack_p99_ms: float


@dataclass
class StepResult:
    """One load step: offered load, what arrived, how late, and what it cost the server."""

    name: str
    offered: float  # deliveries/s
    duration: float
    sent: int
    acked: int
    errors: dict[str, int]
    expected: int
    delivered: int
    lost: int
    delivered_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    send_late_ms: float
    closes: dict[str, int]
    server: Usage | None = None
    clients: Usage | None = None
    proxy: Usage | None = None
    redis_cpu_percent: float | None = None
    postgres_cpu_percent: float | None = None  # when the LoadGenerator was asked to measure it
    # Redis restarted during the step (another program did it: the bench never does).
    redis_restarted: bool = False
    # With clients of both transports, the step seen by each (`TransportFigures`).
    transports: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def loss_percent(self) -> float:
        return 100.0 * self.lost / self.expected if self.expected else 0.0

    @property
    def other_cpu_percent(self) -> float:
        """CPU the rest of the machine used meanwhile (other programs disturb the figures)."""
        if self.server is None:
            return 0.0
        ours = self.server.total_cpu_percent + (self.redis_cpu_percent or 0.0)
        ours += self.postgres_cpu_percent or 0.0
        for usage in (self.clients, self.proxy):
            if usage is not None:
                ours += usage.total_cpu_percent
        return max(0.0, self.server.machine_cpu_percent - ours)

    @property
    def clean(self) -> bool:
        """Nothing lost, every send acked, and p99 under 250 ms."""
        return (
            self.lost == 0
            and self.expected > 0
            and self.acked == self.sent
            and not self.errors
            and self.p99_ms < CLEAN_P99_MS
        )


class LoadGenerator:
    """Sockets spread over client processes and target URLs; steps of fixed offered load."""

    def __init__(
        self,
        ws_urls: Sequence[str],
        *,
        processes: int = 2,
        server_pids: Sequence[int] = (),
        proxy_pids: Sequence[int] = (),
        redis_url: str | None = None,
        postgres: bool = False,
    ) -> None:
        if not ws_urls:
            raise ValueError("no target URL")
        for url in ws_urls:
            check_loopback(url)
        self.ws_urls = list(ws_urls)
        self.processes = processes
        self.server_pids = list(server_pids)
        self.proxy_pids = list(proxy_pids)
        self.redis_url = redis_url
        self.postgres = postgres  # measure the local PostgreSQL server's CPU in each step
        self.handles: list[_Handle] = []
        self.room_sizes: dict[str, int] = {}
        self.room_sizes_by: dict[str, dict[str, int]] = {}  # transport → room → clients
        self.process_of: dict[str, int] = {}  # session key → client process, once connected
        self.step_number = 0

    async def __aenter__(self) -> LoadGenerator:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        in_process = self.processes == 0
        for index in range(max(1, self.processes)):
            self.handles.append(_Handle(index, in_process))

    async def stop(self) -> None:
        """Close every socket, then end every client process by PID (also after errors)."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(h.call("close") for h in self.handles), return_exceptions=True),
                60,
            )
        except TimeoutError:
            pass
        finally:
            for handle in self.handles:
                handle.end()
            self.handles = []

    @property
    def client_pids(self) -> list[int]:
        return [pid for h in self.handles if (pid := h.pid) is not None]

    def plan(
        self,
        sessions: Sequence[str],
        rooms: Sequence[str | None],
        *,
        senders_per_room: int = 10,
        stream_share: float = 0.0,
        also: Sequence[Sequence[str]] | None = None,
        placement: Sequence[int] | None = None,
    ) -> list[list[ClientSpec]]:
        """Client i (session i, room rooms[i]) goes to process i % P and URL (i // P) % W.

        So each room's clients are split evenly over the processes and, within a process,
        alternate between the target URLs: every room is fanned out by every worker.
        `placement[i]`, if given, is client i's URL instead (an index into the URLs), and
        `also[i]` the more rooms it is a member of (`ClientSpec.also`).
        `stream_share` of them (whole rounds of P × W clients, spread evenly) are HTTP streams
        instead of WebSockets, as are that share of each room's senders; a stream POSTs to the
        next URL's worker (with one URL, a load balancer, to whichever it picks).
        """
        count = len(self.handles)
        urls = len(self.ws_urls)
        plans: list[list[ClientSpec]] = [[] for _ in range(count)]
        quota = {
            STREAM: round(senders_per_room * stream_share),
            WEBSOCKET: senders_per_room - round(senders_per_room * stream_share),
        }
        senders: Counter[tuple[str | None, str]] = Counter()
        for i, (session, room) in enumerate(zip(sessions, rooms, strict=True)):
            at = (i // count) % urls if placement is None else placement[i]
            round_ = i // (count * urls)
            stream = int((round_ + 1) * stream_share) > int(round_ * stream_share)
            transport = STREAM if stream else WEBSOCKET
            sender = room is not None and senders[room, transport] < quota[transport]
            if sender:
                senders[room, transport] += 1
            url = self.ws_urls[at]
            if stream:
                post_url = origin_of(self.ws_urls[(at + 1) % urls])
                spec = ClientSpec(origin_of(url), session, room, sender, STREAM, post_url)
            else:
                spec = ClientSpec(url, session, room, sender)
            if also is not None and also[i]:
                spec = dataclasses.replace(spec, also=tuple(also[i]))
            plans[i % count].append(spec)
        return plans

    async def connect(
        self,
        plans: list[list[ClientSpec]],
        at_once: int = CONNECT_CONCURRENCY,
        attempts: int = CONNECT_ATTEMPTS,
    ) -> ConnectReport:
        """Open every planned socket, at most `at_once` per client process at a time."""
        self.process_of.update(
            (spec.session_key, index) for index, plan in enumerate(plans) for spec in plan
        )
        results = await asyncio.gather(
            *(
                h.call("connect", plan, at_once, attempts)
                for h, plan in zip(self.handles, plans, strict=True)
            )
        )
        times = sorted(t for r in results for t in r["times"])
        failed: Counter[str] = Counter()
        for r in results:
            failed.update(r["failed"])
        return ConnectReport(
            requested=sum(len(p) for p in plans),
            opened=len(times),
            failed=dict(failed),
            seconds=max(r["seconds"] for r in results),
            p50_ms=percentile(times, 0.50) * 1000,
            p99_ms=percentile(times, 0.99) * 1000,
            max_ms=(times[-1] if times else 0.0) * 1000,
        )

    async def join(self, members: bool = False) -> dict[str, Any]:
        """Join every client's room (`members`: see `ClientWorker.join`)."""
        results = await asyncio.gather(*(h.call("join", members) for h in self.handles))
        rooms: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        by_transport: dict[str, Counter[str]] = {kind: Counter() for kind in TRANSPORTS}
        for r in results:
            rooms.update(r["rooms"])
            failed.update(r["failed"])
            for kind, joined in r["by_transport"].items():
                by_transport[kind].update(joined)
        self.room_sizes = dict(rooms)
        self.room_sizes_by = {kind: dict(c) for kind, c in by_transport.items() if c}
        # Let the presence events of the joins drain before measuring anything.
        await self.settle()
        return {
            "rooms": dict(rooms),
            "failed": dict(failed),
            "seconds": max(r["seconds"] for r in results),
        }

    async def disconnect(self) -> dict[str, Any]:
        """Close every client; the client processes stay for the next `connect`."""
        results = await asyncio.gather(*(h.call("disconnect") for h in self.handles))
        self.room_sizes, self.room_sizes_by = {}, {}
        return {
            "closed": sum(r["closed"] for r in results),
            "seconds": max((r["seconds"] for r in results), default=0.0),
        }

    async def settle(self, quiet: float = 0.5, limit: float = 20.0) -> None:
        """Wait until no frame arrives for `quiet` s (at most `limit` s), then forget them."""
        deadline = time.monotonic() + limit
        await asyncio.gather(*(h.call("collect") for h in self.handles))
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet)
            seen = await asyncio.gather(*(h.call("collect") for h in self.handles))
            if not any(r["others"] or r["counts"] or r["acked"] for r in seen):
                return

    async def step(
        self,
        name: str,
        offered: float,
        *,
        duration: float,
        drain: float = 5.0,
        keep_latencies: bool = True,
        planned: Sequence[tuple[float, str, str]] | None = None,
    ) -> StepResult:
        """Offer `offered` deliveries/s for `duration` s, wait up to `drain` s, and count.

        With `planned` the sends are those: (seconds after the start, session key, room) each,
        in time order, sent by the client of that session; `offered` is then only recorded."""
        if not self.room_sizes:
            raise RuntimeError("join rooms before running a step")
        self.step_number += 1
        step = self.step_number
        room_size = sum(self.room_sizes.values()) / len(self.room_sizes)
        rate = offered / room_size  # messages/s, all processes together
        await asyncio.gather(*(h.call("collect") for h in self.handles))
        server = Sampler(self.server_pids) if self.server_pids else None
        clients = Sampler(self.client_pids) if self.client_pids else None
        proxy = Sampler(self.proxy_pids) if self.proxy_pids else None
        redis_cpu = None
        if self.redis_url:
            from .stats import RedisCpu

            redis_cpu = RedisCpu(self.redis_url)
            redis_cpu.start()
        postgres_cpu = None
        if self.postgres:
            from .stats import PostgresCpu

            postgres_cpu = PostgresCpu()
            postgres_cpu.start()
        for sampler in (server, clients, proxy):
            if sampler is not None:
                sampler.start()
        count = len(self.handles)
        start_at = time.monotonic() + 0.3
        share = rate / count
        if planned is None:
            calls = [
                h.call("send", step, share, duration, start_at + i / (share * count))
                for i, h in enumerate(self.handles)
            ]
        else:
            parts: list[list[tuple[float, str, str]]] = [[] for _ in self.handles]
            for send in planned:
                parts[self.process_of[send[1]]].append(send)
            calls = [
                h.call("send_planned", step, part, start_at)
                for h, part in zip(self.handles, parts, strict=True)
            ]
        sends = await asyncio.gather(*calls)
        sent: dict[str, str] = {}
        for s in sends:
            sent.update(s["sent"])
        expected_now = sum(self.room_sizes.get(room, 0) for room in sent.values())
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            progress = await asyncio.gather(*(h.call("progress") for h in self.handles))
            if sum(p["received"] for p in progress) >= expected_now:
                break
            await asyncio.sleep(0.1)
        server_usage = server.usage() if server is not None else None
        client_usage = clients.usage() if clients is not None else None
        proxy_usage = proxy.usage() if proxy is not None else None
        redis_percent = redis_cpu.percent() if redis_cpu is not None else None
        postgres_percent = postgres_cpu.percent() if postgres_cpu is not None else None
        if redis_cpu is not None:
            redis_cpu.close()
        results = await asyncio.gather(*(h.call("collect") for h in self.handles))
        result = self._tally(name, offered, duration, start_at, sent, sends, results)
        result.server, result.clients, result.proxy = server_usage, client_usage, proxy_usage
        result.redis_cpu_percent = redis_percent
        result.postgres_cpu_percent = postgres_percent
        result.redis_restarted = redis_cpu is not None and redis_cpu.restarted
        if not keep_latencies:
            result.latencies_ms = []
        return result

    def _tally(
        self,
        name: str,
        offered: float,
        duration: float,
        start_at: float,
        sent: dict[str, str],
        sends: list[dict[str, Any]],
        results: list[dict[str, Any]],
    ) -> StepResult:
        prefix = f"b{self.step_number}."
        counts: Counter[str] = Counter()
        acked: set[str] = set()
        errors: Counter[str] = Counter()
        closes: Counter[str] = Counter()
        by_kind: dict[str, list[int]] = {kind: [] for kind in TRANSPORTS}
        acks_by_kind: dict[str, list[int]] = {kind: [] for kind in TRANSPORTS}
        last_ns = 0
        for r in results:
            counts.update(r["counts"])
            acked.update(r["acked"])
            errors.update(r["errors"])
            closes.update(r["closes"])
            for kind, values in r["latencies_us"].items():
                by_kind[kind].extend(values)
            for kind, values in r.get("ack_us", {}).items():
                acks_by_kind[kind].extend(values)
            last_ns = max(last_ns, r["last_ns"])
        acked &= set(sent)
        # A message counts as stored if it was acked or reached anyone.
        stored = acked | {ref for ref in counts if ref.startswith(prefix) and ref in sent}
        expected = sum(self.room_sizes.get(sent[ref], 0) for ref in stored)
        delivered = sum(n for ref, n in counts.items() if ref in stored)
        latencies = sorted(v for values in by_kind.values() for v in values)
        span = (last_ns / 1e9 - start_at) if last_ns else duration
        ms = [v / 1000 for v in latencies]
        transports = {}
        if self.room_sizes_by:
            for kind, sizes in self.room_sizes_by.items():
                kind_ms = sorted(v / 1000 for v in by_kind[kind])
                ack_ms = sorted(v / 1000 for v in acks_by_kind[kind])
                kind_expected = sum(sizes.get(sent[ref], 0) for ref in stored)
                figures = TransportFigures(
                    clients=sum(sizes.values()),
                    expected=kind_expected,
                    delivered=len(kind_ms),
                    lost=max(0, kind_expected - len(kind_ms)),
                    delivered_per_s=len(kind_ms) / max(span, duration),
                    p50_ms=percentile(kind_ms, 0.50),
                    p95_ms=percentile(kind_ms, 0.95),
                    p99_ms=percentile(kind_ms, 0.99),
                    max_ms=kind_ms[-1] if kind_ms else 0.0,
                    acks=len(ack_ms),
                    ack_p50_ms=percentile(ack_ms, 0.50),
                    ack_p99_ms=percentile(ack_ms, 0.99),
                )
                transports[kind] = asdict(figures)
        return StepResult(
            name=name,
            offered=offered,
            duration=duration,
            sent=len(sent),
            acked=len(acked),
            errors=dict(errors),
            expected=expected,
            delivered=delivered,
            lost=max(0, expected - delivered),
            delivered_per_s=delivered / max(span, duration),
            p50_ms=percentile(ms, 0.50),
            p95_ms=percentile(ms, 0.95),
            p99_ms=percentile(ms, 0.99),
            max_ms=ms[-1] if ms else 0.0,
            send_late_ms=max((s["late_ms"] for s in sends), default=0.0),
            closes=dict(closes),
            transports=transports,
            latencies_ms=ms,
        )


# --- command line: a load against servers someone else started ---------------------------------


def _http_base(ws_url: str) -> str:
    return origin_of(ws_url)


def _users_and_rooms(args: Any) -> tuple[list[str], list[str]]:
    """Sign the owner up and create the rooms over HTTP; make the clients' users."""
    import os
    import subprocess
    import sys

    from .site import Browser, sign_up_owner_with_rooms

    urls = args.url
    tag = f"l{os.getpid()}x"
    slugs, _ = sign_up_owner_with_rooms(_http_base(urls[0]), args.rooms, prefix=f"load-{tag}")
    if args.seed:
        # Needs the server's DATABASE_URL (and DJANGO_SECRET_KEY) in this environment.
        out = subprocess.run(
            [sys.executable, "-m", "bench.seed", "--prefix", tag, "--count", str(args.clients)],
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
        keys = [key for _, key in orjson.loads(out)["users"]]
    else:
        keys = [
            Browser(_http_base(urls[i % len(urls)])).signup(f"{tag}{i}", "bench-password-1234")
            for i in range(args.clients)
        ]
    return keys, [slugs[i * args.rooms // args.clients] for i in range(args.clients)]


async def _run_steps(args: Any, keys: list[str], rooms: list[str]) -> None:
    async with LoadGenerator(args.url, processes=args.processes, server_pids=args.pid) as load:
        connected = await load.connect(load.plan(keys, rooms))
        print(f"connected {connected.opened}/{connected.requested} in {connected.seconds:.1f}s")
        joined = await load.join()
        print(f"joined {joined['rooms']} in {joined['seconds']:.1f}s")
        for offered in args.load:
            step = await load.step(f"{offered:,.0f}/s", offered, duration=args.seconds)
            server = step.server.cpu_percent if step.server else []
            print(
                f"{offered:>8,.0f}/s offered  {step.delivered_per_s:>8,.0f}/s delivered  "
                f"lost {step.lost}/{step.expected}  p50 {step.p50_ms:.1f}  p95 {step.p95_ms:.1f}"
                f"  p99 {step.p99_ms:.1f}  max {step.max_ms:.1f} ms  server CPU "
                f"{[round(c) for c in server]} %  {'clean' if step.clean else 'NOT clean'}"
            )


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.loadgen --url ws://127.0.0.1:8011/ws/chat/ --load 2000,5000`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description="Load running chat workers (loopback only)."
    )
    parser.add_argument("--url", action="append", required=True, help="ws URL; repeat for more")
    parser.add_argument("--pid", action="append", type=int, default=[], help="worker PID (psutil)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument(
        "--load",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[1000.0],
        help="offered deliveries/s, comma-separated steps",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--seed",
        action="store_true",
        help="create the users with bench.seed (this environment's DATABASE_URL) instead of "
        "signing each up over HTTP (one password hash, ~0.2 s, each)",
    )
    args = parser.parse_args(argv)
    for url in args.url:
        check_loopback(url)
    keys, rooms = _users_and_rooms(args)
    asyncio.run(_run_steps(args, keys, rooms))


if __name__ == "__main__":
    main()
