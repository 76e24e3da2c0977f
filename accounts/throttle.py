"""Sign-in throttling: django-axes, with one limit per username and another per address.

The numbers live in settings.SIGN_IN; settings.py points axes at the two callables below.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def failure_limit(request: HttpRequest, credentials: dict | None = None) -> int:
    """AXES_FAILURE_LIMIT: the limit that applies to this sign-in.

    Axes takes one limit for all its lockout parameters and locks when the larger of the
    username's and the address's recent failures reaches it. Answering the username's limit once
    that username has reached it, and the address's otherwise, makes that "10 for one username,
    or 30 from one address": while the username is below its limit, only the address's count can
    reach the address's.
    """
    limits = settings.SIGN_IN
    username = get_client_username(request, credentials)
    if username and username_failures(request, username) >= limits["FAILURES_PER_USERNAME"]:
        return int(limits["FAILURES_PER_USERNAME"])
    return int(limits["FAILURES_PER_ADDRESS"])


def username_failures(request: HttpRequest, username: str) -> int:
    """Failed sign-ins for `username` from any address within the cool-off, as axes counts them."""
    recent = AccessAttempt.objects.filter(
        username=username, attempt_time__gte=get_cool_off_threshold(request)
    )
    return int(recent.aggregate(total=Sum("failures_since_start"))["total"] or 0)


def client_address(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address daphne reports, whatever the request's headers say.

    Behind nginx, daphne runs with --proxy-headers (deploy/chatsite@.service) and puts the
    X-Forwarded-For that nginx sets (it overwrites the client's own) into REMOTE_ADDR; a worker
    without that flag ignores the header, so a forged one changes nothing. Reading headers here
    as well would let anyone pick the address they are counted under.
    """
    return request.META.get("REMOTE_ADDR")
