"""Validation diagnostics, in the shape of ``ValidateStateMachineDefinition``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["ERROR", "WARNING"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a definition.

    ``location`` is the JSON pointer of the offending value (``/States/A/Next``),
    ``code`` a stable identifier (``SCHEMA_VALIDATION_FAILED``,
    ``INVALID_JSON_DESCRIPTION``, ...), ``message`` says what is wrong.
    """

    location: str
    message: str
    code: str = "SCHEMA_VALIDATION_FAILED"
    severity: Severity = "ERROR"

    def __str__(self) -> str:
        return f"{self.location or '/'}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """The diagnostic as ValidateStateMachineDefinition returns it."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "location": self.location,
        }


def one_line(diagnostics: Sequence[Diagnostic]) -> str:
    """The errors as AWS's InvalidDefinition message lists them, on one line.

    ``CODE: message at /location``, joined by ``", "``; the API wraps it as
    ``Invalid State Machine Definition: '...'``.
    """
    errors = [d for d in diagnostics if d.severity == "ERROR"] or list(diagnostics)
    return ", ".join(
        f"{d.code}: {d.message} at {d.location or '/'}".replace("\n", " ") for d in errors
    )


class DefinitionError(ValueError):
    """A definition that does not validate; carries every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "ERROR"]
        head = f"invalid state machine definition ({len(errors)} error(s))"
        super().__init__("\n".join([head, *(f"  {d}" for d in errors)]))

    def one_line(self) -> str:
        """The errors as AWS's InvalidDefinition message lists them (see :func:`one_line`)."""
        return one_line(self.diagnostics)
