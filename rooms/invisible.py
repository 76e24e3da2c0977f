"""Characters that draw nothing: for bodies that would show as empty and for usernames that
would pass for someone else's."""

from __future__ import annotations

import unicodedata

# Format (zero-width joiners, direction marks, tags…), control and separator characters.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Unicode's default-ignorable characters outside those categories: letters that render blank
# (the Hangul fillers), the braille blank, and marks that draw nothing (combining grapheme
# joiner, Khmer inherent vowels, Mongolian and other variation selectors).
INVISIBLE_CHARACTERS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0"
    + "".join(map(chr, range(0x180B, 0x1810)))
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_invisible(char: str) -> bool:
    """Whether one character draws nothing on its own."""
    return char in INVISIBLE_CHARACTERS or unicodedata.category(char) in INVISIBLE_CATEGORIES


def shows_nothing(text: str) -> bool:
    """Whether `text` would show as nothing at all: blanks and invisible characters only."""
    return all(char.isspace() or is_invisible(char) for char in text)
