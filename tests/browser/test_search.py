"""Message search in real Chromium: the sidebar's field and its results panel (`GET /api/search`),
a result opened at its message however far back it lies, rooms one may not see left out,
"More results", the room-only option, and the empty, error and loading states."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlparse

import pytest

from .conftest import SCREENSHOTS, Pages, connected, expect, send

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request

pytestmark = pytest.mark.browser

FOUND = re.compile(r"\bfound\b")
MARKUP = 'The quokka <b>census</b> <img src=x onerror="window.pwned = 1"> is in'


def search(page: Page, query: str) -> None:
    """Type into the field and search at once (Enter), as a person in a hurry does."""
    field = page.locator("#search-input")
    field.fill(query)
    field.press("Enter")


def hits(page: Page) -> Locator:
    return page.locator("#search-results a.search-hit")


def searches(page: Page) -> list[dict[str, str]]:
    """The query string of every search request the page makes from now on."""
    asked: list[dict[str, str]] = []

    def seen(request: Request) -> None:
        url = urlparse(request.url)
        if url.path == "/api/search":
            asked.append(dict(parse_qsl(url.query)))

    page.on("request", seen)
    return asked


def test_an_old_message_is_found_and_opened_in_its_room(pages: Pages) -> None:
    bob = pages.open("bob", "/rooms/announcements/")
    connected(bob)
    asked = searches(bob)

    bob.locator("#scroller").click()  # nothing being typed: "/" goes to the search field
    bob.keyboard.press("/")
    field = bob.locator("#search-input")
    expect(field).to_be_focused()
    # Typing waits for a pause: one request for the whole query, not one per key.
    field.press_sequentially("history 5", delay=40)
    expect(hits(bob)).to_have_count(1)
    assert asked == [{"q": "history 5"}]

    hit = hits(bob).first
    expect(hit.locator(".search-room")).to_have_text("#history")
    expect(hit.locator(".search-author")).to_have_text("alice")
    expect(hit.locator(".search-body")).to_have_text("history 5")
    expect(hit.locator(".search-body mark")).to_have_text(["history", "5"])
    expect(bob.locator("#search-summary")).to_have_text("1 message for “history 5”")
    bob.screenshot(path=SCREENSHOTS / "search-desktop.png")

    # Seq 5 of 130: the room opens without a reload and loads older pages until it is there.
    bob.evaluate("window.sameDocument = true")
    hit.click()
    expect(bob).to_have_url(re.compile(r"/rooms/history/$"))
    expect(bob.locator("#search-panel")).to_be_hidden()
    expect(bob.locator("#room-title")).to_have_text("history")
    found = bob.locator('#messages li.msg[data-seq="5"]')
    expect(found).to_have_class(FOUND)
    expect(found.locator(".msg-body")).to_have_text("history 5")
    expect(found).to_be_in_viewport()
    assert bob.evaluate("window.sameDocument") is True
    bob.screenshot(path=SCREENSHOTS / "search-found.png")
    # … for a moment only.
    expect(found).not_to_have_class(FOUND, timeout=6_000)
    expect(found).to_be_in_viewport()


def test_a_result_in_a_room_one_has_not_joined_opens_its_page_at_the_message(
    pages: Pages,
) -> None:
    carol = pages.open("carol", "/rooms/lobby/")
    connected(carol)
    search(carol, "history 9")
    expect(hits(carol)).to_have_count(1)
    hits(carol).first.click()
    # Carol previews #history (a public room she has not joined): its page loads, then scrolls.
    expect(carol).to_have_url(re.compile(r"/rooms/history/$"))
    expect(carol.locator("#join-bar")).to_be_visible()
    found = carol.locator('#messages li.msg[data-seq="9"]')
    expect(found).to_have_class(FOUND)
    expect(found.locator(".msg-body")).to_have_text("history 9")
    expect(found).to_be_in_viewport()


def test_words_of_a_private_room_are_not_found_by_outsiders(pages: Pages) -> None:
    alice = pages.open("alice", "/rooms/staff/")
    connected(alice)
    send(alice, "The zanzibarquill budget stays between us")
    mine = alice.locator("#messages li.msg", has_text="zanzibarquill")
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    search(alice, "zanzibarquill")
    expect(hits(alice)).to_have_count(1)
    expect(hits(alice).first.locator(".search-room")).to_have_text("#staff")

    bob = pages.open("bob", "/rooms/lobby/")
    connected(bob)
    search(bob, "zanzibarquill")
    expect(bob.locator("#search-summary")).to_have_text("No messages match “zanzibarquill”")
    expect(bob.locator("#search-note")).to_have_text("Try other words.")
    expect(hits(bob)).to_have_count(0)
    assert "zanzibarquill budget" not in bob.content()
    # Nor by asking the server directly, for that room or any.
    assert bob.request.get("/api/search?q=zanzibarquill").json() == {
        "results": [],
        "has_more": False,
    }
    assert bob.request.get("/api/search?q=zanzibarquill&room=staff").status == 403


def test_more_results_pages_back_through_the_room(pages: Pages) -> None:
    bob = pages.open("bob", "/rooms/history/")
    connected(bob)
    asked = searches(bob)
    search(bob, "history")
    expect(bob.locator("#search-scope")).to_contain_text("Only in #history")
    bob.locator("#search-room-only").check()
    expect(hits(bob)).to_have_count(20)
    expect(bob.locator("#search-summary")).to_have_text("20+ messages for “history” in #history")
    bodies = bob.locator("#search-results .search-body")
    expect(bodies).to_have_text([f"history {n}" for n in range(130, 110, -1)])

    more = bob.get_by_role("button", name="More results")
    for shown in (40, 60, 80, 100, 120, 130):
        more.click()
        expect(hits(bob)).to_have_count(shown)
    expect(more).to_be_hidden()
    expect(bob.locator("#search-summary")).to_have_text("130 messages for “history” in #history")
    expect(bodies).to_have_text([f"history {n}" for n in range(130, 0, -1)])

    # Every page went on from the last result's id (`before`), in the room only.
    first, scoped, *pages_after = asked
    assert "before" not in first and "before" not in scoped and "room" not in first
    page = bob.request.get("/api/search?q=history&room=history").json()
    ids = []
    while page["has_more"]:
        ids.append(page["results"][-1]["message"]["id"])
        page = bob.request.get(f"/api/search?q=history&room=history&before={ids[-1]}").json()
    assert [query.get("before") for query in pages_after] == [str(i) for i in ids]
    assert {query.get("room") for query in [scoped, *pages_after]} == {"history"}


def test_only_this_room_and_text_that_is_never_markup(pages: Pages) -> None:
    bob = pages.open("bob", "/rooms/announcements/")
    connected(bob)
    send(bob, MARKUP)
    expect(bob.locator("#messages li.msg.pending")).to_have_count(0)

    bob.goto("/rooms/lobby/")
    connected(bob)
    search(bob, "quokka census")
    expect(hits(bob)).to_have_count(1)
    body = hits(bob).first.locator(".search-body")
    expect(body).to_have_text(MARKUP)
    expect(body.locator("mark")).to_have_text(["quokka", "census"])
    assert bob.locator("#search-panel b, #search-panel img").count() == 0
    assert bob.evaluate("window.pwned") is None

    bob.locator("#search-room-only").check()
    none = "No messages match “quokka census” in #lobby"
    expect(bob.locator("#search-summary")).to_have_text(none)
    expect(hits(bob)).to_have_count(0)
    bob.get_by_role("button", name="Search every room").click()
    expect(hits(bob)).to_have_count(1)
    expect(bob.locator("#search-room-only")).not_to_be_checked()
    expect(hits(bob).first.locator(".search-room")).to_have_text("#announcements")


def test_no_results_errors_loading_and_escape(pages: Pages) -> None:
    bob = pages.open("bob", "/rooms/lobby/")
    connected(bob)
    field = bob.locator("#search-input")
    # Writing in the composer, "/" is a character like any other.
    composer = bob.locator("#composer-input")
    composer.fill("a/b")
    composer.press("End")
    composer.press("/")
    expect(composer).to_have_value("a/b/")
    expect(field).not_to_be_focused()
    composer.fill("")
    bob.keyboard.press("Control+k")
    expect(field).to_be_focused()

    search(bob, "qwxzyvnothing")
    expect(bob.locator("#search-summary")).to_have_text("No messages match “qwxzyvnothing”")
    field.press("Escape")
    expect(bob.locator("#search-panel")).to_be_hidden()
    expect(field).to_have_value("qwxzyvnothing")
    expect(field).to_be_focused()

    # The server's own words for a query it refuses.
    search(bob, "x" * 201)
    expect(bob.locator("#search-note")).to_contain_text("A search may have at most 200 characters.")
    expect(bob.locator("#search-note")).to_have_attribute("role", "alert")

    # Loading: hold the answer back, then let it through.
    bob.evaluate(
        """() => {
            const real = window.fetch;
            window.fetch = (...args) => new Promise((resolve) => {
                window.release = () => resolve(real(...args));
            });
        }"""
    )
    search(bob, "history 12")
    expect(bob.locator("#search-summary")).to_have_text("Searching…")
    expect(bob.locator("#search-results")).to_have_attribute("aria-busy", "true")
    bob.evaluate("window.release()")
    expect(hits(bob)).to_have_count(1)
    expect(bob.locator("#search-summary")).to_have_text("1 message for “history 12”")

    # A click outside closes the results; focusing the field again shows them.
    box = bob.locator("#scroller").bounding_box()
    assert box is not None
    bob.mouse.click(box["x"] + box["width"] - 30, box["y"] + 30)  # right of the panel
    expect(bob.locator("#search-panel")).to_be_hidden()
    field.focus()
    expect(hits(bob)).to_have_count(1)
    bob.keyboard.press("Escape")
    expect(bob.locator("#search-panel")).to_be_hidden()


def test_on_a_phone_the_results_sit_in_the_drawer(pages: Pages) -> None:
    context = pages.context(
        "bob",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone = pages.open("bob", "/rooms/lobby/", context=context)
    connected(phone)
    phone.get_by_role("button", name="Open the sidebar").first.click()
    expect(phone.locator("#sidebar")).to_be_in_viewport()
    search(phone, "history 17")
    expect(hits(phone)).to_have_count(1)
    expect(hits(phone).first).to_be_in_viewport()
    phone.wait_for_timeout(300)  # the drawer's slide-in
    phone.screenshot(path=SCREENSHOTS / "search-phone.png")
    hits(phone).first.tap()
    expect(phone.locator("#sidebar")).not_to_be_in_viewport()
    found = phone.locator('#messages li.msg[data-seq="17"]')
    expect(found).to_have_class(FOUND)
    expect(found).to_be_in_viewport()
