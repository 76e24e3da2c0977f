"""ASGI entry point: Django for HTTP, the chat consumer for /ws/chat/.

Run with `daphne chatsite.asgi:application`.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before the consumer (and its models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chatsite import batched_writes, bounded_sockets, crowds  # noqa: E402
from rooms.routing import websocket_urlpatterns  # noqa: E402

batched_writes.install()
bounded_sockets.install()
crowds.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check first (host names of DJANGO_ALLOWED_HOSTS; a missing Origin is refused),
        # then the route, whose middleware reads the session and user from the cookie.
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
