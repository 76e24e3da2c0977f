"""Rights that must follow the user live, on every worker, whatever path made the change."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import receiver

from . import services

# The session that changes its own password keeps its sockets: Django keeps it signed in
# (update_session_auth_hash). Every other session of the user is signed out.
_session_changing_password: ContextVar[str | None] = ContextVar(
    "session_changing_password", default=None
)
# Set on a user instance between pre_save and post_save when its password changed.
_CREDENTIALS_CHANGED = "_chatsite_credentials_changed"


@contextlib.contextmanager
def password_changed_by(session_key: str | None) -> Iterator[None]:
    """Within this block, a password change keeps the sockets of `session_key` open."""
    token = _session_changing_password.set(session_key)
    try:
        yield
    finally:
        _session_changing_password.reset(token)


@receiver(pre_save, sender=get_user_model())
def notice_password_change(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """Compare the password about to be saved with the stored one (user saves are rare; a
    sign-in's `last_login` update names its field and costs nothing here)."""
    update_fields = kwargs.get("update_fields")
    if raw or instance.pk is None or (update_fields and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        setattr(instance, _CREDENTIALS_CHANGED, True)


@receiver(post_save, sender=get_user_model())
def follow_account_changes(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    """A deactivated user loses every live connection; a changed password signs out every
    other session (4403), on every worker."""
    if created:
        return
    if not instance.is_active:
        services.deactivate_user(instance)
    elif getattr(instance, _CREDENTIALS_CHANGED, False):
        services.end_other_sessions(instance, keep_session=_session_changing_password.get())
    instance.__dict__.pop(_CREDENTIALS_CHANGED, None)


@receiver(pre_delete, sender=get_user_model())
def cut_off_deleted_user(sender: type, instance: Any, **kwargs: Any) -> None:
    """A deleted user's sockets close (4403) once the deletion commits."""
    services.deactivate_user(instance)


@receiver(user_logged_out)
def close_signed_out_session(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    """Signing out closes the sockets that session opened (4403)."""
    if user is not None and request is not None:
        services.end_session(user, request.session.session_key)
