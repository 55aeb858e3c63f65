"""Conformance runner: ``run(definition, input)`` over ``stepflow.testing.execute``.

Used by ``../shared/conformance/sfn_oracle.py check --runner tests/conformance/runner.py:run``
and by ``test_conformance.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepflow.asl import DefinitionError
from stepflow.testing import execute

START = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def run(definition: dict[str, Any], input: Any, *, durable: bool | str = False) -> dict[str, Any]:
    """Run one case and report it in the oracle's runner shape."""
    try:
        result = execute(definition, input, name="conformance", start_time=START, durable=durable)
    except DefinitionError as exc:
        return {
            "status": "FAILED",
            "error": "States.Runtime",
            "cause": str(exc),
            "output": None,
            "history": [],
        }
    return {
        "status": result.status,
        "output": result.output,
        "error": result.error,
        "cause": result.cause,
        "history": result.history,
    }


def run_durable(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """The same case through the durable runtime (Stepper over in-memory log and bus)."""
    return run(definition, input, durable="memory")


def run_moto(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """The same case through the DynamoDB log on moto and the real stepper Lambda handler."""
    return run(definition, input, durable=True)
