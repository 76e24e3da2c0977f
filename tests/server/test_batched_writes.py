"""daphne's writes sent at the end of the loop's turn (chatsite/server/batched_writes.py) lose,
reorder and corrupt nothing, also when a client reads slowly and the kernel's buffers fill up."""

from __future__ import annotations

import asyncio
import json

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.servers import fresh_worker
from tests.wsclient import Account, Socket

BODY = "x" * 3500
MESSAGES = 25
REQUESTS = 60  # replies of ~90 KB each: megabytes more than loopback buffers hold


def test_a_slow_reader_gets_every_frame_whole_and_in_order():
    with fresh_worker(CHATSITE_RATE_BURST="1000") as port:
        base = f"http://127.0.0.1:{port}"
        alice = Account.sign_up(base, "alice")
        alice.create_room("Lobby", "lobby")
        asyncio.run(_scenario(port, base, alice))


async def _scenario(port: int, base: str, alice: Account) -> None:
    writer_tab = await Socket.open(f"ws://127.0.0.1:{port}", alice.cookie, base)
    for n in range(MESSAGES):
        await writer_tab.request(type="send", room="lobby", body=f"{n} {BODY}")
    await writer_tab.close()

    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws/chat/"), max_size=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = protocol.connect()
    request.headers["Origin"] = base
    request.headers["Cookie"] = alice.cookie
    protocol.send_request(request)
    writer.write(b"".join(protocol.data_to_send()))
    frames = _Frames(protocol, reader)
    assert (await frames.next())["type"] == "hello"

    # Ask for everything at once, then read nothing for a while: the server's sends fill the
    # kernel's buffers and the rest waits in Twisted's.
    for n in range(REQUESTS):
        frame = {"type": "history", "room": "lobby", "ref": f"h{n}"}
        protocol.send_text(json.dumps(frame).encode())
    protocol.send_text(b'{"type": "ping", "ref": "last"}')
    writer.write(b"".join(protocol.data_to_send()))
    await writer.drain()
    await asyncio.sleep(1.5)

    for n in range(REQUESTS):
        reply = await frames.next()
        assert (reply["type"], reply["ref"]) == ("history", f"h{n}")
        assert [m["body"] for m in reply["messages"]] == [f"{i} {BODY}" for i in range(MESSAGES)]
    assert await frames.next() == {"type": "pong", "ref": "last"}
    writer.close()


class _Frames:
    """Text frames as JSON, read off a raw connection only when asked for."""

    def __init__(self, protocol: ClientProtocol, reader: asyncio.StreamReader) -> None:
        self.protocol = protocol
        self.reader = reader
        self.ready: list[dict] = []

    async def next(self) -> dict:
        while not self.ready:
            data = await asyncio.wait_for(self.reader.read(65536), 20)
            assert data, "the server closed the connection"
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    self.ready.append(json.loads(event.data))
        return self.ready.pop(0)
