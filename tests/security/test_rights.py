"""Contract §4: rights follow the user live, on every worker, within seconds.

A password change signs out the user's other sessions and closes their sockets (4403), while
the session that changed it stays; deleting a user closes their sockets; losing staff status
takes staff powers from sockets already open. Two workers on Redis; changes made through the
site's own forms and the admin, as a person would.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from websockets.exceptions import InvalidStatus

from tests.contract.conftest import STAFF, STAFF_PASSWORD, Person, Site
from tests.contract.frames import assert_error, is_, send
from tests.wsclient import PASSWORD

pytestmark = pytest.mark.redis

NEW_PASSWORD = "another-horse-battery-staple"


async def admin_user_pk(staff: Person, username: str) -> str:
    status, page = await asyncio.to_thread(staff.account.request, f"/admin/auth/user/?q={username}")
    assert status == 200
    (pk,) = set(re.findall(r"/admin/auth/user/(\d+)/change/", page))
    return pk


async def test_a_password_change_closes_the_other_sessions_sockets_not_its_own(chat: Site) -> None:
    (alice,) = await chat.people("alice")
    laptop = await chat.sign_in(alice.name, PASSWORD, worker=1)
    phone = await chat.sign_in(alice.name, PASSWORD, worker=2)
    on_laptop = [await laptop.tab(1), await laptop.tab(2)]
    on_phone = [await phone.tab(1), await phone.tab(2)]

    status, page = await asyncio.to_thread(
        laptop.account.post_form,
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert status == 302, page[:1000]

    async with asyncio.timeout(5):
        assert [await tab.close_code() for tab in on_phone] == [4403, 4403]
    # The phone's session is signed out for pages too; the laptop's is not, nor its tabs.
    assert (await asyncio.to_thread(phone.account.request, "/rooms/"))[0] == 302
    assert (await asyncio.to_thread(laptop.account.request, "/rooms/"))[0] == 200
    for tab in on_laptop:
        assert (await tab.request(type="ping"))["type"] == "pong"
    fresh = await laptop.tab(2)
    assert (await fresh.request(type="ping"))["type"] == "pong"


async def test_a_user_deleted_in_the_admin_loses_every_socket(chat: Site) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    bob_tabs = [await bob.tab(1), await bob.tab(2)]
    await bob_tabs[0].request(type="join", room=room)

    staff = await chat.sign_in(STAFF, STAFF_PASSWORD, worker=1)
    pk = await admin_user_pk(staff, bob.name)
    status, page = await asyncio.to_thread(
        staff.account.post_form, f"/admin/auth/user/{pk}/delete/", {"post": "yes"}
    )
    assert status == 302, page[:1000]
    async with asyncio.timeout(5):
        assert [await tab.close_code() for tab in bob_tabs] == [4403, 4403]
    # His session is gone with him: no page, and no socket (HTTP 403 to the handshake).
    assert (await asyncio.to_thread(bob.account.request, "/rooms/"))[0] == 302
    with pytest.raises(InvalidStatus):
        await bob.tab(2)


async def test_losing_staff_status_takes_staff_powers_from_open_sockets(chat: Site) -> None:
    alice, bob, carol = await chat.people("alice", "bob", "carol")
    room = await alice.create_room(chat.unique("room"))
    staff = await chat.sign_in(STAFF, STAFF_PASSWORD, worker=1)
    pk = await admin_user_pk(staff, carol.name)
    status, page = await asyncio.to_thread(
        staff.account.edit_form,
        f"/admin/auth/user/{pk}/change/",
        "user_form",
        {"is_staff": "on", "_save": "Save"},
    )
    assert status == 302, page[:1000]

    carol_tab = await carol.tab(2)
    bob_tab = await bob.tab(1)
    await bob_tab.request(type="join", room=room)
    first = await send(bob_tab, room, "first")
    second = await send(bob_tab, room, "second")
    # As staff, carol's socket may delete someone else's message.
    await carol_tab.send(type="delete", id=first["id"])
    await bob_tab.wait_for(is_("message_deleted", room))

    status, page = await asyncio.to_thread(
        staff.account.edit_form,
        f"/admin/auth/user/{pk}/change/",
        "user_form",
        {"is_staff": None, "_save": "Save"},
    )
    assert status == 302, page[:1000]
    # The same socket, still open, no longer may.
    reply = await carol_tab.request(type="delete", id=second["id"], ref="d2")
    assert_error(reply, "forbidden", "d2")
    history = await bob_tab.request(type="history", room=room)
    assert [m["body"] for m in history["messages"]] == ["", "second"]
