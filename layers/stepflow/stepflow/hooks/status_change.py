"""AWS's "Step Functions Execution Status Change" events, in its documented shape.

Pure: builds the ``detail`` of the event Step Functions sends to EventBridge
(https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html, "Step
Functions event examples") from one execution status hook event:

- ``executionArn``, ``stateMachineArn``, ``name``, ``status`` (RUNNING on start and
  on redrive, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), ``startDate`` and
  ``stopDate`` (epoch milliseconds; ``stopDate`` null while running), ``input`` and
  ``output`` (JSON text; ``output`` null unless succeeded), ``inputDetails`` and
  ``outputDetails`` (``{"included": bool}``, AWS's
  ``CloudWatchEventsExecutionDataDetails``; ``outputDetails`` null when there is
  no output), as in AWS's examples;
- as DescribeExecution (whose information AWS says the detail carries): ``error``
  and ``cause`` (null unless failed, timed out or aborted), ``redriveCount``,
  ``redriveDate``, ``redriveStatus`` and ``redriveStatusReason``.

Payload limit (AWS's rule): when the escaped input and output together exceed
248 KB, the input is left out (``input`` null, ``inputDetails.included`` false);
when the output alone does, it is left out too. :func:`fit_detail` then makes the
whole entry fit EventBridge's 256 KB: it drops the input, then the output (their
``*Details.included`` false), then cuts the cause (and, last, the error) short.
"""

from __future__ import annotations

import json
from typing import Any

from stepflow.hooks.events import HookEvent, HookKind
from stepflow.hooks.support import ExecutionFacts, details_of, epoch_seconds

DETAIL_TYPE = "Step Functions Execution Status Change"
AWS_SOURCE = "aws.states"
"""AWS's source. EventBridge refuses PutEvents of any ``aws.*`` source from an account
(``NotAuthorizedForSourceException``): StepFlow's default is :data:`DEFAULT_SOURCE`."""
DEFAULT_SOURCE = "stepflow.states"

PAYLOAD_LIMIT = 248 * 1024
"""Escaped input plus output above this: the input is left out (AWS's rule)."""

STATUS_OF: dict[HookKind, str] = {
    "ExecutionStarted": "RUNNING",
    "ExecutionRedriven": "RUNNING",
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
"""The execution status each execution hook kind reports."""

_REDRIVABLE = {"FAILED", "TIMED_OUT", "ABORTED"}


def epoch_millis(value: Any) -> int | None:
    """``value`` (a history timestamp) as epoch milliseconds, None if it is not one."""
    seconds = epoch_seconds(value)
    return None if seconds is None else round(seconds * 1000)


def _escaped_size(text: str | None) -> int:
    return 0 if text is None else len(json.dumps(text).encode())


def status_change_detail(
    event: HookEvent,
    *,
    start: HookEvent | None = None,
    facts: ExecutionFacts | None = None,
    redrive_date: Any = None,
) -> dict[str, Any]:
    """The ``detail`` of the status change ``event`` reports (module doc).

    ``start`` is the execution's ``ExecutionStarted`` when the same batch holds it
    (its timestamp and input), else ``facts`` (the log head's) give them; with
    neither, ``startDate`` and ``input`` are null (``inputDetails.included`` false).
    ``redrive_date`` is the batch's ``ExecutionRedriven`` timestamp, else the head's
    redrive date when the head is at the event's redrive count (else null).
    """
    status = STATUS_OF[event.kind]
    details = details_of(event.event)
    start_date: int | None = None
    input_text: str | None = None
    if start is not None:
        start_date = epoch_millis(start.timestamp)
        raw = details_of(start.event).get("input")
        input_text = raw if isinstance(raw, str) else None
    elif facts is not None:
        start_date = None if facts.start_date is None else round(facts.start_date * 1000)
        input_text = facts.input
    if (
        redrive_date is None
        and facts is not None
        and facts.redrive_count == event.execution.redrive_count  # the head's is this run's
    ):
        redrive_date = facts.redrive_date
    if event.kind == "ExecutionStarted":
        start_date = epoch_millis(event.timestamp)
        raw = details.get("input")
        input_text = raw if isinstance(raw, str) else input_text
    output: str | None = None
    if status == "SUCCEEDED":
        raw_output = details.get("output")
        output = raw_output if isinstance(raw_output, str) else None
    if _escaped_size(output) > PAYLOAD_LIMIT:
        output_included = False
        output = None
    else:
        output_included = True
    input_included = input_text is not None
    if _escaped_size(input_text) + _escaped_size(output) > PAYLOAD_LIMIT:
        input_text, input_included = None, False
    failed = status in _REDRIVABLE
    redrive_count = event.execution.redrive_count
    redrivable = failed and event.execution.execution_type == "STANDARD"
    return {
        "executionArn": event.execution.execution_arn,
        "stateMachineArn": event.execution.state_machine_arn,
        "name": event.execution.name or _name_of(event.execution.execution_arn),
        "status": status,
        "startDate": start_date,
        "stopDate": None if status == "RUNNING" else epoch_millis(event.timestamp),
        "input": input_text,
        "inputDetails": {"included": input_included},
        "output": output,
        "outputDetails": {"included": output_included} if status == "SUCCEEDED" else None,
        "error": _text(details.get("error")) if failed else None,
        "cause": _text(details.get("cause")) if failed else None,
        "redriveCount": redrive_count,
        "redriveDate": epoch_millis(redrive_date) if redrive_count else None,
        "redriveStatus": "REDRIVABLE" if redrivable else "NOT_REDRIVABLE",
        "redriveStatusReason": None if redrivable else _not_redrivable(event, status),
    }


def _not_redrivable(event: HookEvent, status: str) -> str:
    if event.execution.execution_type != "STANDARD":
        return "Execution is EXPRESS and cannot be redriven"
    return f"Execution is {status} and cannot be redriven"


def _name_of(execution_arn: str) -> str:
    """An execution's name from its ARN (an EXPRESS ARN ends with ``<name>:<run id>``)."""
    parts = execution_arn.split(":")
    if len(parts) >= 9 and parts[5] == "express":
        return parts[7]
    return parts[-1]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def detail_size(detail: dict[str, Any]) -> int:
    """The UTF-8 size of ``detail`` as an entry's ``Detail`` carries it."""
    return len(json.dumps(detail, separators=(",", ":")).encode())


def fit_detail(detail: dict[str, Any], budget: int) -> dict[str, Any]:
    """``detail`` cut down to at most ``budget`` bytes (the entry's room for its ``Detail``).

    In order, while it is too large: the input is dropped (``inputDetails.included``
    false), then the output (``outputDetails.included`` false), then the cause and
    last the error are cut short (to nothing at worst). A detail that fits is
    returned unchanged.
    """
    fitted = dict(detail)
    if detail_size(fitted) > budget and fitted.get("input") is not None:
        fitted["input"], fitted["inputDetails"] = None, {"included": False}
    if detail_size(fitted) > budget and fitted.get("output") is not None:
        fitted["output"], fitted["outputDetails"] = None, {"included": False}
    for key in ("cause", "error"):
        text = fitted.get(key)
        if isinstance(text, str) and text and detail_size(fitted) > budget:
            low, high = 0, len(text)  # the longest prefix that fits: in [low, high)
            while low + 1 < high:
                middle = (low + high) // 2
                fitted[key] = text[:middle]
                low, high = (middle, high) if detail_size(fitted) <= budget else (low, middle)
            fitted[key] = text[:low]
    return fitted
