"""The WebSocket protocol of contract §4, frame by frame, on both channel layers."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from rooms import moderation, services
from rooms.models import Membership, Message

pytestmark = [pytest.mark.django_db(transaction=True)]

db = sync_to_async


# --- handshake ------------------------------------------------------------------------------


async def test_anonymous_handshake_is_refused(hub):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application
    from tests.rooms.conftest import ORIGIN

    comm = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", ORIGIN)])
    connected, _ = await comm.connect()
    assert not connected


async def test_foreign_origin_is_refused(connect, alice):
    tab = await connect(alice, origin=b"https://evil.example", read_hello=False)
    assert not tab.connected


async def test_inactive_user_is_refused(connect, user_factory):
    dora = await db(user_factory)("dora", is_active=False)
    tab = await connect(dora, read_hello=False)
    assert not tab.connected


async def test_hello_lists_the_users_rooms_with_unread_counts(connect, public_room, alice, bob):
    await db(services.post_message)(author=alice, room=public_room, body="one")
    await db(services.post_message)(author=alice, room=public_room, body="two")
    tab = await connect(bob)
    assert tab.hello["type"] == "hello" and tab.hello["user"] == "bob"
    (room,) = tab.hello["rooms"]
    assert room == {
        "slug": "lobby",
        "name": "Lobby",
        "kind": "public",
        "topic": "Say hi",
        "last_seq": 2,
        "slow_mode": 0,
        "archived": False,
        "unread": 2,
        "mentions": 0,
        "role": "member",
    }


# --- join, leave, presence ------------------------------------------------------------------


async def test_join_answers_joined_and_tells_the_room(connect, public_room, alice, carol):
    a = await connect(alice)
    c = await connect(carol)
    reply = await c.request(type="join", room="lobby")
    assert reply["type"] == "joined"
    assert reply["room"] == {
        "slug": "lobby",
        "name": "Lobby",
        "kind": "public",
        "topic": "Say hi",
        "last_seq": 0,
        "slow_mode": 0,
        "archived": False,
    }
    assert reply["roles"] == {"alice": "owner"}
    assert reply["you"] == {"role": "member", "staff": False, "muted": False, "muted_until": None}
    assert reply["members"] == ["alice", "bob", "carol"]
    assert set(reply["online"]) == {"alice", "carol"}
    presence = await a.recv_type("presence")
    assert presence == {"type": "presence", "room": "lobby", "user": "carol", "event": "joined"}
    again = await c.request(type="join", room="lobby")
    assert again["type"] == "joined"
    assert await db(Membership.objects.filter(user=carol).count)() == 1


async def test_join_reaches_the_users_other_tabs(connect, public_room, carol):
    first = await connect(carol)
    second = await connect(carol)
    await first.request(type="join", room="lobby")
    added = await second.recv_type("room_added")
    assert added["room"]["slug"] == "lobby"
    await db(services.post_message)(author=carol, room=public_room, body="both tabs")
    assert (await first.recv_type("message"))["message"]["body"] == "both tabs"
    assert (await second.recv_type("message"))["message"]["body"] == "both tabs"


async def test_join_private_room_as_outsider_is_forbidden(connect, private_room, carol):
    tab = await connect(carol)
    reply = await tab.request(type="join", room="secret")
    assert reply["type"] == "error" and reply["code"] == "forbidden"


async def test_join_unknown_room_is_not_found(connect, alice):
    tab = await connect(alice)
    reply = await tab.request(type="join", room="nowhere")
    assert reply["type"] == "error" and reply["code"] == "not_found"


async def test_leave_tells_every_tab_and_stops_delivery(connect, public_room, alice, bob):
    a = await connect(alice)
    b1 = await connect(bob)
    b2 = await connect(bob)
    reply = await b1.request(type="leave", room="lobby")
    assert reply == {"type": "left", "room": "lobby", "ref": reply["ref"]}
    assert (await b2.recv_type("left"))["room"] == "lobby"
    left = await a.recv_type("presence", event="left")
    assert left == {"type": "presence", "room": "lobby", "user": "bob", "event": "left"}
    # What reached bob's tabs before they left (alice coming online, say) is not the point.
    await b1.frames()
    await b2.frames()
    await a.request(type="send", room="lobby", body="bob is gone")
    await a.send(type="typing", room="lobby")
    await b1.nothing()
    await b2.nothing()


async def test_first_connection_goes_online_and_last_goes_offline(connect, public_room, alice, bob):
    a = await connect(alice)
    b1 = await connect(bob)
    online = await a.recv_type("presence")
    assert online == {"type": "presence", "room": "lobby", "user": "bob", "event": "online"}
    b2 = await connect(bob)
    await b1.close()
    await a.nothing()  # bob still has a tab open
    await b2.close()
    offline = await a.recv_type("presence", event="offline")
    assert offline == {"type": "presence", "room": "lobby", "user": "bob", "event": "offline"}


# --- messages -------------------------------------------------------------------------------


async def test_send_is_stored_acked_and_delivered_to_every_tab(
    connect, public_room, alice, bob, carol
):
    a1 = await connect(alice)
    a2 = await connect(alice)
    b = await connect(bob)
    c = await connect(carol)  # not a member
    ack = await a1.request(type="send", room="lobby", body="hello <b>all</b>", ref="m-1")
    assert ack["type"] == "ack" and ack["ref"] == "m-1"
    assert ack["room"] == "lobby" and ack["seq"] == 1 and ack["id"] and ack["created_at"]
    stored = await db(Message.objects.get)(pk=ack["id"])
    assert stored.body == "hello <b>all</b>"
    for tab in (a1, a2, b):
        event = await tab.recv_type("message")
        assert event["room"] == "lobby"
        message = event["message"]
        assert message["body"] == "hello <b>all</b>" and message["seq"] == 1
        assert message["author"] == "alice" and message["ref"] == "m-1"
        assert message["id"] == ack["id"] and message["edited_at"] is None
    await c.nothing()


async def test_resending_a_ref_stores_nothing_new_and_acks_the_first(connect, public_room, alice):
    a = await connect(alice)
    first = await a.request(type="send", room="lobby", body="once", ref="retry-me")
    second = await a.request(type="send", room="lobby", body="once", ref="retry-me")
    assert (second["id"], second["seq"]) == (first["id"], first["seq"])
    assert await db(Message.objects.count)() == 1


async def test_send_to_a_private_room_as_outsider_is_forbidden(connect, private_room, carol):
    c = await connect(carol)
    reply = await c.request(type="send", room="secret", body="hi")
    assert reply["code"] == "forbidden"
    assert await db(Message.objects.count)() == 0


async def test_outsider_never_receives_private_room_events(connect, private_room, alice, carol):
    a = await connect(alice)
    c = await connect(carol)
    await a.request(type="send", room="secret", body="classified")
    await a.send(type="typing", room="secret")
    await c.nothing()
    reply = await c.request(type="history", room="secret")
    assert reply["code"] == "forbidden"


async def test_history_pages_by_seq(connect, public_room, alice):
    for n in range(1, 6):
        await db(services.post_message)(author=alice, room=public_room, body=f"m{n}")
    a = await connect(alice)
    newest = await a.request(type="history", room="lobby", limit=2)
    assert newest["type"] == "history" and newest["room"] == "lobby"
    assert [m["seq"] for m in newest["messages"]] == [4, 5] and newest["has_more"]
    before = await a.request(type="history", room="lobby", before=4, limit=2)
    assert [m["seq"] for m in before["messages"]] == [2, 3] and before["has_more"]
    after = await a.request(type="history", room="lobby", after=3)
    assert [m["seq"] for m in after["messages"]] == [4, 5] and not after["has_more"]
    assert set(after["messages"][0]) >= {"id", "seq", "author", "body", "created_at", "edited_at"}


async def test_read_updates_unread_on_every_tab(connect, public_room, alice, bob):
    for n in range(3):
        await db(services.post_message)(author=alice, room=public_room, body=f"m{n}")
    b1 = await connect(bob)
    b2 = await connect(bob)
    assert b1.hello["rooms"][0]["unread"] == 3
    reply = await b1.request(type="read", room="lobby", seq=2)
    assert reply["type"] == "unread" and reply["count"] == 1 and reply["last_read"] == 2
    other = await b2.recv_type("unread")
    assert other == {
        "type": "unread",
        "room": "lobby",
        "count": 1,
        "last_read": 2,
        "mentions": 0,
    }


async def test_typing_reaches_other_users_never_the_typists_tabs(connect, public_room, alice, bob):
    a1 = await connect(alice)
    a2 = await connect(alice)
    b = await connect(bob)
    await b.frames()
    await a1.send(type="typing", room="lobby")
    assert await b.recv_type("typing") == {"type": "typing", "room": "lobby", "user": "alice"}
    assert [f for f in await a1.frames() if f["type"] == "typing"] == []
    assert [f for f in await a2.frames() if f["type"] == "typing"] == []


async def test_direct_message_creates_the_room_for_both_and_no_one_else(connect, alice, bob, carol):
    a = await connect(alice)
    b = await connect(bob)
    c = await connect(carol)
    ack = await a.request(type="direct", to="bob", body="psst", ref="d-1")
    assert ack["type"] == "ack" and ack["seq"] == 1 and ack["ref"] == "d-1"
    frames = [f for f in await b.frames() if f["type"] in ("room_added", "message")]
    assert [f["type"] for f in frames] == ["room_added", "message"]
    assert frames[0]["room"]["kind"] == "direct" and frames[0]["room"]["name"] == "alice"
    assert frames[1]["message"]["body"] == "psst"
    assert (await a.recv_type("message"))["message"]["body"] == "psst"
    await c.nothing()
    # The second message goes through the room, still to the two of them only.
    reply = await b.request(type="send", room=ack["room"], body="hi back")
    assert reply["type"] == "ack" and reply["seq"] == 2
    assert (await a.recv_type("message"))["message"]["body"] == "hi back"
    await c.nothing()


async def test_direct_to_unknown_user_is_not_found(connect, alice):
    a = await connect(alice)
    reply = await a.request(type="direct", to="nobody", body="hello?")
    assert reply["code"] == "not_found"


async def test_edit_and_delete_reach_the_room(connect, public_room, alice, bob):
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="typo")
    await a.send(type="edit", id=ack["id"], body="fixed")
    edited = await b.recv_type("message_edited")
    assert edited["room"] == "lobby" and edited["id"] == ack["id"] and edited["seq"] == 1
    assert edited["message"]["body"] == "fixed" and edited["message"]["edited_at"]
    await a.send(type="delete", id=ack["id"])
    deleted = await b.recv_type("message_deleted")
    assert deleted["id"] == ack["id"] and deleted["seq"] == 1
    page = await b.request(type="history", room="lobby")
    assert page["messages"][0]["deleted"] is True and page["messages"][0]["body"] == ""


async def test_only_the_author_may_edit_or_delete(connect, public_room, alice, bob):
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="mine")
    assert (await b.request(type="edit", id=ack["id"], body="ours"))["code"] == "forbidden"
    assert (await b.request(type="delete", id=ack["id"]))["code"] == "forbidden"
    assert (await b.request(type="delete", id=999999))["code"] == "not_found"


async def test_ping_answers_pong(connect, alice):
    a = await connect(alice)
    await a.send(type="ping", ref="p")
    assert await a.recv() == {"type": "pong", "ref": "p"}


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"room": "lobby"}', "bad_frame"),
        ('{"type": 7}', "bad_frame"),
        ('{"type": "send", "room": "lobby", "body": 5, "ref": "x"}', "bad_frame"),
        ('{"type": "history", "room": "lobby", "limit": "ten", "ref": "x"}', "bad_frame"),
        ('{"type": "read", "room": "lobby", "seq": true, "ref": "x"}', "bad_frame"),
        ('{"type": "dance", "ref": "x"}', "unknown_type"),
        ('{"type": "send", "room": "lobby", "body": "   ", "ref": "x"}', "empty"),
        ('{"type": "send", "room": "nowhere", "body": "hi", "ref": "x"}', "not_found"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    connect, public_room, alice, raw, code
):
    a = await connect(alice)
    await a.send_raw(raw)
    error = await a.recv_type("error")
    assert error["code"] == code and error["detail"]
    if '"ref": "x"' in raw:
        assert error["ref"] == "x"
    await a.send(type="ping", ref="still-open")
    assert await a.recv_type("pong") == {"type": "pong", "ref": "still-open"}


async def test_too_long_body_is_refused_and_nothing_stored(connect, public_room, alice):
    a = await connect(alice)
    reply = await a.request(type="send", room="lobby", body="x" * 4001)
    assert reply["code"] == "too_long"
    assert await db(Message.objects.count)() == 0


async def test_rate_limit_refuses_bursts_across_tabs(connect, public_room, alice, settings):
    settings.CHAT = {**settings.CHAT, "RATE_PER_SECOND": 0.01, "RATE_BURST": 3}
    a1 = await connect(alice)
    a2 = await connect(alice)
    codes = []
    for n in range(4):
        tab = a1 if n % 2 else a2
        codes.append((await tab.request(type="send", room="lobby", body=f"m{n}"))["type"])
    assert codes == ["ack", "ack", "ack", "error"]
    reply = await a1.request(type="send", room="lobby", body="more")
    assert reply["code"] == "rate_limited"
    await a1.send(type="ping", ref="open")
    assert (await a1.recv_type("pong"))["ref"] == "open"


async def test_a_failure_while_storing_answers_internal(connect, public_room, alice, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "post_message", broken)
    a = await connect(alice)
    reply = await a.request(type="send", room="lobby", body="hi")
    assert reply["code"] == "internal"


async def test_oversized_frame_closes_with_4009(connect, alice):
    a = await connect(alice)
    await a.send_raw(json.dumps({"type": "ping", "pad": "x" * (64 * 1024)}))
    assert await a.close_code() == 4009


async def test_error_flood_closes_with_4008(connect, alice):
    a = await connect(alice)
    for _ in range(101):
        await a.send_raw("nope")
    frames = []
    while True:
        output = await a.output()
        if output["type"] == "websocket.close":
            break
        frames.append(json.loads(output["text"]))
    assert output["code"] == 4008
    assert len(frames) == 101 and {f["code"] for f in frames} == {"bad_json"}


async def test_rate_limited_replies_never_close_the_socket(connect, public_room, alice, settings):
    settings.CHAT = {**settings.CHAT, "RATE_PER_SECOND": 0.01, "RATE_BURST": 1}
    a = await connect(alice)
    for n in range(120):
        await a.send(type="send", room="lobby", body=f"m{n}", ref=f"r{n}")
    frames = await a.frames(0.5)
    assert sum(1 for f in frames if f.get("code") == "rate_limited") == 119
    await a.send(type="ping", ref="alive")
    assert (await a.recv_type("pong"))["ref"] == "alive"


# --- moderation -----------------------------------------------------------------------------


async def test_deactivated_user_is_cut_off_at_once(connect, public_room, alice, bob):
    b1 = await connect(bob)
    b2 = await connect(bob)

    def deactivate():
        bob.is_active = False
        bob.save()

    await db(deactivate)()
    assert await b1.close_code() == 4403
    assert await b2.close_code() == 4403


async def test_removed_member_stops_receiving_the_room(connect, private_room, alice, bob):
    a = await connect(alice)
    b = await connect(bob)
    await db(moderation.moderate)(actor=alice, room=private_room, target=bob, action="kick")
    assert (await b.recv_type("room_removed"))["room"] == "secret"
    await a.request(type="send", room="secret", body="after bob")
    assert [f for f in await b.frames() if f["type"] == "message"] == []


async def test_message_deleted_by_staff_disappears_for_everyone(
    connect, public_room, alice, bob, staff
):
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="oops")
    await db(services.delete_message)(user=staff, message_id=ack["id"])
    for tab in (a, b):
        assert (await tab.recv_type("message_deleted"))["id"] == ack["id"]


async def test_integers_beyond_a_bigint_are_bad_frames(connect, public_room, alice):
    a = await connect(alice)
    for frame in (
        {"type": "history", "room": "lobby", "before": 10**30},
        {"type": "delete", "id": -(10**20)},
        {"type": "read", "room": "lobby", "seq": 2**70},
    ):
        assert (await a.request(**frame))["code"] == "bad_frame"
