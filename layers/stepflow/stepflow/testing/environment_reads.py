"""How a :class:`~stepflow.testing.WorkflowEnvironment` reads its executions back.

:class:`ExecutionReads`, a base of the environment: :meth:`~ExecutionReads.result`
(status, output or error, history), :meth:`~ExecutionReads.describe`
(DescribeExecution's shape) and :meth:`~ExecutionReads.history`, over the
environment's log (the in-memory one, or another: see
:func:`stepflow.testing.open_environment`).
"""

from __future__ import annotations

from typing import Any

from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.runtime import CoordinationLog, InMemoryLog
from stepflow.testing.delivery import ReportingLog
from stepflow.testing.result import ExecutionResult

HISTORY_PAGE = 100_000
"""Events read per history page from another log (few pages: fewer round trips)."""

WHOLE_HISTORY = 2**62
"""The page of the in-memory log: all of it at once (a page that ended inside a commit
would decode that commit's events twice, once per page)."""


class ExecutionReads:
    """The reading side of :class:`~stepflow.testing.WorkflowEnvironment`."""

    log: CoordinationLog
    _counter: ReportingLog

    def result(self, execution_arn: str) -> ExecutionResult:
        """The execution's status, output or error, and full history (as it is now).

        On the in-memory log the history is decoded when the result's
        :attr:`~ExecutionResult.history` is first read; other logs are read at once.
        """
        record = self.log.get(execution_arn)
        if record is None:
            raise KeyError(f"no execution {execution_arn}")
        state = decode_state(record.state)
        output = dumps(state.output) if state.status == "SUCCEEDED" else None
        inner = self._counter.inner
        if isinstance(inner, InMemoryLog):
            reader = inner.history_reader(execution_arn)
            return ExecutionResult(
                state.status, output, state.error, state.cause, read_history=reader
            )
        return ExecutionResult(
            state.status, output, state.error, state.cause, self.history(execution_arn)
        )

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """The execution in the shape of DescribeExecution's response."""
        record = self.log.get(execution_arn)
        if record is None:
            raise KeyError(f"no execution {execution_arn}")
        state = decode_state(record.state)
        found: dict[str, Any] = {
            "executionArn": execution_arn,
            "stateMachineArn": record.state_machine_arn,
            "name": record.name,
            "status": record.status,
            "startDate": record.start_date,
            "input": dumps(record.input),
        }
        if record.stop_date is not None:
            found["stopDate"] = record.stop_date
        if state.status == "SUCCEEDED":
            found["output"] = dumps(state.output)
        found.update({k: v for k, v in (("error", state.error), ("cause", state.cause)) if v})
        return found

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every history event of the execution, in order (GetExecutionHistory shape)."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        limit = WHOLE_HISTORY if isinstance(self._counter.inner, InMemoryLog) else HISTORY_PAGE
        while True:
            page = self.log.history(execution_arn, next_token=token, limit=limit)
            events.extend(page.events)
            if page.next_token is None:
                return events
            token = page.next_token


__all__ = ["ExecutionReads"]
