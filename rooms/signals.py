"""Moderation that must take effect live, whatever path made the change."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import services


@receiver(post_save, sender=get_user_model())
def cut_off_deactivated_user(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    """A user saved with is_active=False loses every live connection, on every worker."""
    if not created and not instance.is_active:
        services.deactivate_user(instance)


@receiver(user_logged_out)
def close_signed_out_session(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    """Signing out closes the sockets that session opened (4403)."""
    if user is not None and request is not None:
        services.end_session(user, request.session.session_key)
