"""Contract §4: one client cannot grow a worker's memory, reading or not, pipelining or not.

Each test runs its own worker and reads its RSS. The attacks are the ones measured before the
limits existed: sockets asking for `history` without reading (1.6 GB in 40 s), a socket
pipelining 60 KB frames (0.9 GB in 15 s), a socket that stops reading a busy room, and frames
past 64 KiB and past daphne's own 1 MiB. Throughout, another user is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import websockets

from tests.servers import Worker, sqlite_worker
from tests.wsclient import Account

from .conftest import EMOJI_BODY, MIB, close_code, stalled_socket

# The poster fills rooms fast: the message rate limit is not what these tests are about.
FAST_POSTING = {"CHATSITE_RATE_PER_SECOND": "1000", "CHATSITE_RATE_BURST": "1000"}


async def fill_room(account: Account, slug: str, count: int) -> None:
    """`count` messages of 16,000 bytes each in the room, through a normal socket."""
    tab = await account.open_socket()
    for n in range(count):
        reply = await tab.request(type="send", room=slug, body=f"{n} {EMOJI_BODY}"[:4000])
        assert reply["type"] == "ack", reply
    await tab.close()


async def still_served(account: Account, slug: str, seconds: float) -> list[float]:
    """Another user's round trips (ping, then a send) while an attack runs: their latencies."""
    tab = await account.open_socket()
    latencies = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert (await tab.request(type="ping", timeout=10))["type"] == "pong"
        reply = await tab.request(type="send", room=slug, body=f"still here {n}", timeout=10)
        assert reply["type"] == "ack", reply
        latencies.append(time.monotonic() - started)
        n += 1
        await asyncio.sleep(0.2)
    await tab.close()
    return latencies


async def peak_rss(site: Worker, seconds: float) -> int:
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, site.rss)
        await asyncio.sleep(0.1)
    return peak


async def settled_rss(site: Worker, seconds: float = 3) -> int:
    await asyncio.sleep(seconds)
    return site.rss


def test_sockets_asking_for_history_without_reading_cannot_grow_the_worker() -> None:
    with sqlite_worker(**FAST_POSTING) as site:

        async def scenario() -> None:
            owner = Account.sign_up(site.base, "owner")
            owner.create_room("Big", "big")
            greedy = Account.sign_up(site.base, "greedy")
            bystander = Account.sign_up(site.base, "bystander")
            for account in (greedy, bystander):
                tab = await account.open_socket()
                assert (await tab.request(type="join", room="big"))["type"] == "joined"
                await tab.close()
            # 120 messages of 16 KB: each `history` of 100 is a reply of 1 MiB.
            await fill_room(owner, "big", 120)
            before = await settled_rss(site, 1)

            sockets = [await stalled_socket(greedy) for _ in range(10)]
            for ws in sockets:
                for n in range(100):
                    await ws.send(json.dumps({"type": "history", "room": "big", "ref": f"h{n}"}))
            peak, latencies = await asyncio.gather(
                peak_rss(site, 12), still_served(bystander, "big", 12)
            )
            for ws in sockets:
                ws.transport.abort()
            after = await settled_rss(site)

            grown = (peak - before) / MIB
            print(
                f"history without reading: +{grown:.1f} MiB at peak, "
                f"+{(after - before) / MIB:.1f} MiB after, bystander {max(latencies):.3f} s"
            )
            # One reply held per socket, at most: 10 sockets, about 10 MiB (1.6 GB before).
            assert grown < 60, f"the worker grew by {grown:.0f} MiB"
            assert max(latencies) < 2, f"the bystander waited {max(latencies):.1f} s"
            assert (after - before) / MIB < 60

        asyncio.run(scenario())


def test_a_client_pipelining_large_frames_is_read_no_faster_than_it_is_served() -> None:
    with sqlite_worker() as site:

        async def scenario() -> None:
            owner = Account.sign_up(site.base, "owner")
            owner.create_room("Lobby", "lobby")
            pusher = Account.sign_up(site.base, "pusher")
            bystander = Account.sign_up(site.base, "bystander")
            tab = await bystander.open_socket()
            await tab.request(type="join", room="lobby")
            await tab.close()
            before = await settled_rss(site, 1)

            ws = await stalled_socket(pusher)
            frame = json.dumps({"type": "ping", "pad": "x" * 60_000})
            sent = 0

            async def push() -> None:
                nonlocal sent
                while True:
                    await ws.send(frame)
                    sent += 1

            pushing = asyncio.create_task(push())
            peak, latencies = await asyncio.gather(
                peak_rss(site, 10), still_served(bystander, "lobby", 10)
            )
            pushing.cancel()
            ws.transport.abort()
            after = await settled_rss(site)

            grown = (peak - before) / MIB
            print(
                f"pipelining: +{grown:.1f} MiB at peak, +{(after - before) / MIB:.1f} MiB after, "
                f"{sent} frames taken, bystander {max(latencies):.3f} s"
            )
            assert grown < 40, f"the worker grew by {grown:.0f} MiB ({sent} frames sent)"
            # The worker stopped reading: most of what the client meant to send never left it.
            assert sent * 60_000 / MIB < 200, f"{sent} frames of 60 KB were taken"
            assert max(latencies) < 2, f"the bystander waited {max(latencies):.1f} s"
            assert (after - before) / MIB < 40

        asyncio.run(scenario())


def test_a_socket_that_stops_reading_a_busy_room_is_closed_with_4013() -> None:
    with sqlite_worker(**FAST_POSTING) as site:

        async def scenario() -> None:
            poster = Account.sign_up(site.base, "poster")
            poster.create_room("Busy", "busy")
            sleeper = Account.sign_up(site.base, "sleeper")
            tab = await sleeper.open_socket()
            await tab.request(type="join", room="busy")
            await tab.close()
            before = await settled_rss(site, 1)

            ws = await stalled_socket(sleeper)
            # 400 messages of 16 KB (6 MB) pushed at a socket that reads nothing.
            started = time.monotonic()
            await fill_room(poster, "busy", 400)
            posting = time.monotonic() - started
            peak = await peak_rss(site, 1)

            # Now it reads: whatever was buffered, then the close.
            code = await close_code(ws, timeout=30)
            assert code == 4013
            grown = (peak - before) / MIB
            print(f"stopped reading: +{grown:.1f} MiB at peak, posting took {posting:.1f} s")
            assert grown < 30, f"the worker grew by {grown:.0f} MiB"
            # The poster was never held back by the sleeper.
            assert posting < 60
            # The sleeper comes back and resumes by seq: every message is there.
            tab = await sleeper.open_socket()
            room = next(r for r in tab.hello["rooms"] if r["slug"] == "busy")
            assert room["last_seq"] == 400
            await tab.close()

        asyncio.run(scenario())


def test_frames_over_64_kib_are_closed_with_4009_even_past_1_mib() -> None:
    with sqlite_worker() as site:

        async def scenario() -> None:
            alice = Account.sign_up(site.base, "alice")
            for size in (70_000, 2 * MIB, 5 * MIB):
                ws = await websockets.connect(
                    f"{alice.ws_base}/ws/chat/",
                    additional_headers={"Cookie": alice.cookie, "Origin": alice.base},
                    max_size=None,
                )
                hello = json.loads(await ws.recv())
                assert hello["type"] == "hello"
                frame = json.dumps({"type": "ping", "pad": "x" * size})
                # Closed from the frame's header, maybe while it is still being sent.
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(frame)
                assert await close_code(ws, timeout=10) == 4009, f"a frame of {size} bytes"
            # The same user is still welcome afterwards.
            tab = await alice.open_socket()
            assert (await tab.request(type="ping"))["type"] == "pong"
            await tab.close()

        asyncio.run(scenario())
