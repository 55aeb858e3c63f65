"""Parse and validate a definition (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.asl.diagnostics import Diagnostic, DefinitionError
from stepflow.asl.machine import StateMachine


def parse(definition: str | Mapping[str, Any]) -> StateMachine:
    """Parse a definition (JSON text or a dict); raise :class:`DefinitionError` if invalid."""
    raise DefinitionError([Diagnostic("", "the parser is not implemented yet")])


def validate(definition: str | Mapping[str, Any]) -> list[Diagnostic]:
    """Every problem in ``definition`` (an empty list when it is valid)."""
    try:
        parse(definition)
    except DefinitionError as exc:
        return list(exc.diagnostics)
    return []
