from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Chat rooms"

    def ready(self) -> None:
        from . import attachments, signals  # noqa: F401 - their signal receivers
