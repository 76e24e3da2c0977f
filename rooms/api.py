"""JSON API: message history (the shape of the WebSocket `history` reply), search, and
attachments (uploaded here, served by rooms/views.py)."""

import math
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from . import attachments, protocol, ratelimit, search, services

# HTTP status of each refusal an upload may meet.
_UPLOAD_STATUS = {
    attachments.TooLarge: 413,
    attachments.UnsupportedType: 415,
    attachments.TooManyUnsent: 429,
    services.RoomNotFound: 404,
    services.AttachmentNotFound: 404,
    services.Forbidden: 403,
}


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise services.ChatError(f"`{name}` must be an integer.") from None


async def messages(request: HttpRequest, slug: str) -> JsonResponse:
    """GET /api/rooms/<slug>/messages?before=&after=&limit=

    A page costs one of the user's queries, as a WebSocket `history` does: a client asking
    faster waits its turn instead of taking the worker's database thread from everyone.
    """
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "forbidden", "detail": "Sign in first."}, status=403)
    await ratelimit.wait_for(user.pk, ratelimit.queries())
    return await sync_to_async(_page)(request, user, slug)


def _page(request: HttpRequest, user: Any, slug: str) -> JsonResponse:
    try:
        before, after, limit = (_int_param(request, n) for n in ("before", "after", "limit"))
        room = services.get_room(slug)
        page = services.history(user=user, room=room, before=before, after=after, limit=limit)
    except services.RoomNotFound as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=404)
    except services.Forbidden as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=403)
    except services.ChatError as exc:
        return JsonResponse({"error": "bad_request", "detail": exc.detail}, status=400)
    return JsonResponse(protocol.history(page))


async def search_messages(request: HttpRequest) -> JsonResponse:
    """GET /api/search?q=&room=&before=: messages of the rooms the user may see, newest first.

    A page costs one of the user's queries, as `messages` does.
    """
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "forbidden", "detail": "Sign in first."}, status=403)
    await ratelimit.wait_for(user.pk, ratelimit.queries())
    return await sync_to_async(_search)(request, user)


def _search(request: HttpRequest, user: Any) -> JsonResponse:
    try:
        before = _int_param(request, "before")
        slug = request.GET.get("room") or None
        room = services.get_room(slug) if slug else None
        if room is not None:
            services.check_can_view(user, room)
        results = search.search_messages(
            user=user, query=request.GET.get("q", ""), room=room, before=before
        )
    except services.RoomNotFound as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=404)
    except services.Forbidden as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=403)
    except (services.ChatError, search.BadQuery) as exc:
        return JsonResponse({"error": "bad_request", "detail": str(exc)}, status=400)
    return JsonResponse(results.as_dict())


def _refused(exc: services.ChatError, status: int) -> JsonResponse:
    return JsonResponse({"error": exc.code, "detail": exc.detail, **exc.fields}, status=status)


@require_POST
async def upload_attachment(request: HttpRequest, slug: str) -> JsonResponse:
    """POST /api/rooms/<slug>/attachments (multipart `file`, CSRF): 201 with the attachment.

    The size is refused from the request's length before its body is parsed; uploads cost a
    budget of their own, as sign-ups and rooms do.
    """
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "forbidden", "detail": "Sign in first."}, status=403)
    limit = settings.CHAT["ATTACHMENT_MAX_BYTES"]
    # Room for the multipart envelope around the file.
    if int(request.headers.get("Content-Length") or 0) > limit + 64 * 1024:
        return _refused(attachments.TooLarge(f"A file may have at most {limit // 2**20} MB."), 413)
    if not await ratelimit.allow(user.pk, attachments.upload_budget()):
        retry_after = math.ceil(1 / attachments.upload_budget().rate)
        return JsonResponse(
            {
                "error": protocol.RATE_LIMITED,
                "detail": "Too many uploads: wait a little.",
                "retry_after": retry_after,
            },
            status=429,
        )
    return await sync_to_async(_upload)(request, user, slug)


def _upload(request: HttpRequest, user: Any, slug: str) -> JsonResponse:
    file = request.FILES.get("file")
    if file is None:
        return JsonResponse(
            {"error": "bad_request", "detail": "Send the file as the form field `file`."},
            status=400,
        )
    try:
        room = services.get_room(slug)
        attachment = attachments.upload(user=user, room=room, file=file)
    except tuple(_UPLOAD_STATUS) as exc:
        status = next(code for kind, code in _UPLOAD_STATUS.items() if isinstance(exc, kind))
        return _refused(exc, status)
    return JsonResponse(protocol.attachment_payload(attachment), status=201)


async def discard_attachment(request: HttpRequest, attachment_id: int) -> HttpResponse:
    """DELETE /api/attachments/<id> (CSRF): remove one of the user's unsent uploads; 204.

    Each costs one of the user's queries, as a page of history does."""
    if request.method != "DELETE":
        return JsonResponse({"error": "bad_request", "detail": "Use DELETE."}, status=405)
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "forbidden", "detail": "Sign in first."}, status=403)
    await ratelimit.wait_for(user.pk, ratelimit.queries())
    try:
        await sync_to_async(attachments.discard)(user=user, attachment_id=attachment_id)
    except services.AttachmentNotFound as exc:
        return _refused(exc, 404)
    return HttpResponse(status=204)
