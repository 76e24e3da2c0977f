"""Attachments in real Chromium: a picture chosen with the paperclip goes up at once and is sent
with a caption, and the other person sees it load as a thumbnail; a PDF dropped on the room is
sent on its own and arrives as a download link; a disguised program pasted into the composer is
refused with the server's reason, and a file over 10 MB is refused before any upload; a pending
message keeps its file across a reload, and every retry sends the same attachment id.

Room: #lobby (alice, bob and carol). The files are made here: a real PNG (zlib and struct), a
small PDF, and "cat.png" that is a Windows program (`MZ`): tests/files.py.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import TYPE_CHECKING

import pytest

from tests.files import pdf, png, program

from .conftest import SCREENSHOTS, Pages, connected, expect, send
from .test_replies_reactions import HeldSends

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request

pytestmark = pytest.mark.browser

MAX_BYTES = 10 * 1024 * 1024
PENDING = re.compile(r"\bpending\b")


def tag() -> str:
    """A word no other message has, so each test finds its own rows."""
    return uuid.uuid4().hex[:8]


# A DataTransfer holding one file, made in the page (drops and pastes carry one).
TRANSFER = """([name, type, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type }));
    return transfer;
}"""


def transfer_args(name: str, mime: str, data: bytes) -> list[str]:
    return [name, mime, base64.b64encode(data).decode()]


def row_with(page: Page, text: str) -> Locator:
    return page.locator("#messages li.msg").filter(has_text=text)


def uploads_seen(page: Page) -> list[str]:
    """The URL of every upload the page makes from now on."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/attachments"):
            seen.append(request.url)

    page.on("request", on_request)
    return seen


def stored(page: Page, match) -> dict:  # noqa: ANN001 - a predicate on a message
    messages = page.request.get("/api/rooms/lobby/messages?limit=50").json()["messages"]
    return next(m for m in messages if match(m))


def test_a_picture_and_a_dropped_pdf_reach_the_other_person(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/lobby/")
    bob = pages.open("bob", "/rooms/lobby/")
    connected(alice)
    connected(bob)

    # The paperclip's picker: the picture goes up at once and waits over the composer.
    picture = f"sunset-{word}.png"
    alice.locator("#attach-input").set_input_files(
        {"name": picture, "mimeType": "image/png", "buffer": png()}
    )
    chip = alice.locator("#upload-tray .upload")
    expect(chip).to_have_count(1)
    expect(chip).to_have_class(re.compile(r"\bdone\b"))
    expect(chip.locator(".upload-name")).to_have_text(picture)
    expect(chip.locator(".upload-preview img")).to_have_attribute("alt", picture)
    alice.screenshot(path=SCREENSHOTS / "attachments-composer.png")
    caption = f"The view from the office {word}"
    send(alice, caption)
    expect(alice.locator("#upload-tray")).to_be_hidden()
    mine = row_with(alice, caption)
    expect(mine).not_to_have_class(PENDING)
    expect(mine.locator(".attachment-image img")).to_have_attribute("alt", picture)

    # Bob sees the thumbnail, and it really loaded; a click opens the full image in a new tab.
    theirs = row_with(bob, caption)
    expect(theirs.locator(".msg-body")).to_have_text(caption)
    link = theirs.locator("a.attachment-image")
    expect(link).to_have_attribute("target", "_blank")
    image = link.locator("img")
    expect(image).to_have_attribute("alt", picture)
    expect(image).to_have_attribute("loading", "lazy")
    bob.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 200]
    shown = image.bounding_box()
    assert shown and shown["width"] <= 240 and shown["height"] <= 240  # a thumbnail
    frame = link.bounding_box()
    assert frame and frame["width"] <= shown["width"] + 2  # the link is the picture's size
    served = bob.request.get(link.get_attribute("href"))
    assert served.status == 200
    assert served.headers["content-type"].startswith("image/png")
    message = stored(bob, lambda m: m["body"] == caption)
    assert [(a["name"], a["content_type"]) for a in message["attachments"]] == [
        (picture, "image/png")
    ]
    bob.screenshot(path=SCREENSHOTS / "attachments-thumbnail.png")
    # The page as the server renders it carries the files too.
    bob.reload()
    connected(bob)
    expect(row_with(bob, caption).locator(".attachment-image img")).to_have_attribute(
        "alt", picture
    )

    # A PDF dropped on the message list, sent without a word: a download link for bob.
    document = f"minutes-{word}.pdf"
    data = pdf(f"Minutes {word}")
    transfer = alice.evaluate_handle(TRANSFER, transfer_args(document, "application/pdf", data))
    area = alice.locator("#scroller")
    area.dispatch_event("dragenter", {"dataTransfer": transfer})
    hint = alice.locator(".drop-hint")
    expect(hint).to_be_visible()
    expect(hint).to_have_text("Drop files to send to #lobby")
    area.dispatch_event("dragover", {"dataTransfer": transfer})
    area.dispatch_event("drop", {"dataTransfer": transfer})
    expect(hint).to_be_hidden()
    expect(chip).to_have_class(re.compile(r"\bdone\b"))
    expect(chip.locator(".upload-name")).to_have_text(document)
    alice.locator("#composer-input").press("Enter")  # no text: the file alone
    expect(alice.locator("#upload-tray")).to_be_hidden()

    file_link = bob.locator("#messages a.attachment-file").filter(has_text=document)
    expect(file_link).to_have_count(1)
    expect(file_link.locator(".attachment-name")).to_have_text(document)
    size = f"{len(data)} B" if len(data) < 1024 else f"{len(data) / 1024:.1f} KB"
    expect(file_link.locator(".attachment-size")).to_have_text(size)
    expect(file_link).to_have_attribute("download", "")
    downloaded = bob.request.get(file_link.get_attribute("href"))
    assert downloaded.status == 200
    assert downloaded.headers["content-disposition"].startswith("attachment")
    assert downloaded.body() == data
    message = stored(bob, lambda m: [a["name"] for a in m["attachments"]] == [document])
    assert message["body"] == ""
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)


def test_a_disguised_program_and_an_oversized_file_are_refused(pages: Pages) -> None:
    word = tag()
    alice = pages.open("alice", "/rooms/lobby/")
    connected(alice)
    uploads = uploads_seen(alice)
    box = alice.locator("#composer-input")

    # "cat.png" pasted into the composer is a program: the server refuses it, and says why.
    cat = alice.evaluate_handle(TRANSFER, transfer_args("cat.png", "image/png", program()))
    with alice.expect_response(lambda r: r.url.endswith("/attachments")) as answer:
        box.evaluate(
            """(box, transfer) => box.dispatchEvent(new ClipboardEvent("paste", {
                clipboardData: transfer, bubbles: true, cancelable: true,
            }))""",
            cat,
        )
    refusal = answer.value
    assert refusal.status == 415
    assert refusal.json()["error"] == "unsupported_type"
    chip = alice.locator("#upload-tray .upload")
    expect(chip).to_have_class(re.compile(r"\bfailed\b"))
    expect(chip.locator(".upload-name")).to_have_text("cat.png")
    expect(chip.locator(".upload-error")).to_have_text(refusal.json()["detail"])
    expect(chip.locator(".upload-error")).to_be_visible()
    expect(box).to_have_value("")  # a pasted file is not pasted as text
    alice.screenshot(path=SCREENSHOTS / "attachments-refused.png")

    # Just over 10 MB: refused at once, no request made.
    before = len(uploads)
    alice.locator("#attach-input").set_input_files(
        {
            "name": "huge.pdf",
            "mimeType": "application/pdf",
            "buffer": b"%PDF-1.4\n" + b"0" * MAX_BYTES,
        }
    )
    big = chip.filter(has_text="huge.pdf")
    expect(big).to_have_class(re.compile(r"\bfailed\b"))
    expect(big.locator(".upload-error")).to_have_text("A file may have at most 10 MB.")
    assert len(uploads) == before
    big.get_by_role("button", name="Remove huge.pdf").click()
    expect(chip).to_have_count(1)

    # A file removed before sending is forgotten by the server too.
    alice.locator("#attach-input").set_input_files(
        {"name": "dog.png", "mimeType": "image/png", "buffer": png(40, 30)}
    )
    dog = chip.filter(has_text="dog.png")
    expect(dog).to_have_class(re.compile(r"\bdone\b"))
    with alice.expect_response(lambda r: r.request.method == "DELETE") as discarded:
        dog.get_by_role("button", name="Remove dog.png").click()
    assert discarded.value.status == 204
    expect(chip).to_have_count(1)

    # Nothing refused goes with the next message, and an empty composer sends nothing.
    box.press("Enter")
    alice.wait_for_timeout(300)
    expect(alice.locator("#messages li.msg.pending")).to_have_count(0)
    text = f"No cat picture after all {word}"
    send(alice, text)
    expect(row_with(alice, text)).not_to_have_class(PENDING)
    expect(alice.locator("#upload-tray")).to_be_hidden()
    expect(row_with(alice, text).locator(".attachments")).to_have_count(0)
    assert stored(alice, lambda m: m["body"] == text)["attachments"] == []


def test_a_pending_message_keeps_its_file_across_a_reload(pages: Pages) -> None:
    word = tag()
    context = pages.context("bob")
    relay = HeldSends(context)  # bob's sends never reach the server until released
    bob = pages.open("bob", "/rooms/lobby/", context=context)
    connected(bob)
    document = f"agenda-{word}.pdf"
    bob.locator("#attach-input").set_input_files(
        {"name": document, "mimeType": "application/pdf", "buffer": pdf(f"Agenda {word}")}
    )
    expect(bob.locator("#upload-tray .upload")).to_have_class(re.compile(r"\bdone\b"))
    text = f"The agenda for Monday {word}"
    send(bob, text)
    pending = row_with(bob, text).and_(bob.locator(".pending"))
    expect(pending.locator(".attachment-name")).to_have_text(document)

    # The send never arrived: a reload finds it in the outbox, file and all.
    bob.reload()
    connected(bob)
    expect(pending.locator(".attachment-name")).to_have_text(document)
    relay.holding = False
    relay.sockets[-1].close(code=4012, reason="test: reconnect")  # sends again at once
    expect(bob.locator("#messages li.msg.pending")).to_have_count(0)
    expect(row_with(bob, text).locator(".attachment-name")).to_have_text(document)
    sent = [frame for frame in relay.frames if frame["body"] == text]
    assert len(sent) >= 3, sent  # before the reload, after it, after the reconnect
    assert {frame["ref"] for frame in sent} == {sent[0]["ref"]}
    message = stored(bob, lambda m: m["body"] == text)
    assert [a["name"] for a in message["attachments"]] == [document]
    assert all(frame["attachments"] == [message["attachments"][0]["id"]] for frame in sent)
