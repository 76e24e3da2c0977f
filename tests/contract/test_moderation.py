"""Contract §6, moderation, against two real workers of one site.

Personas: alice owns the room (a tab on each worker), mo is the moderator she names (worker 1),
bob a member (a tab on each worker), carol an outsider (worker 2); staff read the audit log in
the admin. Every expectation between people crosses workers.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import pytest

from tests.wsclient import Socket

from .conftest import STAFF, STAFF_PASSWORD, Person, Site
from .frames import assert_error, assert_nothing_about, is_, quiet, send

pytestmark = pytest.mark.redis


@dataclass
class Room:
    slug: str
    alice: Person
    mo: Person
    bob: Person
    carol: Person
    a1: Socket
    a2: Socket
    m1: Socket
    b1: Socket
    b2: Socket
    c2: Socket


async def moderated_room(site: Site, *, private: bool = False) -> Room:
    alice, mo, bob, carol = await site.people("alice", "mo", "bob", "carol")
    slug = await alice.create_room(site.unique("modroom"), private=private)
    a1, a2 = await alice.tab(1), await alice.tab(2)
    m1, b1, b2, c2 = await mo.tab(1), await bob.tab(1), await bob.tab(2), await carol.tab(2)
    if private:
        for person in (mo, bob):
            await a1.request(type="invite", room=slug, user=person.name)
        await b1.wait_for(is_("room_added", slug))
        await m1.wait_for(is_("room_added", slug))
    else:
        for tab in (m1, b1):
            assert (await tab.request(type="join", room=slug))["type"] == "joined"
    promoted = await a1.request(type="moderate", room=slug, user=mo.name, action="promote")
    assert promoted["type"] == "moderated", promoted
    await quiet(a1, a2, m1, b1, b2, c2, seconds=0.3)
    return Room(slug, alice, mo, bob, carol, a1, a2, m1, b1, b2, c2)


def moderated(room: str, user: str, action: str, by: str, **extra: object) -> dict[str, object]:
    return {"type": "moderated", "room": room, "user": user, "action": action, "by": by, **extra}


async def test_joined_lists_roles_and_promotion_reaches_the_room(site):
    r = await moderated_room(site)
    joined = await r.b2.request(type="join", room=r.slug)
    assert joined["roles"] == {r.alice.name: "owner", r.mo.name: "moderator"}
    # The promotion itself was told to the room, on both workers.
    fresh = await r.bob.tab(2)
    assert [x["role"] for x in fresh.hello["rooms"] if x["slug"] == r.slug] == ["member"]
    demoted = await r.a2.request(type="moderate", room=r.slug, user=r.mo.name, action="demote")
    assert demoted == {
        **moderated(r.slug, r.mo.name, "demote", r.alice.name, role="member"),
        "ref": demoted["ref"],
    }
    for tab in (r.m1, r.b1, r.b2, r.a1):
        event = await tab.wait_for(is_("moderated", r.slug))
        assert event == moderated(r.slug, r.mo.name, "demote", r.alice.name, role="member")


async def test_members_and_outsiders_are_forbidden_every_moderation_frame(site):
    r = await moderated_room(site)
    for tab, who in ((r.b1, "member"), (r.c2, "outsider")):
        frames = [
            {"type": "moderate", "room": r.slug, "user": r.alice.name, "action": "mute"},
            {"type": "invite", "room": r.slug, "user": r.carol.name},
            {"type": "room_settings", "room": r.slug, "slow_mode": 5},
        ]
        for n, frame in enumerate(frames):
            ref = f"{who}-{n}"
            assert_error(await tab.request(**frame, ref=ref), "forbidden", ref)
    await assert_nothing_about(r.slug, r.a1, r.a2, r.m1)


async def test_a_moderator_may_not_act_on_owners_or_promote(site):
    r = await moderated_room(site)
    for action in ("mute", "kick", "ban"):
        reply = await r.m1.request(type="moderate", room=r.slug, user=r.alice.name, action=action)
        assert_error(reply, "forbidden", reply["ref"])
    reply = await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="promote")
    assert_error(reply, "forbidden", reply["ref"])
    reply = await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="shout")
    assert_error(reply, "bad_frame", reply["ref"])


async def test_a_mute_reaches_every_tab_and_refuses_posts_until_unmuted(site):
    r = await moderated_room(site)
    reply = await r.m1.request(
        type="moderate", room=r.slug, user=r.bob.name, action="mute", minutes=30
    )
    until = reply["until"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", until)
    for tab in (r.b1, r.b2, r.a1, r.a2):
        event = await tab.wait_for(is_("moderated", r.slug))
        assert event == moderated(r.slug, r.bob.name, "mute", r.mo.name, until=until)
    for tab in (r.b1, r.b2):
        refused = await tab.request(type="send", room=r.slug, body="let me talk", ref="m1")
        assert refused == {
            "type": "error",
            "code": "muted",
            "detail": refused["detail"],
            "until": until,
            "ref": "m1",
        }
    joined = await r.b2.request(type="join", room=r.slug)
    assert joined["you"] == {"role": "member", "staff": False, "muted": True, "muted_until": until}
    await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="unmute")
    await r.b2.wait_for(lambda f: f["type"] == "moderated" and f["action"] == "unmute")
    await send(r.b2, r.slug, "thank you")


async def test_slow_mode_holds_members_but_not_moderators(site):
    r = await moderated_room(site)
    updated = await r.m1.request(type="room_settings", room=r.slug, slow_mode=120)
    assert updated["room"]["slow_mode"] == 120 and updated["type"] == "room_updated"
    for tab in (r.b1, r.b2, r.a2):
        event = await tab.wait_for(is_("room_updated", r.slug))
        assert (event["room"]["slug"], event["room"]["slow_mode"]) == (r.slug, 120)
    await send(r.b1, r.slug, "first", ref="s1")
    refused = await r.b2.request(type="send", room=r.slug, body="second", ref="s2")
    assert refused["code"] == "slow_mode" and 1 <= refused["retry_after"] <= 120
    # The first message's retry is acked again, from the other worker.
    assert (await r.b2.request(type="send", room=r.slug, body="first", ref="s1"))["seq"] == 1
    for n in range(3):
        await send(r.m1, r.slug, f"moderator {n}")


async def test_kick_and_ban_remove_the_room_from_every_tab_at_once(site):
    r = await moderated_room(site)
    await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="kick")
    for tab in (r.b1, r.b2):
        assert await tab.wait_for(is_("room_removed", r.slug)) == {
            "type": "room_removed",
            "room": r.slug,
        }
    # Kicked, not banned: bob may come back.
    assert (await r.b2.request(type="join", room=r.slug))["type"] == "joined"
    await quiet(r.b1, r.b2, r.a1)

    await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="ban")
    for tab in (r.b1, r.b2):
        await tab.wait_for(is_("room_removed", r.slug))
    await send(r.a1, r.slug, "bob cannot see this")
    await r.a2.send(type="typing", room=r.slug)
    await assert_nothing_about(r.slug, r.b1, r.b2)
    assert_error(await r.b1.request(type="join", room=r.slug, ref="j"), "banned", "j")
    assert_error(
        await r.a2.request(type="invite", room=r.slug, user=r.bob.name, ref="i"), "banned", "i"
    )
    assert_error(await r.b2.request(type="history", room=r.slug, ref="h"), "forbidden", "h")
    assert_error(await r.b2.request(type="send", room=r.slug, body="hi", ref="s"), "forbidden", "s")
    # Leaving and coming back lifts nothing; unban does.
    fresh = await r.bob.tab(1)
    assert r.slug not in [x["slug"] for x in fresh.hello["rooms"]]
    await r.a1.request(type="moderate", room=r.slug, user=r.bob.name, action="unban")
    assert (await fresh.request(type="join", room=r.slug))["type"] == "joined"


async def test_an_invitation_to_a_private_room_reaches_the_invitee_on_every_worker(site):
    r = await moderated_room(site, private=True)
    c1 = await r.carol.tab(1)
    reply = await r.m1.request(type="invite", room=r.slug, user=r.carol.name)
    assert reply == {"type": "invited", "room": r.slug, "user": r.carol.name, "ref": reply["ref"]}
    for tab in (r.c2, c1):
        added = await tab.wait_for(is_("room_added", r.slug))
        assert added["room"]["kind"] == "private"
    message = await send(r.a1, r.slug, "welcome, carol")
    for tab in (r.c2, c1):
        assert (await tab.wait_for(is_("message", r.slug)))["message"]["id"] == message["id"]


async def test_an_archived_room_is_read_only_for_everyone_until_unarchived(site):
    r = await moderated_room(site)
    await send(r.b1, r.slug, "before")
    updated = await r.a1.request(type="room_settings", room=r.slug, archived=True)
    assert updated["room"]["archived"] is True
    await r.b2.wait_for(lambda f: f["type"] == "room_updated" and f["room"]["archived"])
    for tab in (r.a2, r.m1, r.b2):
        reply = await tab.request(type="send", room=r.slug, body="after", ref="x")
        assert_error(reply, "forbidden", "x")
    history = await r.b2.request(type="history", room=r.slug)
    assert [m["body"] for m in history["messages"]] == ["before"]
    await r.a2.request(type="room_settings", room=r.slug, archived=False)
    await send(r.b2, r.slug, "open again")


async def test_every_action_is_in_the_audit_log_which_staff_cannot_edit(site):
    r = await moderated_room(site)
    await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="mute", minutes=5)
    await r.m1.request(type="moderate", room=r.slug, user=r.bob.name, action="ban")
    await r.a1.request(type="room_settings", room=r.slug, topic="Rules apply")
    staff = await site.sign_in(STAFF, STAFF_PASSWORD, worker=2)
    status, page = await asyncio.to_thread(
        staff.account.request, f"/admin/rooms/auditentry/?q={r.slug}"
    )
    assert status == 200, page[:500]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
    text = [re.sub(r"<[^>]+>", " ", row) for row in rows]
    for actor, action, target in (
        (r.alice.name, "promote", r.mo.name),
        (r.mo.name, "mute", r.bob.name),
        (r.mo.name, "ban", r.bob.name),
        (r.alice.name, "room_settings", ""),
    ):
        assert any(
            actor in row and f" {action} " in f" {row} " and target in row for row in text
        ), f"no audit row for {actor} {action} {target}"
    status, _ = await asyncio.to_thread(staff.account.request, "/admin/rooms/auditentry/add/")
    assert status == 403
