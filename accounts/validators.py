"""Username rules that keep one person from passing for another (after django-registration).

Each check takes a name already NFKC-normalised by Django's UsernameField, so compatibility
look-alikes (full-width letters, ligatures, superscripts) have become their plain forms first.
"""

from __future__ import annotations

import re
import unicodedata

from confusable_homoglyphs import categories, confusables
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from rooms.invisible import is_invisible

INVISIBLE = (
    "A username cannot contain spaces or invisible characters "
    "(zero-width spaces, joiners, direction marks and the like)."
)
CONFUSABLE = (
    "This username mixes look-alike letters from different scripts (such as Latin and "
    "Cyrillic). Please write it in one script."
)
TAKEN = (
    "A user with that username already exists "
    "(names that differ only in upper and lower case are the same name)."
)

RESERVED = "This name is reserved: @{name} mentions everyone in a room."
# Names that mean something after "@" in a message (rooms/mentions.py).
_RESERVED_NAMES = frozenset({"room"})

# Beyond what draws nothing anywhere (rooms/invisible.py): private-use and unassigned
# characters, which draw nothing or a box depending on the reader's fonts.
_UNDRAWN_CATEGORIES = frozenset({"Co", "Cn"})

# Scripts one name may combine (UTS #39, "highly restrictive"): Japanese writes kanji with both
# kana, Chinese may add bopomofo, Korean hanja with hangul. Any other mix is refused when it
# holds a confusable character, as django-registration's validate_confusables does.
_WRITTEN_TOGETHER = (
    frozenset({"HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"HAN", "BOPOMOFO"}),
    frozenset({"HAN", "HANGUL"}),
)


def validate_visible(name: str) -> None:
    """Refuse a name with characters that draw nothing ("alice" + a zero-width space)."""
    if any(
        is_invisible(char) or unicodedata.category(char) in _UNDRAWN_CATEGORIES for char in name
    ):
        raise ValidationError(INVISIBLE, code="invisible")


def validate_not_reserved(name: str) -> None:
    """Refuse a name that a mention gives another meaning ("room": `@room`)."""
    if name.lower() in _RESERVED_NAMES:
        raise ValidationError(RESERVED.format(name=name.lower()), code="reserved")


def validate_confusables(name: str) -> None:
    """Refuse a mixed-script name with look-alike letters (a Cyrillic "а" in "аlice")."""
    scripts = categories.unique_aliases(name) - {"COMMON"}
    if any(scripts <= allowed for allowed in _WRITTEN_TOGETHER):
        return
    if confusables.is_dangerous(name):
        raise ValidationError(CONFUSABLE, code="confusable")


def username_taken(name: str) -> bool:
    """Whether someone already has this name, ignoring case in every script."""
    # Not `iexact`: SQLite folds only ASCII there, so "ДМИТРИЙ" would pass beside "Дмитрий". A
    # case-insensitive regex folds every script on SQLite (Python's re) and PostgreSQL alike.
    pattern = rf"^{re.escape(name)}$"
    return get_user_model()._default_manager.filter(username__iregex=pattern).exists()
