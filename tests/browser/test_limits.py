"""The chat page in real Chromium against the limits of contract §4: a room of the longest
messages (whose `history` pages are cut to 1 MiB) loads, scrolls back and resumes; a socket
refused for too many open tabs says so and does not retry by itself."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .conftest import LossyRelay, Pages, bodies, connected, expect

if TYPE_CHECKING:
    from playwright.sync_api import WebSocketRoute

pytestmark = pytest.mark.browser

EMOJI = "😀" * 3996


def numbers(page) -> list[int]:  # noqa: ANN001 - a Playwright page
    return [int(body[:3]) for body in bodies(page)]


def test_a_room_of_the_longest_messages_loads_scrolls_back_and_resumes(pages: Pages) -> None:
    # Bob wrote them all, so he has nothing unread: his page opens at the newest message.
    context = pages.context("bob")
    # Bob's socket can lose new messages and be cut: he must then resume by seq.
    relay = LossyRelay(context, lambda frame: '"type":"message"' in frame)
    bob = pages.open("bob", "/rooms/emoji/", context=context)
    connected(bob)
    expect(bob.locator("#messages li.msg").last).to_contain_text("130 😀")
    # Scrolling up (the wheel, as a person does) loads the page before, to the first message.
    bob.locator("#scroller").hover()
    for _ in range(60):
        bob.mouse.wheel(0, -20_000)
        bob.wait_for_timeout(250)
        if numbers(bob)[0] == 1:
            break
    assert numbers(bob) == list(range(1, 131))

    # Alice writes two more while bob's socket loses them; his socket drops, his page
    # reconnects and resumes after the last seq it holds.
    alice = pages.open("alice", "/rooms/emoji/")
    connected(alice)
    relay.dropping = True
    for n in (131, 132):
        box = alice.locator("#composer-input")
        box.fill(f"{n} {EMOJI}")
        box.press("Enter")
    expect(alice.locator("#messages li.msg").last).to_contain_text("132 😀")
    bob.wait_for_timeout(300)
    assert numbers(bob)[-1] == 130
    relay.dropping = False
    relay.cut()
    expect(bob.locator("#messages li.msg").last).to_contain_text("132 😀")
    assert numbers(bob) == list(range(1, 133))
    expect(bob.locator(".toast")).to_have_count(0)


def test_a_page_opening_at_its_first_unread_message_loads_the_page_before(pages: Pages) -> None:
    # Carol has all 130 unread: the page opens at the oldest message it holds, at the very
    # top, where scrolling up moves nothing; the page before loads all the same.
    carol = pages.open("carol", "/rooms/emoji/")
    connected(carol)
    # The page rendered by the server held 50; the one before makes 100, and the view stays.
    expect(carol.locator("#messages li.msg")).to_have_count(100)
    held = numbers(carol)
    assert held == list(range(held[0], held[0] + 100))


def test_too_many_open_tabs_is_said_and_not_retried(pages: Pages) -> None:
    context = pages.context("alice")
    attempts: list[WebSocketRoute] = []

    def refuse(ws: WebSocketRoute) -> None:
        # What a worker does to a user's 33rd socket: accept it, then close it before `hello`.
        attempts.append(ws)
        ws.close(code=4029, reason="")

    context.route_web_socket(re.compile(r"/ws/chat/$"), refuse)
    page = pages.open("alice", "/rooms/lobby/", context=context)
    banner = page.locator("#conn-banner")
    expect(banner).to_contain_text("Too many open tabs")
    expect(page.locator("#conn-dot")).to_have_attribute("data-state", "closed")
    page.wait_for_timeout(3000)
    assert len(attempts) == 1, "the page retried by itself"
    # The person closes other tabs and asks for another try.
    banner.get_by_role("button", name="Try again").click()
    page.wait_for_timeout(1000)
    assert len(attempts) == 2
