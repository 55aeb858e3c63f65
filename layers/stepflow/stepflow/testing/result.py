"""The outcome of an execution, as DescribeExecution and GetExecutionHistory report it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """A finished execution.

    Attributes:
        status: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``ABORTED``.
        output: the output as JSON text (as DescribeExecution returns it), or None.
        error: the error name of a failed execution.
        cause: the cause of a failed execution.
        history: the history events, each a dict in GetExecutionHistory shape.
    """

    status: ExecutionStatus
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def result(self) -> Any:
        """The output parsed from JSON (None when there is no output)."""
        return None if self.output is None else json.loads(self.output)

    @property
    def succeeded(self) -> bool:
        """Whether the execution succeeded."""
        return self.status == "SUCCEEDED"

    def states_entered(self) -> list[str]:
        """The names of the states entered, in order (handy in assertions)."""
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]

    def to_dict(self) -> dict[str, Any]:
        """The result as one JSON-ready object (what ``stepflow run --json`` prints)."""
        return {
            "status": self.status,
            "output": self.output,
            "result": self.result,
            "error": self.error,
            "cause": self.cause,
            "history": self.history,
        }
