r"""Choice ``StringMatches``: a glob matched in linear time, without regular expressions.

In the pattern, ``*`` matches any run of characters (none included), ``\*``
is a literal star and ``\\`` a literal backslash; any other character,
including a backslash before anything else, stands for itself.

A pattern is split on its unescaped stars into literal segments. The first
segment must start the string and the last must end it; the middle ones are
found left to right, each at its first occurrence after the previous one
(taking the leftmost occurrence never loses a match when the only wildcard is
``*``). The work is one ``str.find`` per segment: no backtracking, so a hostile
pattern such as ``*a*a*a...*b`` costs as much as reading the string once per
segment, never exponential time.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=512)
def segments(pattern: str) -> tuple[str, ...]:
    """The literal segments between the unescaped stars of ``pattern`` (one if it has none)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            current.append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def glob_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the ``StringMatches`` glob ``pattern`` as a whole."""
    parts = segments(pattern)
    if len(parts) == 1:
        return text == parts[0]
    first, *middle, last = parts
    if len(first) + len(last) > len(text) or not text.startswith(first):
        return False
    if not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for part in middle:
        if not part:
            continue
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
