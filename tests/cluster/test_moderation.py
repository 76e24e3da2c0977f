"""Moderation on real workers: an owner on one worker, the member she mutes and bans with a tab
on each of the others. Each action reaches every tab at once, wherever it is."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.wsclient import Account, Socket

pytestmark = pytest.mark.nginx


def of_type(kind: str, **match: object):
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in match.items())


async def test_mute_ban_and_settings_reach_every_tab_on_every_worker(live_cluster):
    one, two, three = (
        f"http://127.0.0.1:{live_cluster.config.worker_port(index)}" for index in (1, 2, 3)
    )
    tag = uuid.uuid4().hex[:6]
    room = f"mod-{tag}"
    alice = await asyncio.to_thread(Account.sign_up, one, f"alice-{tag}")
    bob = await asyncio.to_thread(Account.sign_up, two, f"bob-{tag}")
    carol = await asyncio.to_thread(Account.sign_up, three, f"carol-{tag}")
    await asyncio.to_thread(alice.create_room, "Moderated", room)

    owner = await alice.open_socket(one)
    bob_tabs = [await bob.open_socket(two), await bob.open_socket(three)]
    onlooker = await carol.open_socket(three)
    sockets: list[Socket] = [owner, *bob_tabs, onlooker]
    try:
        for tab in (bob_tabs[0], onlooker):
            await tab.request(type="join", room=room)
        joined = await bob_tabs[1].request(type="join", room=room)
        assert joined["roles"] == {alice.username: "owner"}
        assert joined["you"] == {
            "role": "member",
            "staff": False,
            "muted": False,
            "muted_until": None,
        }

        # Mute: every tab of bob hears until when, and bob's posts are refused from any tab.
        reply = await owner.request(
            type="moderate", room=room, user=bob.username, action="mute", minutes=5
        )
        assert reply["type"] == "moderated" and reply["until"]
        for tab in (*bob_tabs, onlooker):
            event = await tab.wait_for(of_type("moderated", action="mute"))
            assert (event["user"], event["by"], event["until"]) == (
                bob.username,
                alice.username,
                reply["until"],
            )
        refused = await bob_tabs[1].request(type="send", room=room, body="can I?")
        assert (refused["type"], refused["code"], refused["until"]) == (
            "error",
            "muted",
            reply["until"],
        )
        await owner.request(type="moderate", room=room, user=bob.username, action="unmute")
        ack = await bob_tabs[0].request(type="send", room=room, body="thanks")
        assert ack["type"] == "ack"

        # Slow mode reaches every worker as `room_updated`, and holds bob (not alice).
        await owner.request(type="room_settings", room=room, slow_mode=60)
        for tab in (*bob_tabs, onlooker):
            updated = await tab.wait_for(of_type("room_updated"))
            assert updated["room"]["slow_mode"] == 60
        held = await bob_tabs[1].request(type="send", room=room, body="again")
        assert held["code"] == "slow_mode" and 1 <= held["retry_after"] <= 60
        assert (await owner.request(type="send", room=room, body="owners go on"))["type"] == "ack"

        # Ban: both of bob's tabs lose the room at once, and nothing more of it reaches them.
        await owner.request(type="moderate", room=room, user=bob.username, action="ban")
        for tab in bob_tabs:
            assert (await tab.wait_for(of_type("room_removed")))["room"] == room
        left = await onlooker.wait_for(of_type("presence", event="left"))
        assert left["user"] == bob.username
        posted = await owner.request(type="send", room=room, body="after the ban")
        assert posted["type"] == "ack", posted
        await owner.send(type="typing", room=room)
        await onlooker.wait_for(
            lambda f: f["type"] == "message" and f["message"]["id"] == posted["id"]
        )
        for tab in bob_tabs:
            after = [f for f in await tab.settle(1.0) if f.get("room") == room]
            assert [f for f in after if f["type"] == "typing"] == []
            assert posted["id"] not in [f["message"]["id"] for f in after if f["type"] == "message"]
        refused = await bob_tabs[0].request(type="join", room=room)
        assert refused["code"] == "banned"
        refused = await bob_tabs[1].request(type="history", room=room)
        assert refused["code"] == "forbidden"
        # A reconnecting tab does not get the room back either.
        again = await bob.open_socket(three)
        sockets.append(again)
        assert again.hello is not None
        assert room not in [r["slug"] for r in again.hello["rooms"]]
    finally:
        for sock in sockets:
            await sock.close()
