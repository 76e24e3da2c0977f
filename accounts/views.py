from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from rooms.signals import password_changed_by

from .forms import SignupForm


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in with it."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # The user has just chosen this password: nothing to throttle, so no authenticate().
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def locked_out(
    request: HttpRequest, original_response: object = None, credentials: object = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the page for a sign-in the throttle refused, from any login form.

    Axes calls it with (request, response, credentials), or (request, credentials) from its
    async middleware; neither is needed here.
    """
    minutes = settings.SIGN_IN["COOL_OFF_MINUTES"]
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = str(minutes * 60)
    return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change; every other session of the user is signed out and its sockets
    closed (4403), while this one stays signed in with its tabs open (rooms/signals.py)."""

    def form_valid(self, form: Form) -> HttpResponse:
        with password_changed_by(self.request.session.session_key):
            return super().form_valid(form)
