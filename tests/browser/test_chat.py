"""The chat page in real Chromium: live messages, unread badges, direct conversations, typing,
reconnect after a server restart, text-only bodies, and screenshots for a person to look at."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .conftest import (
    SCREENSHOTS,
    LossyRelay,
    Pages,
    Server,
    bodies,
    connected,
    expect,
    send,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_two_users_chat_live(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/lobby/")
    bob = pages.open("bob", "/rooms/lobby/")
    connected(alice)
    connected(bob)

    send(alice, "Hello bob, can you see this?")
    mine = alice.locator("#messages li.msg", has_text="Hello bob, can you see this?")
    expect(mine).to_have_count(1)
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    expect(alice.locator("#composer-input")).to_have_value("")

    theirs = bob.locator("#messages li.msg", has_text="Hello bob, can you see this?")
    expect(theirs).to_have_count(1)
    send(bob, "Loud and clear.\nTwo lines, even.")
    reply = alice.locator("#messages li.msg", has_text="Loud and clear.")
    expect(reply).to_have_count(1)
    expect(reply.locator(".msg-body")).to_have_text("Loud and clear.\nTwo lines, even.")
    expect(reply.locator(".msg-author")).to_have_text("bob")


def test_shift_enter_makes_a_new_line_and_enter_sends(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/notes/")
    connected(alice)
    box = alice.locator("#composer-input")
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(alice.locator("#messages li.msg .msg-body").last).to_have_text("first line\nsecond line")


def test_unread_badge_rises_and_clears_in_every_tab(pages: Pages) -> None:
    reader = pages.context("bob")
    first = pages.open("bob", "/rooms/lobby/", context=reader)
    second = pages.open("bob", "/rooms/lobby/", context=reader)
    alice = pages.open("alice", "/rooms/random/")
    for page in (first, second, alice):
        connected(page)

    expect(first.locator("#room-nav a[data-room=random] .badge")).to_be_hidden()
    before = unread_total(first)
    send(alice, "Anyone around in random?")
    for tab in (first, second):
        link = tab.locator("#room-nav a[data-room=random]")
        expect(link.locator(".badge")).to_have_text("1")
        expect(link).to_have_class(re.compile(r"\bunread\b"))
        expect(tab).to_have_title(re.compile(rf"^\({before + 1}\) #lobby"))

    first.locator("#room-nav a[data-room=random]").click()
    expect(first).to_have_url(re.compile(r"/rooms/random/$"))
    expect(first.locator("#messages li.msg", has_text="Anyone around in random?")).to_be_visible()
    for tab in (first, second):
        link = tab.locator("#room-nav a[data-room=random]")
        expect(link.locator(".badge")).to_be_hidden()
        expect(link).not_to_have_class(re.compile(r"\bunread\b"))
    assert unread_total(second) == before


def unread_total(page: Page) -> int:
    """The unread count the page title shows: "(3) #lobby · Chat"."""
    match = re.match(r"^\((\d+)\) ", page.title())
    return int(match.group(1)) if match else 0


def test_direct_conversation_reaches_only_its_two_people(pages: Pages, server: Server) -> None:
    alice = pages.open("alice", "/rooms/lobby/")
    bob = pages.open("bob", "/rooms/lobby/")
    carol = pages.open("carol", "/rooms/lobby/")
    for page in (alice, bob, carol):
        connected(page)

    alice.locator("#member-list button[data-user=bob]").click()
    expect(alice.locator("#room-title")).to_have_text("bob")
    send(alice, "psst bob, just between us")
    expect(alice).to_have_url(re.compile(r"/rooms/dm-[0-9]+-[0-9]+/$"))
    dm_url = alice.url
    expect(alice.locator("#dm-nav a", has_text="bob")).to_be_visible()

    link = bob.locator("#dm-nav a", has_text="alice")
    expect(link.locator(".badge")).to_have_text("1")
    link.click()
    expect(bob.locator("#messages li.msg", has_text="psst bob")).to_have_count(1)
    send(bob, "got it")
    expect(alice.locator("#messages li.msg", has_text="got it")).to_have_count(1)

    # Everything has arrived where it should by now: carol has seen none of it.
    expect(carol.locator("#dm-nav a")).to_have_count(0)
    assert "psst" not in carol.content()
    response = carol.goto(dm_url)
    assert response is not None and response.status == 403
    api = carol.request.get(dm_url.replace("/rooms/", "/api/rooms/").rstrip("/") + "/messages")
    assert api.status == 403


def test_typing_indicator_shows_for_the_other_user_only(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/typing/")
    bob = pages.open("bob", "/rooms/typing/")
    connected(alice)
    connected(bob)
    # Remember every text the typist's own indicator ever shows.
    alice.evaluate(
        """() => {
            window.typingSeen = [];
            const node = document.getElementById("typing");
            new MutationObserver(() => window.typingSeen.push(node.textContent))
                .observe(node, {childList: true, subtree: true, characterData: true});
        }"""
    )
    alice.locator("#composer-input").press_sequentially("I am writing something", delay=20)
    expect(bob.locator("#typing")).to_have_text("alice is typing…")
    alice.locator("#composer-input").press("Enter")
    # A message from the typist ends their indicator at once.
    expect(bob.locator("#typing")).to_have_text("")
    expect(bob.locator("#messages li.msg", has_text="I am writing something")).to_have_count(1)

    bob.locator("#composer-input").press_sequentially("and I reply", delay=20)
    expect(alice.locator("#typing")).to_have_text("bob is typing…")
    assert not [text for text in alice.evaluate("window.typingSeen") if "alice" in text]
    expect(bob.locator("#typing")).to_have_text("")


def test_server_restart_loses_and_doubles_nothing(pages: Pages, server: Server) -> None:
    alice = pages.open("alice", "/rooms/restart/")
    bob = pages.open("bob", "/rooms/restart/")
    connected(alice)
    connected(bob)

    expected = [f"before {n}" for n in range(1, 4)]
    for text in expected:
        send(alice, text)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)

    # Send a burst and stop the server while it is in flight.
    burst = [f"burst {n}" for n in range(1, 6)]
    for text in burst:
        send(alice, text)
    server.stop()
    expected += burst

    expect(alice.locator("#conn-banner")).to_have_attribute("data-state", "offline")
    expect(alice.locator("#composer-note")).to_contain_text("offline")
    send(alice, "typed while offline")
    expected.append("typed while offline")
    expect(
        alice.locator("#messages li.msg.pending", has_text="typed while offline")
    ).to_be_visible()
    alice.screenshot(path=SCREENSHOTS / "room-offline.png")

    server.start()
    expect(alice.locator("#conn-banner")).to_have_attribute("data-state", "back", timeout=30_000)
    expect(alice.locator("#messages li.msg.pending, #messages li.msg.failed")).to_have_count(0)
    assert bodies(alice) == expected

    expect(bob.locator("#messages li.msg", has_text="typed while offline")).to_have_count(
        1, timeout=30_000
    )
    assert bodies(bob) == expected
    stored = alice.request.get("/api/rooms/restart/messages?limit=100").json()["messages"]
    assert [m["body"] for m in stored] == expected
    assert [m["seq"] for m in stored] == list(range(1, len(expected) + 1))

    # And a reload renders the same, from the server.
    alice.reload()
    assert bodies(alice) == expected


def test_edits_and_deletions_missed_while_disconnected_show_after_reconnecting(
    pages: Pages,
) -> None:
    alice = pages.open("alice", "/rooms/missed/")
    context = pages.context("bob")
    # Bob's socket loses edit and delete events on demand, as a socket does that is away when
    # they happen.
    relay = LossyRelay(context, lambda frame: '"message_' in frame)
    bob = pages.open("bob", "/rooms/missed/", context=context)
    connected(alice)
    connected(bob)
    send(alice, "this one stays")
    send(alice, "this one gets fixed")
    send(alice, "this one goes away")
    expect(bob.locator("#messages li.msg")).to_have_count(3)

    relay.dropping = True
    for text, action in (("gets fixed", "Edit message"), ("goes away", "Delete message")):
        row = alice.locator("#messages li.msg", has_text=text)
        row.hover()
        row.get_by_role("button", name=action).click()
        if action == "Edit message":
            editor = alice.locator("#messages .msg-editor textarea")
            editor.fill("this one was fixed")
            editor.press("Enter")
        else:
            row.get_by_role("button", name="Delete", exact=True).click()
    now = ["this one stays", "this one was fixed (edited)", "Message deleted"]
    expect(alice.locator("#messages li.msg .msg-body")).to_have_text(now)
    bob.wait_for_timeout(500)
    assert bodies(bob) == ["this one stays", "this one gets fixed", "this one goes away"]

    relay.cut(code=4012)
    expect(bob.locator("#messages li.msg .msg-body")).to_have_text(now)
    assert len(relay.sockets) == 2, "bob's tab did not reconnect"


def test_bodies_are_text_never_html(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/xss/")
    bob = pages.open("bob", "/rooms/xss/")
    connected(alice)
    connected(bob)
    attacks = [
        "<script>window.pwned = 'script'</script>",
        "<img src=x onerror=\"window.pwned = 'img'\">",
        "see https://example.com/a?b=1&c=2, <b>bold</b> or javascript:alert(1)",
    ]
    for text in attacks:
        send(alice, text)
    expect(bob.locator("#messages li.msg", has_text="javascript:alert")).to_have_count(1)

    bob.reload()  # the server-rendered page must hold the same line, too
    for page in (alice, bob):
        connected(page)
        for text in attacks:
            expect(page.locator("#messages .msg-body", has_text=text)).to_have_count(1)
        assert page.locator("#messages img, #messages script, #messages b").count() == 0
        assert page.evaluate("window.pwned") is None
        links = page.locator("#messages .msg-body a")
        expect(links).to_have_count(1)
        expect(links).to_have_attribute("href", "https://example.com/a?b=1&c=2")
        expect(links).to_have_attribute("rel", "noopener noreferrer nofollow")


def test_scrolling_up_loads_older_messages(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/history/")
    connected(alice)
    expect(alice.locator("#messages li.msg")).to_have_count(50)
    for _ in range(3):
        alice.locator("#scroller").evaluate("node => { node.scrollTop = 0; }")
        alice.wait_for_timeout(150)
    expect(alice.locator("#messages li.msg .msg-body").first).to_have_text("history 1")
    # The 130 seeded ones first (test_replies_reactions.py adds a reply after them).
    assert bodies(alice)[:130] == [f"history {n}" for n in range(1, 131)]
    expect(alice.locator(".intro h2")).to_have_text("Welcome to #history")


def test_edit_and_delete_own_message(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/lobby/")
    bob = pages.open("bob", "/rooms/lobby/")
    connected(alice)
    connected(bob)
    send(alice, "A message with a tpyo")
    row = alice.locator("#messages li.msg", has_text="A message with a tpyo")
    expect(row).not_to_have_class(re.compile(r"\bpending\b"))
    row.hover()
    row.get_by_role("button", name="Edit message").click()
    editor = alice.locator("#messages .msg-editor textarea")
    expect(editor).to_have_value("A message with a tpyo")
    expect(editor).to_be_focused()
    editor.fill("A message without a typo")
    editor.press("Enter")
    edited = bob.locator("#messages li.msg", has_text="A message without a typo")
    expect(edited.locator(".msg-edited")).to_have_text("(edited)")

    row = alice.locator("#messages li.msg", has_text="A message without a typo")
    row.hover()
    row.get_by_role("button", name="Delete message").click()
    row.get_by_role("button", name="Delete", exact=True).click()
    expect(bob.locator("#messages li.msg", has_text="A message without a typo")).to_have_count(0)
    # Nobody can edit someone else's message: bob's toolbar on alice's messages has Reply and
    # Add reaction, never Edit or Delete.
    others = bob.locator("#messages li.msg:not(.own) .msg-actions")
    expect(others.locator("[data-action=reply]")).not_to_have_count(0)
    expect(others.locator("[data-action=edit], [data-action=delete]")).to_have_count(0)


def test_signing_out_elsewhere_offers_sign_in(pages: Pages) -> None:
    context = pages.context()
    page = context.new_page()
    sign_in(page, "dave")
    chat = pages.open("dave", "/rooms/", context=context)
    connected(chat)
    page.goto("/rooms/")
    page.locator(".sidebar-foot button[type=submit]").click()
    banner = chat.locator("#conn-banner")
    expect(banner).to_have_attribute("data-state", "signed-out")
    expect(banner.get_by_role("link", name="Sign in")).to_have_attribute(
        "href", "/accounts/login/?next=%2Frooms%2F"
    )
    expect(chat.locator("#conn-dot")).to_have_attribute("data-state", "closed")


def test_screenshots_desktop_and_phone(pages: Pages) -> None:
    desktop = pages.open("alice", "/rooms/design/")
    connected(desktop)
    desktop.set_viewport_size({"width": 1440, "height": 900})
    expect(desktop.locator("#member-list li.online")).not_to_have_count(0)
    expect(desktop.locator("#sidebar")).to_be_visible()
    expect(desktop.locator("#members")).to_be_visible()
    desktop.screenshot(path=SCREENSHOTS / "room-desktop.png")
    desktop.goto("/rooms/")
    connected(desktop)
    desktop.screenshot(path=SCREENSHOTS / "directory-desktop.png")

    phone_context = pages.context(
        "alice",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone = pages.open("alice", "/rooms/design/", context=phone_context)
    connected(phone)
    expect(phone.locator("#sidebar")).not_to_be_in_viewport()
    expect(phone.locator("#members")).not_to_be_in_viewport()
    phone.screenshot(path=SCREENSHOTS / "room-phone.png")
    phone.get_by_role("button", name="Open the sidebar").first.click()
    expect(phone.locator("#sidebar")).to_be_in_viewport()
    phone.wait_for_timeout(300)  # the drawer's slide-in
    phone.screenshot(path=SCREENSHOTS / "room-phone-sidebar.png")

    signed_out = pages.context().new_page()
    signed_out.goto("/accounts/login/")
    signed_out.screenshot(path=SCREENSHOTS / "sign-in.png")


def test_reconnect_waits_grow_exponentially_with_jitter(pages: Pages) -> None:
    page = pages.open("alice", "/rooms/notes/")
    waits = page.evaluate(
        """async () => {
            const { backoffDelay } = await import("/static/js/connection.js");
            return [0, 1, 2, 3, 4, 5, 6, 10].map(
                (attempt) => [backoffDelay(attempt, () => 0), backoffDelay(attempt, () => 1)]);
        }"""
    )
    # Half of each wait is fixed, half random; the ceiling doubles up to 30 s.
    assert waits == [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [2000, 4000],
        [4000, 8000],
        [8000, 16000],
        [15000, 30000],
        [15000, 30000],
    ]
