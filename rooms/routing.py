from django.urls import path

from chatsite.websocket_auth import SessionUserMiddleware

from .consumers import ChatConsumer

websocket_urlpatterns = [
    # The user is resolved here, next to the consumer, so that the scope it receives is the
    # one it may slim down (no middleware above it keeps another copy of the user).
    path("ws/chat/", SessionUserMiddleware(ChatConsumer.as_asgi())),
]
