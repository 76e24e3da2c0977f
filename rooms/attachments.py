"""Attachments: files uploaded to a room, sent with a message, served to whoever may see it.

An upload is checked by its content, never by its name: the first bytes say what it is
(`filetype`, a table of magic numbers), and only images and common documents are kept. Text
has no magic number: a file of valid UTF-8 without NUL bytes is plain text. Files go through
Django's storage API under random names; the URL that serves one checks, on every request,
that the asker may see its room; nginx then sends it (X-Accel-Redirect) or Django does.

`send` claims a user's unsent uploads (rooms/services.py); a deleted message takes its files
with it, and so does a deleted room.
"""

from __future__ import annotations

import codecs
import unicodedata
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import filetype
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.http import FileResponse, HttpResponse, HttpResponseBase
from django.utils import timezone
from django.utils.http import content_disposition_header

from . import ratelimit, services
from .models import Attachment, Room

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LIMITS = settings.CHAT

# What an upload may be, by the type its content shows: images a browser shows inline, and
# common documents (PDF, office files, e-books). Archives, executables, audio and video are not.
IMAGE_TYPES = frozenset(
    {"image/png", "image/apng", "image/jpeg", "image/gif", "image/webp", "image/avif"}
)
DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/rtf",
        "application/epub+zip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
    }
)
# Plain text, named by its extension among these (else text/plain).
TEXT_TYPES = {".csv": "text/csv", ".md": "text/markdown"}
NAME_CHARS = 200
UNSENT_KEPT = timedelta(days=1)


class TooLarge(services.ChatError):
    code = "too_large"


class UnsupportedType(services.ChatError):
    code = "unsupported_type"


class TooManyUnsent(services.ChatError):
    code = "rate_limited"


def upload_budget() -> ratelimit.Budget:
    return ratelimit.Budget("uploads", LIMITS["UPLOADS_PER_HOUR"] / 3600, 20)


def content_type_of(file: UploadedFile) -> str:
    """The type the file's content shows, if it is one an attachment may be."""
    file.seek(0)
    kind = filetype.guess(file.read(8192))
    file.seek(0)
    if kind is not None:
        if kind.mime in IMAGE_TYPES or kind.mime in DOCUMENT_TYPES:
            return str(kind.mime)
        raise UnsupportedType(f"Files of type {kind.mime} cannot be attached.")
    if _is_text(file):
        return TEXT_TYPES.get(PurePath(file.name or "").suffix.lower(), "text/plain")
    raise UnsupportedType(
        "Only images and common documents (PDF, office files, text) may be attached."
    )


def _is_text(file: UploadedFile) -> bool:
    """Valid UTF-8 without NUL bytes, read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in file.chunks():
            if b"\0" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        file.seek(0)
    return True


def clean_name(name: str) -> str:
    """The uploader's file name without folders or control characters, at most NAME_CHARS
    characters (keeping its extension)."""
    name = PurePath(name.replace("\\", "/")).name
    # Control and format characters go (a right-to-left override would show "gpj.exe" as
    # "exe.jpg"); every other blank becomes a space.
    name = "".join(
        " " if c.isspace() else c for c in name if not unicodedata.category(c).startswith("C")
    )
    name = " ".join(name.split()).strip(" .")
    if len(name) > NAME_CHARS:
        suffix = PurePath(name).suffix[:20]
        name = name[: NAME_CHARS - len(suffix)] + suffix
    return name or "file"


def upload(*, user: User, room: Room, file: UploadedFile) -> Attachment:
    """Keep a file for the user's next message in the room (a member who may post there)."""
    if file.size is None or file.size > LIMITS["ATTACHMENT_MAX_BYTES"]:
        raise TooLarge(f"A file may have at most {LIMITS['ATTACHMENT_MAX_BYTES'] // 2**20} MB.")
    services.membership_of(user, room)
    if room.is_archived:
        raise services.Forbidden("This room is archived.")
    unsent = Attachment.objects.filter(uploader=user, message=None)
    # Uploads never sent are dropped after a day, when their uploader next uploads.
    unsent.filter(created_at__lt=timezone.now() - UNSENT_KEPT).delete()
    waiting = unsent.count()
    if waiting >= LIMITS["UNSENT_ATTACHMENTS"]:
        raise TooManyUnsent(
            f"You have {waiting} files waiting to be sent: send or remove some first."
        )
    content_type = content_type_of(file)
    return Attachment.objects.create(
        room=room,
        uploader=user,
        file=file,
        name=clean_name(file.name or ""),
        size=file.size,
        content_type=content_type,
    )


def discard(*, user: User, attachment_id: int) -> None:
    """Remove one of the user's unsent uploads."""
    deleted, _ = Attachment.objects.filter(pk=attachment_id, uploader=user, message=None).delete()
    if not deleted:
        raise services.AttachmentNotFound("No such upload waiting to be sent.")


def viewable(*, user: User, attachment_id: int) -> Attachment:
    """The attachment, if the user may see it: a sent one to whoever may see its room (and is
    not banned from it), an unsent one to its uploader only."""
    attachment = (
        Attachment.objects.select_related("room", "message").filter(pk=attachment_id).first()
    )
    if attachment is None or (attachment.message is None and attachment.uploader_id != user.pk):
        raise services.AttachmentNotFound("No such attachment.")
    services.check_can_view(user, attachment.room)
    services.check_not_banned(user, attachment.room)
    return attachment


def response(attachment: Attachment) -> HttpResponseBase:
    """The file, sent by nginx when the site is behind it (ATTACHMENT_ACCEL_PREFIX), by Django
    otherwise; anything but an image is a download, never shown by the browser."""
    content_type = attachment.content_type
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    prefix = settings.ATTACHMENT_ACCEL_PREFIX
    sent: HttpResponseBase
    if prefix:
        sent = HttpResponse(content_type=content_type)
        sent["X-Accel-Redirect"] = f"{prefix.rstrip('/')}/{attachment.file.name}"
    else:
        sent = FileResponse(attachment.file.open("rb"), content_type=content_type)
        sent["Content-Length"] = str(attachment.size)
    disposition = content_disposition_header(not attachment.is_image, attachment.name)
    sent["Content-Disposition"] = disposition or "attachment"
    # Even a file that is also HTML (a polyglot) runs nothing on the site's origin.
    sent["Content-Security-Policy"] = "default-src 'none'; sandbox"
    sent["X-Content-Type-Options"] = "nosniff"
    sent["Cache-Control"] = "private, max-age=3600"
    return sent


@receiver(post_delete, sender=Attachment)
def _remove_file(sender: Any, instance: Attachment, **kwargs: Any) -> None:
    """A deleted attachment (its message deleted, its room, an unsent upload discarded) takes
    its file from the storage once the deletion is committed."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name))
