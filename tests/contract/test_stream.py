"""Contract §5: the same chat over the HTTP fallback, against two real workers of one site.

Every frame rule of §4 holds unchanged: the protocol tests of test_protocol.py run here again
with every tab on a stream whose POSTs go through the *other* worker (conftest's `Person.tab`),
so every reply crosses workers. The tests below add what only the fallback has: its refusals,
its POST statuses, batches, order across workers, keep-alives, and a worker killed under a
stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator

import pytest

from tests.streamclient import StreamTab, open_stream
from tests.wsclient import Account

from . import test_protocol
from .conftest import Backing, Site, running_site
from .frames import is_, send

pytestmark = pytest.mark.redis

# The WebSocket's own handshake has its own test; the stream's refusals are tested below.
WEBSOCKET_ONLY = {"test_handshake_without_a_session_or_with_a_foreign_origin_is_refused_with_403"}
for _name, _test in vars(test_protocol).items():
    if _name.startswith("test_") and _name not in WEBSOCKET_ONLY:
        globals()[_name] = _test


@pytest.fixture(scope="module")
def site(backing: Backing) -> Iterator[Site]:
    """Two workers; every tab a test opens is a stream on one and POSTs through the other."""
    with running_site(backing) as running:
        running.transport = "stream"
        yield running


async def stream_status(url: str, cookie: str | None, origin: str | None) -> int:
    _, writer, status, _ = await open_stream(url, cookie, origin)
    writer.close()
    return status


# --- opening a stream ----------------------------------------------------------------------------


async def test_a_stream_needs_a_session_and_an_allowed_origin_when_one_is_sent(site):
    (alice,) = await site.people("alice")
    cookie = alice.account.cookie
    for url in site.urls:
        assert await stream_status(url, None, url) == 403
        assert await stream_status(url, "sessionid=forged", url) == 403
        assert await stream_status(url, cookie, "http://evil.example") == 403
        assert await stream_status(url, cookie, "https://127.0.0.1.evil.example") == 403
        # Unlike the WebSocket handshake, a stream without an Origin is a same-origin GET.
        assert await stream_status(url, cookie, None) == 200


async def test_a_stream_is_event_stream_unbuffered_and_starts_with_hello_naming_it(site):
    alice, bob = await site.people("alice", "bob")
    room = await alice.create_room(site.unique("room"))
    _, writer, status, headers = await open_stream(site.urls[0], alice.account.cookie, None)
    writer.close()
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert "no-cache" in headers["cache-control"]
    assert headers["x-accel-buffering"] == "no"

    a1 = await alice.tab(1)
    hello = a1.hello  # without `stream`, which the tab keeps as its stream_id
    assert hello is not None and set(hello) == {"type", "user", "rooms"}
    assert [r["slug"] for r in hello["rooms"]] == [room]
    assert len(a1.stream_id) > 40, "the stream's ID must not be guessable"
    # Another stream of the same user has another ID.
    a2 = await alice.tab(1)
    assert a2.stream_id != a1.stream_id
    # Every event carries an id: where an EventSource was.
    await a1.request(type="ping")
    assert a1.events.last_id is not None and int(a1.events.last_id) >= 2


# --- posting frames ------------------------------------------------------------------------------


async def test_posts_answer_202_and_the_replies_come_on_the_stream_in_posted_order(site):
    (alice,) = await site.people("alice")
    room = await alice.create_room(site.unique("room"))
    tab = await alice.tab(1)
    status, answer = await tab.post(json.dumps({"type": "ping", "ref": "one"}).encode())
    assert (status, answer) == (202, {"accepted": 1})
    assert await tab.wait_for(is_("pong")) == {"type": "pong", "ref": "one"}

    # A batch: frames handled in order, each reply echoing its ref.
    batch = [{"type": "send", "room": room, "body": f"m{n}", "ref": f"b{n}"} for n in range(10)]
    batch.insert(5, {"type": "no-such-type", "ref": "bad"})
    await tab.send_batch(batch)
    replies = [await tab.wait_for(lambda f: f["type"] in ("ack", "error")) for _ in range(11)]
    assert [r["ref"] for r in replies] == [f["ref"] for f in batch]
    assert replies[5]["code"] == "unknown_type"
    seqs = [r["seq"] for r in replies if r["type"] == "ack"]
    assert seqs == list(range(1, 11))


async def test_posts_through_either_worker_are_handled_in_the_order_posted(site):
    alice, bob = await site.people("alice", "bob")
    room = await alice.create_room(site.unique("room"))
    tab = await alice.tab(1)
    b2 = await bob.tab(2)
    await b2.request(type="join", room=room)
    for n in range(16):
        # Alternate the worker taking the POST: the stream lives on worker 1 throughout.
        tab.post_base = site.urls[n % 2]
        await tab.send(type="send", room=room, body=f"#{n}", ref=f"o{n}")
    acks = [await tab.wait_for(is_("ack")) for _ in range(16)]
    assert [a["ref"] for a in acks] == [f"o{n}" for n in range(16)]
    assert [a["seq"] for a in acks] == list(range(1, 17))
    got = [await b2.wait_for(is_("message", room)) for _ in range(16)]
    assert [m["message"]["body"] for m in got] == [f"#{n}" for n in range(16)]


async def test_posts_to_unknown_ended_or_foreign_streams_and_bad_posts_are_refused(site):
    alice, bob = await site.people("alice", "bob")
    tab = await alice.tab(1)
    ping = json.dumps({"type": "ping"}).encode()
    for url in site.urls:
        tab.post_base = url
        assert (await tab.post(ping, stream_id="no-such-stream"))[0] == 404
        forged = tab.stream_id[:-4] + ("AAAA" if not tab.stream_id.endswith("AAAA") else "BBBB")
        assert (await tab.post(ping, stream_id=forged))[0] == 404
        # Another user's stream: 403, and nothing reaches it.
        status, answer = await tab.post(ping, account=bob.account)
        assert status == 403 and answer["error"] == "forbidden"
        # Without the CSRF token, or signed out: 403.
        assert (await tab.post(ping, csrf=False))[0] == 403
        anonymous = Account(url)
        assert (await tab.post(ping, account=anonymous))[0] == 403
        # More than 50 frames in one POST, or a body over 1 MiB.
        status, answer = await tab.post(json.dumps([{"type": "ping"}] * 51).encode())
        assert status == 400 and answer["error"] == "bad_frame"
        assert (await tab.post(b" " * (1024 * 1024 + 1)))[0] == 413
    assert await tab.collect(0.3) == []
    await tab.close()
    await asyncio.sleep(0.3)
    for url in site.urls:
        tab.post_base = url
        assert (await tab.post(ping))[0] == 404, "an ended stream is gone"


async def test_an_idle_stream_gets_a_keep_alive_comment_within_15_s(site):
    (alice,) = await site.people("alice")
    tab = await alice.tab(1)
    async with asyncio.timeout(16):
        while tab.events.comments == 0:
            assert await tab.collect(1) == []  # nothing but comments comes
    assert (await tab.request(type="ping"))["type"] == "pong"


# --- faults ---------------------------------------------------------------------------------------


async def test_a_worker_killed_under_a_stream_loses_nothing_the_client_resumes_elsewhere(backing):
    with running_site(backing) as site:
        site.transport = "stream"
        alice, bob = await site.people("alice", "bob")
        room = await alice.create_room(site.unique("room"))
        b2 = await bob.tab(2)
        await b2.request(type="join", room=room)
        a1 = await alice.tab(1)  # the stream on worker 1, POSTs through worker 2
        await send(a1, room, "before")
        last_seq = (await a1.wait_for(is_("message", room)))["message"]["seq"]

        # From now on the load balancer has only worker 2 to send POSTs to.
        a1.post_base = b2.post_base = site.urls[1]
        os.kill(_worker_pid(site.urls[0]), signal.SIGKILL)
        assert await a1.close_code() == 1006, "a killed worker ends the stream without a close"
        # Its POSTs now find no stream: 404 (the client opens a new one and resumes by seq).
        status, _ = await a1.post(json.dumps({"type": "ping"}).encode())
        assert status == 404
        for n in range(3):
            await send(b2, room, f"while alice was away {n}")

        resumed = await StreamTab.connect(alice.account, site.urls[1], post_base=site.urls[1])
        site.sockets.append(resumed)
        hello = await resumed.wait_for_hello()
        assert next(r for r in hello["rooms"] if r["slug"] == room)["last_seq"] == last_seq + 3
        page = await resumed.request(type="history", room=room, after=last_seq)
        assert [m["body"] for m in page["messages"]] == [
            f"while alice was away {n}" for n in range(3)
        ]
        await send(resumed, room, "back")
        back = await b2.wait_for(
            lambda f: is_("message", room)(f) and f["message"]["body"] == "back"
        )
        assert back["message"]["seq"] == last_seq + 4
        await site.close_sockets()


def _worker_pid(url: str) -> int:
    """The PID of the daphne listening on the URL's port."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise AssertionError(f"nobody listens on {port}")


async def test_a_worker_shutting_down_ends_its_streams_with_4012(backing):
    with running_site(backing) as site:
        site.transport = "stream"
        (alice,) = await site.people("alice")
        a1 = await alice.tab(1)
        os.kill(_worker_pid(site.urls[0]), signal.SIGTERM)
        assert await a1.close_code() == 4012
        await site.close_sockets()
