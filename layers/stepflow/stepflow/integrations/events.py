"""``arn:aws:states:::events:putEvents`` (and ``.waitForTaskToken``): send EventBridge events.

The parameters are EventBridge's ``PutEvents`` request (``Entries``, each with
``Source``, ``DetailType``, ``Detail``, ``EventBusName``, ``Resources``...). As
Step Functions does, a ``Detail`` that is not a string is sent as its JSON text,
and the execution's ARN and its state machine's ARN are appended to each
entry's ``Resources``. The output is ``{"Entries": [...], "FailedEntryCount": n}``;
a response with a failed entry fails the task with ``EventBridge.FailedEntry``
and the response as cause; an error of the call is ``EventBridge.<Exception>``.
"""

from __future__ import annotations

import json
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.base import Integration, TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.optimized import (
    call_optimized,
    json_text,
    not_an_object,
    unusable,
)
from stepflow.integrations.prechecks import shape_problem, without_nulls
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

EVENTS = ErrorNames(
    prefix="EventBridge",
    cause_service="AmazonEventBridge",
    naming="modeled",
    base_exception="AmazonEventBridgeException",
)
FAILED_ENTRY = "EventBridge.FailedEntry"


class EventsPutEvents:
    """The optimized EventBridge integration: ``putEvents``, request-response or wait-for-token."""

    service = "events"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``putEvents``: Step Functions' optimized EventBridge integration has no other."""
        return unknown_action("events", action, ("putEvents",), "eventbridge")

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """Wrong JSON types and unknown fields (of the request or an entry).

        AWS refuses them before scheduling; a missing ``Source`` is a failed entry
        when the task runs, as on AWS.
        """
        if action != "putEvents":
            return None
        if not isinstance(parameters, dict):
            return "The parameters of events:putEvents must be a JSON object"
        request = without_nulls(parameters)
        entries = request.get("Entries")
        if isinstance(entries, list):
            if not all(isinstance(entry, dict) for entry in entries):
                return "The value for the field 'Entries' must be an ARRAY"
            # Shallow: a Detail of any JSON type is sent as its text.
            request["Entries"] = [_entry_shape(e) for e in entries]
        return shape_problem("events", "PutEvents", request)

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Send the entries; the response, ``EventBridge.FailedEntry`` if any entry failed."""
        parameters = request.parameters
        if not isinstance(parameters, dict):
            return not_an_object(request, "events:putEvents")
        call = {k: v for k, v in parameters.items() if v is not None}
        entries = call.get("Entries")
        if isinstance(entries, list):
            if not all(isinstance(entry, dict) for entry in entries):
                return unusable(request, "The value for the field 'Entries' must be an ARRAY")
            call["Entries"] = [self._entry(entry, request.execution_arn) for entry in entries]
        client = request.client(clients, "events")
        outcome = call_optimized(request, client, "PutEvents", call, EVENTS)
        if outcome.ok and isinstance(outcome.output, dict):
            if int(outcome.output.get("FailedEntryCount") or 0) > 0:
                response = {
                    "Entries": outcome.output.get("Entries", []),
                    "FailedEntryCount": outcome.output["FailedEntryCount"],
                }
                return TaskOutcome.failed(FAILED_ENTRY, json.dumps(response))
            return TaskOutcome.succeeded(
                {k: v for k, v in outcome.output.items() if k in ("Entries", "FailedEntryCount")}
            )
        return outcome

    @staticmethod
    def _entry(entry: dict[str, Any], execution_arn: str) -> dict[str, Any]:
        sent = {k: v for k, v in entry.items() if v is not None}
        if "Detail" in sent:
            sent["Detail"] = json_text(sent["Detail"])
        resources = sent.get("Resources")
        if resources is None or isinstance(resources, list):
            sent["Resources"] = [*(resources or []), *_own_arns(execution_arn)]
        return sent


def _entry_shape(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as validated: a Detail of any JSON type is sent as its text (shallow)."""
    shape = without_nulls(entry)
    if "Detail" in shape:
        shape["Detail"] = ""
    return shape


def _own_arns(execution_arn: str) -> list[str]:
    """The execution's ARN and its state machine's (none when the execution is unknown)."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[5] not in ("execution", "express"):
        return []
    machine = ":".join([*parts[:5], "stateMachine", parts[6]])
    return [execution_arn, machine]


INTEGRATIONS: tuple[Integration, ...] = (EventsPutEvents(),)
"""The EventBridge integrations StepFlow ships."""
