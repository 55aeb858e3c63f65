"""``*`` patterns, matched without regular expressions."""

from __future__ import annotations


def glob(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``, where ``*`` is any run of characters.

    Linear in the text for each star (no regular expression, no backtracking
    blow-up): patterns come from the operator, texts from callers.
    """
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == text
    first, *middle, last = pieces
    if not text.startswith(first) or not text.endswith(last):
        return False
    if len(first) + len(last) > len(text):
        return False
    position, end = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True
