"""StepFlow's limits: every bound on input, data, history and evaluation, in one place.

Each limit has AWS's value as its default where AWS has one, and each can be
changed per deployment (environment variables ``STEPFLOW_MAX_*``, read by
:class:`stepflow.aws.settings.Settings`; keyword arguments in tests). Nothing
here imports anything: the engine, the runtime and the edges all read the same
:class:`Limits` value, so a limit is enforced the same way on every path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds StepFlow enforces; see docs/limits.md for what each one answers."""

    max_payload_bytes: int = 256 * KIB
    """Execution input, state input/output, task result and callback output, as UTF-8
    JSON (AWS: 256 KiB). Past it: ``InvalidExecutionInput`` at the API, and
    ``States.DataLimitExceeded`` inside an execution (for a SendTaskSuccess output
    too). Raising it relies on the S3
    payload offload for what no longer fits in a log item."""

    max_definition_bytes: int = 1 * MIB
    """A state machine definition as UTF-8 (AWS: 1 MiB). Past it: ``InvalidDefinition``.
    Definitions too large for a DynamoDB item are stored in the payload bucket."""

    max_json_depth: int = 512
    """Nesting depth of any JSON value accepted from outside (request bodies, inputs,
    definitions, task results). Past it: a 4xx (``SerializationException`` for a body, the
    operation's invalid-input error for a member), never a RecursionError. orjson parses
    at most 1,024 levels, so a larger value acts as 1,024."""

    max_request_bytes: int = 8 * MIB
    """The body of one API request; larger bodies are refused before parsing (413
    ``RequestEntityTooLargeException``)."""

    max_error_length: int = 256
    """``error`` of StopExecution, SendTaskFailure and Fail states (AWS: 256 characters).
    Refused at the API; cut to this length when a Fail state or a task failure makes it."""

    max_cause_length: int = 32_768
    """``cause`` of StopExecution, SendTaskFailure and Fail states (AWS: 32,768 characters).
    Refused at the API; cut to this length when a Fail state or a task failure makes it."""

    max_events_per_execution: int = 1_000_000
    """Runaway-loop guard: an execution whose history would grow past this fails with
    ``States.Runtime``. AWS's 25,000-event wall is deliberately not copied."""

    expression_budget_seconds: float = 1.0
    """Time one JSONata expression, JSONPath/intrinsic evaluation or Choice rule may take.
    Running out fails the execution: ``States.QueryEvaluationError`` for JSONata,
    ``States.Runtime`` otherwise, the cause naming this budget."""

    decision_budget_seconds: float = 10.0
    """Time one decision (from one event to its commit) may spend evaluating.
    Running out fails the execution with ``States.Runtime``, the cause naming this budget."""

    api_decision_budget_seconds: float = 0.5
    """Time StartExecution's inline first decision may spend evaluating in the API. Past
    it the execution is stored undecided and its first decision is left to the stepper
    behind the queue (under the two budgets above), so a slow definition never holds the
    API; nothing fails and nothing is decided twice."""

    redrive_window_seconds: int = 14 * 86_400
    """How long after it stopped a failed, timed-out or aborted execution can be redriven
    (AWS: 14 days). Must stay below the retention of finished executions."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of every limit, in declaration order."""
        return tuple(f.name for f in fields(cls))


DEFAULT_LIMITS = Limits()
"""The limits used when nothing else is configured."""
