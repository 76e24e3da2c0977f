"""Pages: room list, new room, a room's page; and the files attached to messages."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render

from . import attachments, selectors, services
from .forms import RoomForm


def home(request: HttpRequest) -> HttpResponse:
    """The room list when signed in, else the sign-in page itself."""
    if not request.user.is_authenticated:
        return LoginView.as_view(next_page="/")(request)
    return room_list(request)


@login_required
def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rooms/room_list.html", {"entries": selectors.rooms_for(request.user)})


@login_required
def room_new(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            room = services.create_room(creator=request.user, **form.cleaned_data)
        except services.SlugTaken as exc:
            form.add_error("slug", exc.detail)
        except services.ChatError as exc:  # too many rooms, or made too fast
            form.add_error(None, exc.detail)
        else:
            return redirect("room_detail", slug=room.slug)
    context = {"form": form, "entries": selectors.rooms_for(request.user)}
    return render(request, "rooms/room_new.html", context)


@login_required
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The room's page, rendered with its latest messages before the socket connects."""
    try:
        room = services.get_room(slug)
        page = services.history(user=request.user, room=room)
    except services.RoomNotFound:
        raise Http404("No such room.") from None
    except services.Forbidden as exc:
        raise PermissionDenied(exc.detail) from None
    members, member_count = selectors.listed_members(room)
    is_member = any(pk == request.user.pk for pk, _ in members)
    if not is_member and member_count > len(members):
        is_member = room.memberships.filter(user=request.user).exists()
    context = {
        "room": room,
        "room_name": room.display_name_for(request.user),
        "page": page,
        "members": [name for _, name in members],
        "member_count": member_count,
        "is_member": is_member,
        "entries": selectors.rooms_for(request.user),
    }
    return render(request, "rooms/room_detail.html", context)


def attachment_file(request: HttpRequest, attachment_id: int, name: str) -> HttpResponseBase:
    """/attachments/<id>/<name>: the file, to whoever may see its room (checked on every
    request: a user removed from a private room loses its files at once)."""
    if not request.user.is_authenticated:
        raise PermissionDenied("Sign in first.")
    try:
        attachment = attachments.viewable(user=request.user, attachment_id=attachment_id)
    except services.AttachmentNotFound:
        raise Http404("No such attachment.") from None
    except services.Forbidden as exc:
        raise PermissionDenied(exc.detail) from None
    return attachments.response(attachment)
