"""JSON API: message history (the shape of the WebSocket `history` reply), and search."""

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from . import protocol, ratelimit, search, services


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
