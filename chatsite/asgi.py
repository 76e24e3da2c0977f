"""ASGI entry point: Django for HTTP, the chat over /ws/chat/ and its HTTP stream /chat/stream/.

Run with `daphne chatsite.asgi:application`. This is where the chat (rooms/) meets its server
(chatsite/server/): the only module that knows both.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before the consumer (and its models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from chatsite import server  # noqa: E402
from chatsite.server.sockets import ServerSocketMiddleware  # noqa: E402
from chatsite.server.streams import ServerStreamMiddleware  # noqa: E402
from chatsite.websocket_auth import SessionUserMiddleware  # noqa: E402
from rooms.consumers import ChatConsumer  # noqa: E402
from rooms.streams import PostConsumer, StreamConsumer  # noqa: E402

server.install()

websocket_urlpatterns = [
    # Beneath the router, next to the consumer: the socket's ServerSocket (admitted in turn in a
    # crowd), then its user, read once; the consumer may slim down the scope they fill.
    path("ws/chat/", ServerSocketMiddleware(SessionUserMiddleware(ChatConsumer.as_asgi()))),
]

http_urlpatterns = [
    # The chat's HTTP fallback: one stream down, POSTs up (on any worker); Django for the rest.
    path("chat/stream/", ServerStreamMiddleware(SessionUserMiddleware(StreamConsumer.as_asgi()))),
    path("chat/stream/<str:stream_id>/", PostConsumer.as_asgi()),
    re_path(r"", django_asgi_app),
]

application = ProtocolTypeRouter(
    {
        "http": URLRouter(http_urlpatterns),
        # Origin check first (host names of DJANGO_ALLOWED_HOSTS; a missing Origin is refused).
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
