from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from . import validators


class SignupForm(UserCreationForm):
    """Username and password twice, checked by Django's password validators.

    The username arrives NFKC-normalised (Django's UsernameField) and must then pass the rules
    in accounts/validators.py: nothing invisible, not a name mentions reserve ("room"), no
    look-alike mix of scripts, and no one else with the same name in other case.
    """

    def clean_username(self) -> str:
        """Replaces Django's own case check, which folds only ASCII on SQLite."""
        username: str = self.cleaned_data["username"]
        validators.validate_visible(username)
        validators.validate_not_reserved(username)
        validators.validate_confusables(username)
        if validators.username_taken(username):
            raise ValidationError(validators.TAKEN, code="unique")
        return username
