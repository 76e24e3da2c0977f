"""Mentions and desktop notifications in real Chromium: the composer's "@name" list (keyboard,
filtering, `@room` for owners only), names marked in bodies and the messages that mention the
viewer, the sidebar's "@N" pill until the room is read, and notifications while the tab is hidden
(a mention, a direct message; never a plain message), asked for only from the sidebar's control.

Rooms: #lobby (alice owns it; bob and carol are members), #random (alice and bob).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import pytest

from .conftest import SCREENSHOTS, Pages, Server, connected, expect, send

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

PENDING = re.compile(r"\bpending\b")
MENTIONED = re.compile(r"\bmentioned\b")

# Before any script of the page: `Notification` records what would be shown (the permission reads
# "default" until the page asks, then the browser's, granted by the test), and `document.hidden`
# follows `setHidden`, which also fires `visibilitychange`, as a tab put in the background does.
NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  let asked = false;
  window.shown = [];
  window.permissionAsks = 0;
  class Recorded {
    constructor(title, options = {}) {
      Object.assign(this, { title, body: options.body, tag: options.tag, closed: false });
      window.shown.push(this);
    }
    close() { this.closed = true; }
    static get permission() { return asked ? Real.permission : "default"; }
    static requestPermission(callback) {
      asked = true;
      window.permissionAsks += 1;
      return Real.requestPermission(callback);
    }
  }
  window.Notification = Recorded;
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (hidden ? "hidden" : "visible"),
  });
  window.setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


def tag() -> str:
    """A word no other message has, so each test finds its own rows."""
    return uuid.uuid4().hex[:8]


def row(page: Page, text: str) -> Locator:
    return page.locator("#messages li.msg").filter(has=page.locator(".msg-body", has_text=text))


def options(page: Page) -> Locator:
    return page.locator("#mention-list [role=option] .mention-name")


def stored_message(page: Page, room: str, body: str) -> dict:
    stored = page.request.get(f"/api/rooms/{room}/messages?limit=50").json()["messages"]
    return next(m for m in stored if m["body"] == body)


def leave_lobby_read(page: Page) -> None:
    """On #lobby (so nothing in it is unread), move to #random in place."""
    connected(page)
    page.locator("#room-nav a[data-room=random]").click()
    expect(page.locator("#room-title")).to_have_text("random")
    expect(page.locator("#room-nav a[data-room=lobby] .badge")).to_be_hidden()


def test_a_mention_is_picked_by_keyboard_marked_and_counted_until_read(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/lobby/")
    leave_lobby_read(alice)
    lobby = alice.locator("#room-nav a[data-room=lobby]")
    expect(lobby.locator(".mention-badge")).to_have_count(0)
    # Another tab of hers, also elsewhere: it hears the mention, and learns of her reading.
    other = pages.open("alice", "/rooms/random/", context=alice.context)
    connected(other)
    other_pill = other.locator("#room-nav a[data-room=lobby] .mention-badge")

    bob = pages.open("bob", "/rooms/lobby/")
    connected(bob)
    box = bob.locator("#composer-input")
    box.press_sequentially("Lunch? @")
    listbox = bob.get_by_role("listbox", name="People to mention")
    expect(listbox).to_be_visible()
    expect(options(bob).first).to_have_text("@alice")
    expect(bob.locator("#mention-list [data-name=bob]")).to_have_count(0)  # never oneself
    expect(bob.locator("#mention-list [data-name=room]")).to_have_count(0)  # a plain member
    active = bob.locator("#mention-list [aria-selected=true]")
    expect(active).to_have_text("@alice")
    expect(box).to_have_attribute("aria-activedescendant", "mention-option-0")
    bob.keyboard.press("ArrowDown")
    expect(active).to_have_text("@carol")
    expect(box).to_have_attribute("aria-activedescendant", "mention-option-1")
    bob.keyboard.press("ArrowUp")
    expect(active).to_have_text("@alice")
    bob.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("Lunch? @")
    box.press_sequentially("al")
    expect(options(bob)).to_have_text(["@alice"])
    bob.screenshot(path=SCREENSHOTS / "mention-autocomplete.png")
    bob.keyboard.press("Enter")  # picks the name; does not send
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("Lunch? @alice ")
    box.press_sequentially(f"the usual place {word}")
    box.press("Enter")
    body = f"Lunch? @alice the usual place {word}"
    mine = row(bob, word)
    expect(mine).not_to_have_class(PENDING)
    expect(mine.locator(".msg-body")).to_have_text(body)
    expect(mine.locator(".mention")).to_have_text("@alice")
    expect(mine).not_to_have_class(MENTIONED)
    assert stored_message(bob, "lobby", body)["mentions"] == ["alice"]

    # Alice is in #random: #lobby counts one unread mention beside its unread count.
    pill = lobby.locator(".mention-badge")
    expect(pill).to_have_text("@1")
    expect(pill).to_have_attribute("aria-label", "1 unread mention")
    expect(lobby.locator(".badge")).to_be_visible()
    expect(other_pill).to_have_text("@1")
    alice.screenshot(path=SCREENSHOTS / "mention-badge.png")
    lobby.click()
    theirs = row(alice, word)
    expect(theirs).to_have_class(MENTIONED)
    expect(theirs.locator(".mention.me")).to_have_text("@alice")
    expect(theirs.locator(".msg-body")).to_have_text(body)
    expect(pill).to_have_count(0)
    expect(lobby.locator(".badge")).to_be_hidden()
    expect(other_pill).to_have_count(0)  # the `unread` event
    alice.screenshot(path=SCREENSHOTS / "mention-highlight.png")

    # Read on the server too: a new page's `hello` counts no mention.
    again = pages.open("alice", "/rooms/random/")
    connected(again)
    expect(again.locator("#room-nav a[data-room=lobby] .mention-badge")).to_have_count(0)


def test_a_hidden_tab_notifies_mentions_and_direct_messages_only(
    pages: Pages, server: Server
) -> None:
    word = tag()
    context = pages.context("alice")
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(NOTIFICATIONS)
    alice = pages.open("alice", "/rooms/lobby/", context=context)
    leave_lobby_read(alice)
    bob = pages.open("bob", "/rooms/lobby/")
    connected(bob)

    # Nothing is asked on page load: only the control asks, and it goes once answered.
    enable = alice.get_by_role("button", name="Enable desktop notifications")
    expect(enable).to_be_visible()
    assert alice.evaluate("window.permissionAsks") == 0
    enable.click()
    expect(enable).to_be_hidden()
    assert alice.evaluate("window.permissionAsks") == 1
    alice.evaluate("setHidden(true)")

    mention = f"@alice can you review the badge colours? {word}"
    send(bob, mention)
    alice.wait_for_function("() => window.shown.length === 1")
    lobby = alice.locator("#room-nav a[data-room=lobby]")
    expect(lobby.locator(".mention-badge")).to_have_text("@1")
    seen = "window.shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag }))"
    assert alice.evaluate(seen) == [
        {"title": "bob in #lobby", "body": mention, "tag": "chat-room:lobby"}
    ]

    # A plain message counts as unread, and notifies no one.
    unread = int(lobby.locator(".badge").inner_text())
    send(bob, f"Nothing for anyone in particular {word}")
    expect(lobby.locator(".badge")).to_have_text(str(unread + 1))
    expect(lobby.locator(".mention-badge")).to_have_text("@1")
    assert alice.evaluate("window.shown.length") == 1
    # A page opened now learns of the unread mention from `hello`.
    fresh = pages.open("alice", "/rooms/random/")
    expect(fresh.locator("#room-nav a[data-room=lobby] .mention-badge")).to_have_text("@1")
    fresh.close()

    # A direct message notifies without a mention.
    bob.locator("#member-list button[data-user=alice]").click()
    expect(bob.locator("#room-title")).to_have_text("alice")
    send(bob, f"psst, a word in private {word}")
    alice.wait_for_function("() => window.shown.length === 2")
    direct = alice.evaluate(seen)[1]
    assert direct["title"] == "bob (direct message)"
    assert direct["body"] == f"psst, a word in private {word}"
    assert re.fullmatch(r"chat-room:dm-\d+-\d+", direct["tag"]), direct

    # A click on it brings the tab to that conversation.
    alice.evaluate("window.shown[1].onclick(new Event('click'))")
    expect(alice.locator("#room-title")).to_have_text("bob")
    expect(alice).to_have_url(re.compile(r"/rooms/dm-\d+-\d+/$"))
    expect(row(alice, f"psst, a word in private {word}")).to_have_count(1)
    assert alice.evaluate("window.shown[1].closed") is True


def test_only_owners_are_offered_room_and_it_mentions_everyone(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/lobby/")  # alice made #lobby: its owner
    bob = pages.open("bob", "/rooms/lobby/")
    connected(alice)
    connected(bob)

    # A plain member is not offered @room; written anyway, it mentions no one.
    box = bob.locator("#composer-input")
    box.press_sequentially("@ro")
    expect(bob.locator("#mention-list")).to_be_hidden()
    box.fill("")
    plain = f"@room is anyone there? {word}"
    send(bob, plain)
    expect(row(bob, plain)).not_to_have_class(PENDING)
    assert stored_message(bob, "lobby", plain)["mentions"] == []
    expect(row(alice, plain).locator(".mention")).to_have_count(0)
    expect(row(alice, plain)).not_to_have_class(MENTIONED)

    owner_box = alice.locator("#composer-input")
    owner_box.press_sequentially("@ro")
    expect(options(alice)).to_have_text(["@room"])
    expect(alice.locator("#mention-list .mention-hint")).to_have_text("everyone in the room")
    alice.keyboard.press("Tab")
    expect(owner_box).to_have_value("@room ")
    owner_box.press_sequentially(f"stand-up in five minutes {word}")
    owner_box.press("Enter")
    announced = f"@room stand-up in five minutes {word}"

    theirs = row(bob, announced)
    expect(theirs).to_have_class(MENTIONED)
    expect(theirs.locator(".mention.me")).to_have_text("@room")
    expect(row(alice, announced)).not_to_have_class(MENTIONED)
    assert stored_message(alice, "lobby", announced)["mentions"] == ["room"]

    # The page as the server renders it (adopted by the script) marks it too.
    carol = pages.open("carol", "/rooms/lobby/")
    connected(carol)
    expect(row(carol, announced)).to_have_class(MENTIONED)
    expect(row(carol, plain)).not_to_have_class(MENTIONED)


def test_names_are_marked_as_text_where_the_server_found_them(pages: Pages) -> None:
    page = pages.open("carol", "/rooms/lobby/")
    connected(page)
    # The module itself, beside chat.js: what a body becomes, node by node.
    marked = page.evaluate(
        """async () => {
            const src = document.querySelector("script[type=module]").src;
            const { linkify } = await import(new URL("dom.js", src));
            const { markMentions, mentions } = await import(new URL("mentions.js", src));
            const show = (body, names) => {
                const box = document.createElement("div");
                box.append(markMentions(linkify(body), names, "carol"));
                box.normalize(); // linkify may leave empty text nodes
                return [...box.childNodes].map((node) =>
                    node.nodeType === Node.TEXT_NODE
                        ? node.data
                        : `[${node.className || node.tagName}:${node.textContent}]`);
            };
            return [
                show("thanks @Alice. and @carol!", ["alice", "carol"]),
                show("mail alice@example.com or @bob", ["bob"]),
                show("<b>@carol</b> see https://x.test/@carol", ["carol"]),
                show("@alice-team is not @alice", ["alice"]),
                show("@room: stand-up", ["room"]),
                show("@bob wrote to @alice", []),
                mentions({ author: "bob", mentions: ["room"] }, "carol"),
                mentions({ author: "carol", mentions: ["carol"] }, "carol"),
                mentions({ author: "bob", mentions: ["alice"] }, "carol"),
            ];
        }"""
    )
    assert marked == [
        ["thanks ", "[mention:@Alice]", ". and ", "[mention me:@carol]", "!"],
        ["mail alice@example.com or ", "[mention:@bob]"],
        ["<b>", "[mention me:@carol]", "</b> see ", "[A:https://x.test/@carol]"],
        ["@alice-team is not ", "[mention:@alice]"],
        ["[mention me:@room]", ": stand-up"],
        ["@bob wrote to @alice"],
        True,
        False,
        False,
    ]
