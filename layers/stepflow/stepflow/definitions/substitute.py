"""``DefinitionSubstitutions``: ``${Key}`` placeholders filled in as CloudFormation does.

CloudFormation replaces each ``${Key}`` in the definition with the value of
``Key`` in the resource's ``DefinitionSubstitutions`` before creating the state
machine. The definition is JSON, so a placeholder always sits inside a string
(a key or a value); the value is put in as text, whatever its type in the
template (``${Seconds}`` stays a string). A placeholder whose key has no
substitution is left as written, as CloudFormation's resource provider leaves it
(it replaces only the keys it is given); a key the template gives but whose
value cannot be worked out locally is an error naming it.

A YAML definition's aliases load as one shared value: each is scanned and
replaced once, not once per alias.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")


class SubstitutionError(ValueError):
    """A placeholder whose value cannot be worked out locally, or a malformed ``--sub``."""


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


def missing_keys(definition: Any, substitutions: Substitutions) -> list[str]:
    """The ``${Key}`` names in ``definition`` that ``substitutions`` does not give, in order."""
    return [key for key in placeholders(definition) if key not in substitutions]


def substitute(definition: Any, substitutions: Substitutions) -> Any:
    """``definition`` with each ``${Key}`` of ``substitutions`` replaced; others left as written.

    Raises :class:`SubstitutionError` naming every placeholder whose value the
    template gives but that cannot be worked out locally (:class:`Unresolved`).
    """
    used = placeholders(definition)
    unresolved = [
        f"{key} ({value.why})"
        for key in used
        if isinstance(value := substitutions.get(key), Unresolved)
    ]
    if unresolved:
        raise SubstitutionError(
            "cannot resolve "
            + "; ".join(unresolved)
            + " locally (give the value with --sub KEY=VALUE)"
        )
    values = {k: v for k, v in substitutions.items() if isinstance(v, str)}
    if not any(key in values for key in used):
        return definition
    memo: dict[int, Any] = {}
    return _replace(definition, values, memo)


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _replace(value: Any, values: Mapping[str, str], memo: dict[int, Any]) -> Any:
    if isinstance(value, str):
        return _fill(value, values) if "${" in value else value
    if not isinstance(value, Mapping | list):
        return value
    done = memo.get(id(value))
    if done is not None:  # an aliased value: replaced once, shared as it was
        return done
    result: Any
    if isinstance(value, Mapping):
        result = {
            _replace(key, values, memo): _replace(item, values, memo) for key, item in value.items()
        }
    else:
        result = [_replace(item, values, memo) for item in value]
    memo[id(value)] = result
    return result


def _strings(value: Any) -> Iterable[str]:
    """Every string in ``value``, keys too; a container met again (an alias) is not rescanned."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
            continue
        if isinstance(item, Mapping | list):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, Mapping):  # in document order: each key, then its value
            stack.extend(part for pair in list(item.items())[::-1] for part in pair[::-1])
        elif isinstance(item, list):
            stack.extend(reversed(item))
