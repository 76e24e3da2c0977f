"""Template context of the chat pages."""

from typing import Any

from django.http import HttpRequest

from . import protocol


def chat_protocol(request: HttpRequest) -> dict[str, Any]:
    """The codes and limits the browser client reads from the page (rooms/protocol.py)."""
    return {"chat_protocol": protocol.for_the_client()}
