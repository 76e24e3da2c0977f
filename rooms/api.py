"""JSON API: message history, same shape as the WebSocket `history` reply."""

from django.http import HttpRequest, JsonResponse

from . import services


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise services.ChatError(f"`{name}` must be an integer.") from None


def messages(request: HttpRequest, slug: str) -> JsonResponse:
    """GET /api/rooms/<slug>/messages?before=&after=&limit="""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "forbidden", "detail": "Sign in first."}, status=403)
    try:
        before, after, limit = (_int_param(request, n) for n in ("before", "after", "limit"))
        room = services.get_room(slug)
        page = services.history(
            user=request.user, room=room, before=before, after=after, limit=limit
        )
    except services.RoomNotFound as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=404)
    except services.Forbidden as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=403)
    except services.ChatError as exc:
        return JsonResponse({"error": "bad_request", "detail": exc.detail}, status=400)
    return JsonResponse({"type": "history", **page.as_dict()})
