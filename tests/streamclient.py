"""A tab on the HTTP fallback (contract §5), for process-level tests: events from
`GET /chat/stream/` on one worker, frames POSTed to `/chat/stream/<ID>/`, by default on another.

`StreamTab` is a `wsclient.Socket` with another transport underneath, so a test written against
sockets runs unchanged over streams. The stream is read over a plain HTTP/1.1 connection
(chunked transfer, Server-Sent Events); POSTs go as a browser's fetch() sends them, with the
session cookie, the CSRF token and an Origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from tests.wsclient import HTTP_TIMEOUT, Account, Frame, Socket


class StreamRefused(Exception):
    """The stream was refused before `hello` (an HTTP status other than 200)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"GET /chat/stream/ answered {status}")
        self.status = status


class StreamEnded(Exception):
    """The stream ended: with its `close` event's code, or 1006 when it just stopped."""

    def __init__(self, code: int) -> None:
        super().__init__(f"stream ended with {code}")
        self.code = code


async def open_stream(
    base: str, cookie: str | None, origin: str | None = None, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
    """GET /chat/stream/ on `base`; the connection, the status and the response headers.

    `receive_buffer`: the socket's kernel buffer, small for a client that reads nothing (what
    the server sends then piles up on the server's side)."""
    url = urlparse(base)
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port or 80))
    limit = receive_buffer or 2**16  # the StreamReader's own buffer
    reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    lines = [
        "GET /chat/stream/ HTTP/1.1",
        f"Host: {url.netloc}",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
    ]
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), HTTP_TIMEOUT)
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await asyncio.wait_for(reader.readline(), HTTP_TIMEOUT)) not in (b"\r\n", b""):
        name, _, value = line.decode("latin1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return reader, writer, status, headers


class EventReader:
    """Server-Sent Events from a chunked HTTP body."""

    def __init__(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        self.reader = reader
        self.chunked = chunked
        self.buffer = b""
        self.left = 0  # bytes of the current chunk still to read
        self.ended = False
        self.comments = 0
        self.last_id: str | None = None

    async def _more(self) -> None:
        if not self.chunked:
            data = await self.reader.read(65536)
            if not data:
                self.ended = True
            self.buffer += data
            return
        if self.left == 0:
            size_line = await self.reader.readline()
            if not size_line:
                self.ended = True
                return
            self.left = int(size_line.split(b";")[0].strip() or b"0", 16)
            if self.left == 0:
                self.ended = True
                return
        data = await self.reader.read(self.left)
        if not data:
            self.ended = True
            return
        self.left -= len(data)
        self.buffer += data
        if self.left == 0:
            await self.reader.readexactly(2)  # the chunk's CRLF

    async def next_event(self) -> dict[str, str]:
        """The next event's fields (comments are counted, not returned); {} at the end."""
        while True:
            while b"\n\n" not in self.buffer:
                if self.ended:
                    return {}
                await self._more()
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
            if "id" in fields:
                self.last_id = fields["id"]
            if "data" in fields:
                return fields


class StreamTab(Socket):
    """One tab over the HTTP fallback; the interface of `wsclient.Socket`.

    `post_base` is the worker its POSTs go to (any worker may take them).
    """

    def __init__(
        self, events: EventReader, writer: asyncio.StreamWriter, account: Account, post_base: str
    ) -> None:
        super().__init__(None)
        self.events = events
        self.writer = writer
        self.account = account
        self.post_base = post_base.rstrip("/")
        self.stream_id = ""
        self.closed_with: int | None = None
        self.statuses: list[int] = []  # of every POST, in order
        self.post_upstreams: list[str] = []
        self.upstream = ""  # behind the test cluster's nginx: the stream's worker

    @classmethod
    async def connect(
        cls,
        account: Account,
        base: str,
        post_base: str | None = None,
        origin: str | None = "",
        receive_buffer: int | None = None,
    ) -> StreamTab:
        """Open the stream on `base` (Origin: `base` unless given; None sends none)."""
        reader, writer, status, headers = await open_stream(
            base, account.cookie, base if origin == "" else origin, receive_buffer
        )
        if status != 200:
            writer.close()
            raise StreamRefused(status)
        assert headers.get("content-type", "").startswith("text/event-stream"), headers
        events = EventReader(reader, headers.get("transfer-encoding") == "chunked")
        tab = cls(events, writer, account, post_base or base)
        tab.upstream = headers.get("x-chatsite-upstream", "")
        return tab

    async def wait_for_hello(self, timeout: float = 5) -> Frame:
        """`hello`, kept (as `self.hello`) without the stream's ID, which goes to `stream_id`:
        what remains is the WebSocket's `hello`."""
        hello = await super().wait_for_hello(timeout)
        self.stream_id = hello.pop("stream")
        return hello

    async def _read_one(self) -> None:
        if self.closed_with is not None:
            raise StreamEnded(self.closed_with)
        fields = await self.events.next_event()
        if not fields:
            self.closed_with = 1006
            raise StreamEnded(1006)
        frame = json.loads(fields["data"])
        if frame.get("type") == "close":
            self.closed_with = frame["code"]
            raise StreamEnded(frame["code"])
        self.mailbox.append(frame)

    # --- sending: POSTs -------------------------------------------------------------------------

    async def post(
        self,
        body: bytes,
        *,
        csrf: bool = True,
        stream_id: str | None = None,
        account: Account | None = None,
    ) -> tuple[int, Any]:
        """POST `body` to the stream; the status and the decoded JSON answer."""
        return await asyncio.to_thread(self._post, body, csrf, stream_id, account or self.account)

    def _post(
        self, body: bytes, csrf: bool, stream_id: str | None, account: Account
    ) -> tuple[int, Any]:
        url = f"{self.post_base}/chat/stream/{stream_id or self.stream_id}/"
        request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - test server
        request.add_header("Content-Type", "application/json")
        request.add_header("Origin", self.post_base)
        token = account.cookie_value("csrftoken")
        if csrf and token:
            request.add_header("X-CSRFToken", token)
        try:
            with account.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), exc.headers
        self.statuses.append(status)
        # Behind the test cluster's nginx: which worker took the POST.
        self.post_upstreams.append(headers.get("X-Chatsite-Upstream", ""))
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    async def send(self, **frame: Any) -> None:
        await self.send_raw(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        """Post `data` as one frame, as a WebSocket message would carry it: a JSON array goes
        in a batch of its own (a POSTed array is a batch)."""
        body = data.encode() if isinstance(data, str) else data
        try:
            is_array = isinstance(json.loads(body), list)
        except ValueError:
            is_array = False
        if is_array:
            body = b"[" + body + b"]"
        status, answer = await self.post(body)
        if status == 404:
            raise StreamEnded(self.closed_with or 1006)
        assert status == 202, f"POST answered {status}: {answer}"

    async def send_batch(self, frames: list[Frame]) -> None:
        status, answer = await self.post(json.dumps(frames).encode())
        assert status == 202, f"POST answered {status}: {answer}"

    async def close_code(self, timeout: float = 10) -> int:
        try:
            async with asyncio.timeout(timeout), self._reading:
                while True:
                    await self._read_one()
        except StreamEnded as ended:
            return ended.code

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
