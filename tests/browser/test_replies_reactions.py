"""Replies and reactions in real Chromium (contract §7): the Reply action and the composer's
"Replying to" bar, quotes that lead back to the original (loading older history when it is far
back), a pending reply that keeps its `reply_to` across a reload, reaction chips toggled from the
picker and from the chips themselves, live in the other person's tab, after a reload too, and the
server's refusal shown as a toast.

Rooms: #random and #announcements (alice and bob), #history (130 seeded messages).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING

import pytest

from .conftest import SCREENSHOTS, LossyRelay, Pages, connected, expect, send

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page, WebSocketRoute

pytestmark = pytest.mark.browser


def tag() -> str:
    """A word no other message has, so each test finds its own rows."""
    return uuid.uuid4().hex[:8]


def row(page: Page, text: str) -> Locator:
    """The message whose body says `text` (a reply's quote may say it too)."""
    return page.locator("#messages li.msg").filter(has=page.locator(".msg-body", has_text=text))


def message_id(page: Page, room: str, body: str) -> int:
    """The id the server gave the message `body` of `room` (among its latest 50)."""
    stored = page.request.get(f"/api/rooms/{room}/messages?limit=50").json()["messages"]
    return next(m["id"] for m in stored if m["body"] == body)


def stored_message(page: Page, room: str, body: str) -> dict:
    stored = page.request.get(f"/api/rooms/{room}/messages?limit=50").json()["messages"]
    return next(m for m in stored if m["body"] == body)


def test_a_reply_quotes_its_original_live_and_leads_back_to_it(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/random/")
    bob = pages.open("bob", "/rooms/random/")
    connected(alice)
    connected(bob)
    original = f"Who brings the cake? {word}"
    send(alice, original)

    theirs = row(bob, original)
    expect(theirs).to_have_count(1)
    theirs.hover()
    theirs.get_by_role("button", name="Reply").click()
    bar = bob.locator("#reply-bar")
    expect(bar).to_be_visible()
    expect(bar).to_have_text(f"Replying to alice: {original}")
    expect(bob.locator("#composer-input")).to_be_focused()
    bob.screenshot(path=SCREENSHOTS / "reply-composer.png")
    # Escape in the composer drops the reply; the × button does too.
    bob.locator("#composer-input").press("Escape")
    expect(bar).to_be_hidden()
    theirs.hover()
    theirs.get_by_role("button", name="Reply").click()
    bar.get_by_role("button", name="Cancel reply (Esc)").click()
    expect(bar).to_be_hidden()
    expect(bob.locator("#composer-input")).to_be_focused()

    # A tall reply: the original ends up out of sight above it.
    theirs.hover()
    theirs.get_by_role("button", name="Reply").click()
    body = f"I do {word}\n" + "\n".join(f"and line {n}" for n in range(40))
    send(bob, body)
    expect(bar).to_be_hidden()
    mine = row(bob, f"I do {word}")
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    expect(mine.locator(".msg-quote")).to_have_text(f"alice{original}")

    reply = row(alice, f"I do {word}")
    quote = reply.locator(".msg-quote")
    expect(quote.locator(".quote-author")).to_have_text("alice")
    expect(quote.locator(".quote-text")).to_have_text(original)
    stored = stored_message(alice, "random", body)
    assert stored["reply_to"]["id"] == message_id(alice, "random", original)
    assert stored["reply_to"]["excerpt"] == original

    # Alice is at the bottom: the original is out of view until she follows the quote.
    first = row(alice, original)
    alice.locator("#scroller").evaluate("node => { node.scrollTop = node.scrollHeight; }")
    expect(first).not_to_be_in_viewport()
    # Dispatched: a real click would scroll the quote (and the original above it) into view.
    quote.dispatch_event("click")
    expect(first).to_have_class(re.compile(r"\bfound\b"))
    expect(first).to_be_in_viewport()
    alice.screenshot(path=SCREENSHOTS / "reply-original-found.png")
    # The highlight is brief.
    expect(first).not_to_have_class(re.compile(r"\bfound\b"))


def test_a_quote_of_an_old_message_loads_history_to_show_it(pages: Pages) -> None:
    word = tag()
    bob = pages.open("bob", "/rooms/history/")
    connected(bob)
    old = bob.locator("#messages li.msg[data-seq='3']")
    # Scroll up until "history 3" (seq 3) is loaded, then reply to it.
    bob.wait_for_function(
        """() => {
            document.getElementById("scroller").scrollTop = 0;
            return document.querySelector("#messages li.msg[data-seq='3']") !== null;
        }""",
        polling=200,
    )
    expect(old.locator(".msg-body")).to_have_text("history 3")
    old.hover()
    old.get_by_role("button", name="Reply").click()
    expect(bob.locator("#reply-bar")).to_have_text("Replying to alice: history 3")
    # No "history" in the body: the search tests count the messages that have that word.
    send(bob, f"Old times! {word}")
    expect(row(bob, f"Old times! {word}").locator(".quote-text")).to_have_text("history 3")

    # Alice opens the room afresh: the server renders the latest page, quote included, and the
    # original lies two pages back.
    alice = pages.open("alice", "/rooms/history/")
    connected(alice)
    reply = row(alice, f"Old times! {word}")
    expect(reply.locator(".msg-quote")).to_have_text("alicehistory 3")
    original = alice.locator("#messages li.msg[data-seq='3']")
    expect(original).to_have_count(0)
    reply.locator(".msg-quote").click()
    expect(original.locator(".msg-body")).to_have_text("history 3")
    expect(original).to_have_class(re.compile(r"\bfound\b"))
    expect(original).to_be_in_viewport()


class HeldSends:
    """A browser context's chat sockets, relayed through Playwright: while `holding`, the page's
    `send` frames never reach the server (as for a message lost on its way); `frames` keeps every
    `send` the page wrote."""

    def __init__(self, context: BrowserContext) -> None:
        self.holding = True
        self.frames: list[dict] = []
        self.sockets: list[WebSocketRoute] = []
        context.route_web_socket(re.compile(r"/ws/chat/$"), self._relay)

    def _relay(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if isinstance(message, str) and '"type":"send"' in message:
                self.frames.append(json.loads(message))
                if self.holding:
                    return
            server.send(message)

        ws.on_message(to_server)
        self.sockets.append(ws)


def test_a_pending_reply_keeps_its_quote_across_a_reload(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/random/")
    context = pages.context("bob")
    relay = HeldSends(context)
    bob = pages.open("bob", "/rooms/random/", context=context)
    connected(alice)
    connected(bob)
    original = f"Anyone for tea? {word}"
    send(alice, original)
    theirs = row(bob, original)
    theirs.hover()
    theirs.get_by_role("button", name="Reply").click()
    send(bob, f"Me, please {word}")
    pending = row(bob, f"Me, please {word}").and_(bob.locator(".pending"))
    expect(pending.locator(".msg-quote")).to_have_text(f"alice{original}")

    # The send never arrived: a reload finds it in the outbox, quote and all.
    bob.reload()
    connected(bob)
    expect(pending.locator(".msg-quote")).to_have_text(f"alice{original}")
    relay.holding = False
    relay.sockets[-1].close(code=4012, reason="test: reconnect")  # sends again at once

    reply = row(alice, f"Me, please {word}")
    expect(reply.locator(".msg-quote")).to_have_text(f"alice{original}")
    expect(bob.locator("#messages li.msg.pending")).to_have_count(0)
    expect(row(bob, f"Me, please {word}")).to_have_count(1)
    replied = message_id(alice, "random", original)
    sent = [frame for frame in relay.frames if frame["body"] == f"Me, please {word}"]
    assert len(sent) >= 3, sent  # before the reload, after it, after the reconnect
    assert {frame["ref"] for frame in sent} == {sent[0]["ref"]}
    assert {frame["reply_to"] for frame in sent} == {replied}
    assert stored_message(alice, "random", f"Me, please {word}")["reply_to"]["id"] == replied


def test_reactions_from_the_picker_and_the_chips_live_and_after_a_reload(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/announcements/")
    bob = pages.open("bob", "/rooms/announcements/")
    connected(alice)
    connected(bob)
    text = f"Shipping the new client today {word}"
    send(alice, text)
    mine, theirs = row(alice, text), row(bob, text)
    expect(theirs).to_have_count(1)
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))

    # The picker, by keyboard: arrows move, Escape closes and gives the focus back.
    mine.hover()
    add = mine.locator(".msg-actions").get_by_role("button", name="Add reaction")
    add.click()
    picker = mine.get_by_role("dialog", name="Add reaction")
    expect(picker).to_be_visible()
    expect(picker.get_by_role("button")).to_have_count(24)
    expect(picker.get_by_role("button", name="thumbs up")).to_be_focused()
    alice.keyboard.press("ArrowRight")
    expect(picker.get_by_role("button", name="thumbs down")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(picker).to_have_count(0)
    expect(add).to_be_focused()
    # A click elsewhere closes it too.
    alice.keyboard.press("Enter")
    expect(picker).to_be_visible()
    alice.locator("#room-title").click()
    expect(picker).to_have_count(0)
    mine.hover()
    add.click()
    expect(picker.get_by_role("button", name="thumbs up")).to_be_focused()
    alice.screenshot(path=SCREENSHOTS / "reaction-picker.png")
    alice.keyboard.press("Enter")
    expect(picker).to_have_count(0)

    chip = mine.locator(".reaction", has_text="👍")
    expect(chip).to_have_text("👍 1")
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(chip).to_have_class(re.compile(r"\bmine\b"))

    # Bob sees it live, and toggles his own with the chip; his row is patched, not rebuilt.
    theirs.evaluate("node => { node.dataset.probe = 'kept'; }")
    chip_b = theirs.locator(".reaction", has_text="👍")
    expect(chip_b).to_have_text("👍 1")
    expect(chip_b).to_have_attribute("title", "alice")
    expect(chip_b).to_have_attribute("aria-pressed", "false")
    chip_b.click()
    expect(chip_b).to_have_text("👍 2")
    expect(chip_b).to_have_attribute("title", "alice, bob")
    expect(chip_b).to_have_attribute("aria-pressed", "true")
    expect(chip_b).to_be_focused()
    expect(chip).to_have_text("👍 2")
    bob.screenshot(path=SCREENSHOTS / "reaction-chips.png")
    expect(chip).to_have_attribute("title", "alice, bob")
    chip_b.click()
    expect(chip_b).to_have_text("👍 1")
    expect(chip_b).to_have_attribute("title", "alice")
    expect(chip_b).to_have_attribute("aria-pressed", "false")
    expect(chip).to_have_text("👍 1")
    expect(theirs).to_have_attribute("data-probe", "kept")

    # Stored: the API and a reloaded page say the same.
    assert stored_message(alice, "announcements", text)["reactions"] == {"👍": ["alice"]}
    bob.reload()
    connected(bob)
    expect(chip_b).to_have_text("👍 1")
    expect(chip_b).to_have_attribute("title", "alice")
    expect(chip_b).to_have_attribute("aria-pressed", "false")
    # What the page adopted from the server's markup still toggles.
    chip_b.click()
    expect(chip_b).to_have_text("👍 2")
    expect(chip).to_have_text("👍 2")
    chip_b.click()
    expect(chip).to_have_text("👍 1")


def test_a_refused_reaction_shows_the_servers_reason(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/announcements/")
    context = pages.context("bob")
    # Bob's tab misses the deletion, so he still sees the message and reacts to it.
    relay = LossyRelay(context, lambda frame: '"message_deleted"' in frame)
    bob = pages.open("bob", "/rooms/announcements/", context=context)
    connected(alice)
    connected(bob)
    text = f"This will be gone {word}"
    send(alice, text)
    expect(row(bob, text)).to_have_count(1)
    gone = message_id(alice, "announcements", text)

    relay.dropping = True
    mine = row(alice, text)
    mine.hover()
    mine.get_by_role("button", name="Delete message").click()
    mine.get_by_role("button", name="Delete", exact=True).click()
    expect(mine).to_have_count(0)

    theirs = row(bob, text)
    theirs.hover()
    theirs.get_by_role("button", name="Add reaction").click()
    theirs.get_by_role("dialog", name="Add reaction").get_by_role("button", name="fire").click()
    expect(bob.locator("#toasts .toast")).to_contain_text(f"No message {gone}.")
    expect(theirs.locator(".reaction")).to_have_count(0)


def test_chips_count_everyone_when_the_server_lists_only_the_first_100(pages: Pages) -> None:
    page = pages.open("bob", "/rooms/announcements/")
    connected(page)
    # The module itself, beside chat.js: 150 reacted, the server named 100 of them.
    seen = page.evaluate(
        """async () => {
            const src = document.querySelector("script[type=module]").src;
            const { applyReaction, Reactions } = await import(new URL("reactions.js", src));
            const names = Array.from({ length: 100 }, (_, i) => `user${i}`);
            const message = { reactions: { "👍": names }, reactionCounts: { "👍": 150 } };
            const view = { me: "user1", current: null, canAct: () => true };
            const chip = Reactions.prototype.chip("👍");
            const show = () => {
                Reactions.prototype.fillChip.call(view, chip, message, "👍", true);
                return [chip.textContent, chip.title.split(", ").length, chip.title.slice(-11),
                        chip.getAttribute("aria-pressed")];
            };
            const seen = [show()];
            seen.push(applyReaction(message, "👍", "zed", true), show());  // not listed: 151
            seen.push(applyReaction(message, "👍", "user1", false), show());  // listed: 150
            seen.push(applyReaction(message, "👍", "ghost", false), show());  // unlisted: 149
            seen.push(applyReaction(message, "👍", "user2", true));  // twice: nothing
            return [...seen, Object.keys(message.reactionCounts)];
        }"""
    )
    assert seen == [
        ["👍 150", 100, "and 50 more", "true"],
        True,
        ["👍 151", 100, "and 51 more", "true"],
        True,
        ["👍 150", 99, "and 51 more", "false"],
        True,
        ["👍 149", 99, "and 50 more", "false"],
        False,
        ["👍"],
    ]
