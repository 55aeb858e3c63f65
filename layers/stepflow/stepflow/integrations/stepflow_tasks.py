"""StepFlow's own Task resources: ``stepflow:cell:<name>[:<version>]``, ``stepflow:saga:*``.

They are run by :class:`stepflow.cells.CellTasks` in front of every task invoker;
this integration only makes the registry know them (validation reports no
``UNSUPPORTED_INTEGRATION`` for them, and refuses a malformed one), and fails
clearly if one reaches the registry's invoker, which only happens when a
process was built without the cells runtime.
"""

from __future__ import annotations

from stepflow.cells.model import NAME, VERSION
from stepflow.cells.runner import SERVICE
from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import TaskRequest
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome


class StepFlowTasks:
    """The ``stepflow`` service: cells and the saga's compensation (request-response only)."""

    service = SERVICE
    patterns: frozenset[Pattern] = frozenset({"request-response"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``action`` is no StepFlow task (None: it is one)."""
        if action == "saga:compensate":
            return None
        kind, _, rest = action.partition(":")
        name, _, version = rest.partition(":")
        if kind != "cell" or not NAME.match(name) or ":" in version:
            return (
                f"stepflow:{action} is not a StepFlow task (use stepflow:cell:<name>"
                "[:<version>] or stepflow:saga:compensate)"
            )
        if version and not VERSION.match(version):
            return f"stepflow:{action}: the cell version must be MAJOR[.MINOR[.PATCH]]"
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Fail: a StepFlow task reached the integrations, not the cells runtime."""
        return TaskOutcome.failed(
            StatesErrorName.RUNTIME,
            f"{request.resource} needs the cells runtime, which this process was built without",
        )


INTEGRATIONS = (StepFlowTasks(),)
