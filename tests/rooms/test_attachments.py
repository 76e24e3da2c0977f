"""Attachments: uploaded by a member, checked by their content, sent with a message, served
only to those who may see the room, and gone with their message."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from rooms import attachments, moderation, services
from rooms.models import Attachment, Room
from tests.files import pdf, png, program

PDF = pdf("plan")
EXE = program()


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def client_for(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def upload(client: Client, room: Room, name: str, content: bytes) -> Any:
    return client.post(
        f"/api/rooms/{room.slug}/attachments", {"file": SimpleUploadedFile(name, content)}
    )


def test_a_member_uploads_an_image_that_members_see_inline(public_room, alice, bob, carol):
    answer = upload(client_for(alice), public_room, "red dot.png", png())
    assert answer.status_code == 201
    body = answer.json()
    assert body == {
        "id": body["id"],
        "name": "red dot.png",
        "size": len(png()),
        "content_type": "image/png",
        "url": f"/attachments/{body['id']}/red%20dot.png",
    }
    sent = services.post_message(
        author=alice, room=public_room, body="look", attachments=[body["id"]]
    ).message
    (payload,) = services.history(user=bob, room=public_room).messages
    assert payload["attachments"] == [body]
    assert payload["id"] == sent.pk
    shown = client_for(bob).get(body["url"])
    assert shown.status_code == 200
    assert b"".join(shown.streaming_content) == png()
    assert shown["Content-Type"] == "image/png"
    assert shown["Content-Disposition"].startswith("inline")
    assert shown["X-Content-Type-Options"] == "nosniff"
    # carol has not joined #lobby, but may see a public room: she sees its files too.
    assert client_for(carol).get(body["url"]).status_code == 200
    assert Client().get(body["url"]).status_code == 403


def test_files_of_a_private_room_are_for_its_members(private_room, alice, bob, carol):
    attachment = upload(client_for(alice), private_room, "plan.pdf", PDF).json()
    services.post_message(author=alice, room=private_room, body="", attachments=[attachment["id"]])
    assert client_for(carol).get(attachment["url"]).status_code == 403
    download = client_for(bob).get(attachment["url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="plan.pdf"'
    moderation.moderate(actor=alice, room=private_room, target=bob, action="kick")
    assert client_for(bob).get(attachment["url"]).status_code == 403


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("cat.png", EXE, 415, "unsupported_type"),
        ("notes.txt", b"\x7fELF\x02\x01\x01" + b"\0" * 64, 415, "unsupported_type"),
        ("archive.zip", b"PK\x03\x04" + b"\0" * 64, 415, "unsupported_type"),
        ("bytes.bin", b"\xff\xfe\0\0 binary", 415, "unsupported_type"),
        ("huge.png", png() + b"\0" * (10 * 1024 * 1024), 413, "too_large"),
    ],
)
def test_what_cannot_be_attached(public_room, alice, name, content, status, code):
    answer = upload(client_for(alice), public_room, name, content)
    assert answer.status_code == status
    assert answer.json()["error"] == code and answer.json()["detail"]
    assert not Attachment.objects.exists()


def test_text_is_a_document_and_names_are_cleaned(public_room, alice):
    client = client_for(alice)
    notes = upload(client, public_room, "../../etc/notes.csv", b"a,b\n1,2\n").json()
    assert (notes["name"], notes["content_type"]) == ("notes.csv", "text/csv")
    served = client.get(notes["url"])
    assert served["Content-Type"] == "text/csv; charset=utf-8"
    assert served["Content-Disposition"].startswith("attachment")
    # A PNG named like a program is still a PNG: what it is comes from its content.
    assert upload(client, public_room, "setup.exe", png()).json()["content_type"] == "image/png"


def test_who_may_upload(public_room, private_room, alice, bob, carol):
    assert upload(client_for(carol), private_room, "x.png", png()).status_code == 403
    assert upload(client_for(carol), public_room, "x.png", png()).status_code == 403  # join first
    assert upload(client_for(alice), Room(slug="nowhere"), "x.png", png()).status_code == 404
    assert Client().post("/api/rooms/lobby/attachments").status_code == 403
    assert client_for(alice).post("/api/rooms/lobby/attachments").status_code == 400
    moderation.moderate(actor=alice, room=public_room, target=bob, action="ban")
    assert upload(client_for(bob), public_room, "x.png", png()).status_code == 403
    strict = client_for(alice, enforce_csrf_checks=True)
    assert upload(strict, public_room, "x.png", png()).status_code == 403  # no CSRF token


def test_unsent_uploads_are_capped_and_may_be_discarded(
    public_room, alice, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setitem(attachments.LIMITS, "UNSENT_ATTACHMENTS", 2)
    client = client_for(alice)
    first = upload(client, public_room, "1.png", png()).json()
    upload(client, public_room, "2.png", png())
    refused = upload(client, public_room, "3.png", png())
    assert (refused.status_code, refused.json()["error"]) == (429, "rate_limited")
    path = Attachment.objects.get(pk=first["id"]).file.name
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/attachments/{first['id']}").status_code == 204
    assert not default_storage.exists(path)
    assert client.delete(f"/api/attachments/{first['id']}").status_code == 404
    assert upload(client, public_room, "3.png", png()).status_code == 201


def test_send_claims_the_senders_own_unsent_uploads(public_room, alice, bob):
    mine = upload(client_for(alice), public_room, "a.png", png()).json()["id"]
    theirs = upload(client_for(bob), public_room, "b.png", png()).json()["id"]
    with pytest.raises(services.AttachmentNotFound):
        services.post_message(author=alice, room=public_room, body="x", attachments=[theirs])
    with pytest.raises(services.EmptyBody):
        services.post_message(author=alice, room=public_room, body=" ")
    first = services.post_message(
        author=alice, room=public_room, body="", ref="r1", attachments=[mine]
    )
    # A retry of the same ref is answered with the first message; another send may not reuse it.
    again = services.post_message(
        author=alice, room=public_room, body="", ref="r1", attachments=[mine]
    )
    assert (again.created, again.message.pk) == (False, first.message.pk)
    with pytest.raises(services.AttachmentNotFound):
        services.post_message(author=alice, room=public_room, body="again", attachments=[mine])
    assert public_room.last_seq == 1  # nothing refused took a seq


def test_a_deleted_message_takes_its_files(
    public_room, alice, bob, django_capture_on_commit_callbacks
):
    attachment = upload(client_for(alice), public_room, "a.png", png()).json()
    path = Attachment.objects.get(pk=attachment["id"]).file.name
    message = services.post_message(
        author=alice, room=public_room, body="oops", attachments=[attachment["id"]]
    ).message
    assert default_storage.exists(path)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_message(user=alice, message_id=message.pk)
    assert services.history(user=bob, room=public_room).messages[0]["attachments"] == []
    assert client_for(bob).get(attachment["url"]).status_code == 404
    assert not default_storage.exists(path)


def test_behind_nginx_the_file_is_sent_by_nginx(public_room, alice, settings):
    settings.ATTACHMENT_ACCEL_PREFIX = "/protected-media/"
    attachment = upload(client_for(alice), public_room, "a.png", png()).json()
    served = client_for(alice).get(attachment["url"])
    stored = Attachment.objects.get(pk=attachment["id"]).file.name
    assert served["X-Accel-Redirect"] == f"/protected-media/{stored}"
    assert served["Content-Type"] == "image/png"
    assert served.content == b""


@pytest.mark.django_db(transaction=True)
async def test_a_message_with_files_reaches_the_room(connect, public_room, alice, bob):
    from asgiref.sync import sync_to_async

    attachment = await sync_to_async(
        lambda: upload(client_for(alice), public_room, "a.png", png()).json()
    )()
    a = await connect(alice)
    b = await connect(bob)
    ack = await a.request(type="send", room="lobby", body="", attachments=[attachment["id"]])
    assert ack["type"] == "ack"
    event = await b.recv_type("message")
    assert event["message"]["attachments"] == [attachment]
    for bad in (["1"], [0], list(range(1, 12)), "5"):
        refused = await a.request(type="send", room="lobby", body="x", attachments=bad)
        assert (refused["type"], refused["code"]) == ("error", "bad_frame")
    refused = await a.request(type="send", room="lobby", body="x", attachments=[attachment["id"]])
    assert (refused["type"], refused["code"]) == ("error", "not_found")
