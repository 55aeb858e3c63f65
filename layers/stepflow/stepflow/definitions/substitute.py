"""``DefinitionSubstitutions``: ``${Key}`` placeholders filled in as CloudFormation does.

CloudFormation replaces each ``${Key}`` in the definition with the value of
``Key`` in the resource's ``DefinitionSubstitutions`` before creating the state
machine. The definition is JSON, so a placeholder always sits inside a string
(a key or a value); the value is put in as text, whatever its type in the
template (``${Seconds}`` stays a string). A placeholder with no substitution
is an error naming it, as a deployment would fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")


class SubstitutionError(ValueError):
    """A placeholder without a value, or a malformed ``--sub``."""


class Unresolved:
    """A substitution the template gives but that cannot be worked out locally."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"Unresolved({self.why!r})"


Substitutions = Mapping[str, "str | Unresolved"]
"""Placeholder name to its text (or why the template's value cannot be used)."""


def parse_substitutions(pairs: Iterable[str]) -> dict[str, str]:
    """``--sub Key=Value`` arguments as a mapping (the last of a repeated key wins)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SubstitutionError(f"--sub {pair!r} must be KEY=VALUE")
        result[key.strip()] = value
    return result


def placeholders(definition: Any) -> list[str]:
    """The ``${Key}`` names used in ``definition``, in order, each once."""
    seen: dict[str, None] = {}
    for text in _strings(definition):
        for match in _PLACEHOLDER.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def substitute(definition: Any, substitutions: Substitutions) -> Any:
    """``definition`` with every ``${Key}`` replaced; raise :class:`SubstitutionError`.

    Every placeholder is checked before anything is replaced, so the error names
    all the keys that are missing or cannot be resolved.
    """
    used = placeholders(definition)
    missing = [key for key in used if key not in substitutions]
    unresolved = [
        f"{key} ({value.why})"
        for key in used
        if isinstance(value := substitutions.get(key), Unresolved)
    ]
    problems = []
    if missing:
        names = ", ".join(f"${{{key}}}" for key in missing)
        problems.append(f"no value for {names} (give --sub KEY=VALUE)")
    if unresolved:
        problems.append(
            "cannot resolve "
            + "; ".join(unresolved)
            + " locally (give the value with --sub KEY=VALUE)"
        )
    if problems:
        raise SubstitutionError("; ".join(problems))
    if not used:
        return definition
    return _replace(definition, {k: v for k, v in substitutions.items() if isinstance(v, str)})


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _replace(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, values) if "${" in value else value
    if isinstance(value, Mapping):
        return {_replace(key, values): _replace(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, values) for item in value]
    return value


def _strings(value: Any) -> Iterable[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):  # in document order: each key, then its value
            stack.extend(part for pair in list(item.items())[::-1] for part in pair[::-1])
        elif isinstance(item, list):
            stack.extend(reversed(item))
