"""Executions: start, describe, list, history, stop — over the durable runtime."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

from stepflow.api.access import current_principal
from stepflow.api.arns import check_name
from stepflow.api.errors import ApiError, validation
from stepflow.api.machines import Machines, describe, parse_json, version_key
from stepflow.api.map_runs import MapRunApi, machine_of
from stepflow.api.paging import page_size, read_token, write_token
from stepflow.api.redrive import direct_redrive_refusal, redrive_fields
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.runtime import CoordinationLog, ExecutionInputMismatchError, ExecutionRecord, Stepper

STARTED_BY = "startedBy"
STOPPED_BY = "stoppedBy"
REDRIVEN_BY = "redrivenBy"
_PRINCIPALS = (STARTED_BY, STOPPED_BY, REDRIVEN_BY)
"""Head attributes naming who started, stopped (last) and redrove (last) an execution."""
"""The principal ARN that started an execution: a head attribute, and StepFlow's addition to
DescribeExecution (botocore ignores response fields its model lacks)."""

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
REDRIVE_FILTERS = ("REDRIVEN", "NOT_REDRIVEN")
ALIAS = "alias_arn"
"""Head attribute: the alias ARN an execution was started through (``stateMachineAliasArn``)."""


class Executions:
    """The execution operations of the API."""

    def __init__(self, machines: Machines, log: CoordinationLog, stepper: Stepper) -> None:
        self.machines, self.log, self.stepper = machines, log, stepper
        self.scope = machines.scope

    def start_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """StartExecution: idempotent by name while running with the same input."""
        record = self.start(p, attributes=_principal(STARTED_BY))
        return {"executionArn": record.execution_arn, "startDate": record.start_date}

    def start(
        self,
        p: dict[str, Any],
        *,
        attributes: dict[str, Any],
        caller: dict[str, Any] | None = None,
    ) -> ExecutionRecord:
        """StartExecution's semantics, for the API and for a Task (:mod:`stepflow.api.nested`).

        ``attributes`` go into the new head (who started it); ``caller`` is the
        ``.sync`` task that waits for its end. Raises :class:`ApiError`.
        """
        given = p["stateMachineArn"]
        target, role = self.machines.target(given)
        machine = self.scope.parse_machine(target)[0]
        qualifier = self.scope.parse_machine(given)[1]
        if qualifier is not None and not qualifier.isdigit():  # resolved through an alias
            attributes = {**attributes, ALIAS: given}
        name = check_name(p.get("name") or str(uuid.uuid4()), "execution name")
        text = p.get("input", "{}")
        value = parse_json(text, "execution input")
        arn = self.scope.execution_arn(machine, name)
        existing = self.log.get(arn)
        if existing is not None and existing.status != "RUNNING":
            raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        try:
            return self.stepper.start_execution(
                state_machine_arn=target,
                name=name,
                input=value,
                seed=secrets.randbits(63),
                attributes=attributes,
                role_arn=role,
                caller=caller,
            )
        except ExecutionInputMismatchError:
            raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'") from None

    def describe_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeExecution: status, input, output, error and cause, dates as epoch seconds."""
        record = self.record(p["executionArn"])
        result = self.summary(record)
        state = decode_state(record.state)
        data = p.get("includedData", "ALL_DATA") != "METADATA_ONLY"
        result["inputDetails"] = {"included": data}
        if data:
            result["input"] = dumps(record.input)
        if state.status == "SUCCEEDED":
            result["outputDetails"] = {"included": data}
            if data:
                result["output"] = dumps(state.output)
        for key in ("error", "cause"):
            if getattr(state, key) is not None and state.status != "SUCCEEDED":
                result[key] = getattr(state, key)
        result.update({k: record.attributes[k] for k in _PRINCIPALS if k in record.attributes})
        if "map_run_arn" in record.attributes:
            result["mapRunArn"] = record.attributes["map_run_arn"]
        result.update(redrive_fields(record, state, self.stepper.clock(), self.stepper.limits))
        return result

    def describe_state_machine_for_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """The definition an execution runs (its revision or version, not the latest)."""
        record = self.record(p["executionArn"])
        name, qualifier = self.scope.parse_machine(record.state_machine_arn)
        if qualifier is not None and qualifier.isdigit():
            doc = self.machines.registry.get(name, version_key(int(qualifier)))
            arn = record.state_machine_arn
        else:
            doc = self.machines.registry.get(name, "HEAD")
            arn = self.scope.machine_arn(name)
            definition = self.machines.registry.definition(record.state_machine_arn)
            if doc is not None and definition is not None:
                doc = {**doc, "definition": definition, "revisionId": qualifier}
        if doc is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        result = describe(doc, arn, status=False)
        result["updateDate"] = doc.get("updateDate", doc["creationDate"])
        del result["type"], result["creationDate"]
        return result

    def list_executions(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListExecutions of a state machine (or of one version or alias), newest first, paged.

        ``redriveFilter`` (REDRIVEN, NOT_REDRIVEN), a version or an alias leave the
        other executions out of the page (which may then be short).
        """
        redrive = p.get("redriveFilter")
        if redrive is not None and redrive not in REDRIVE_FILTERS:
            raise validation(f"redriveFilter must be one of {', '.join(REDRIVE_FILTERS)}")
        if ("mapRunArn" in p) == ("stateMachineArn" in p):
            raise validation("exactly one of stateMachineArn and mapRunArn must be given")
        if "mapRunArn" in p:
            return self._map_run_children(p)
        arn = p["stateMachineArn"]
        name, qualifier = self.scope.parse_machine(arn)
        status = p.get("statusFilter")
        if status is not None and status not in STATUSES:
            raise validation(f"statusFilter must be one of {', '.join(STATUSES)}")
        if qualifier is None:
            self.machines.head(arn)
        elif qualifier.isdigit():
            self.machines.version(name, int(qualifier))
        else:
            self.machines.alias(name, qualifier)
        token = read_token(p.get("nextToken"), "ex")
        try:
            records, after = self.log.list_executions(
                self.scope.machine_arn(name),
                status=status,
                next_token=token or None,
                limit=page_size(p.get("maxResults")),
            )
        except ValueError:
            raise ApiError("InvalidToken", f"Invalid Token: '{p.get('nextToken')}'") from None
        if qualifier is not None and qualifier.isdigit():  # a version's executions only
            records = [r for r in records if r.state_machine_arn == arn]
        elif qualifier is not None:  # those started through the alias
            records = [r for r in records if r.attributes.get(ALIAS) == arn]
        if redrive is not None:
            records = [r for r in records if _redriven(r) == (redrive == "REDRIVEN")]
        return {"executions": [self.summary(r) for r in records], **write_token("ex", after)}

    def _map_run_children(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListExecutions(mapRunArn): the child executions of a map run."""
        run_arn = p["mapRunArn"]
        MapRunApi(self.scope, self.log, self.stepper).head(run_arn)  # InvalidArn, not found
        status = p.get("statusFilter")
        if status is not None and status not in STATUSES:
            raise validation(f"statusFilter must be one of {', '.join(STATUSES)}")
        token = read_token(p.get("nextToken"), "ex")
        try:
            records, after = self.log.list_executions(
                run_arn,
                status=status,
                next_token=token or None,
                limit=page_size(p.get("maxResults")),
            )
        except ValueError:
            raise ApiError("InvalidToken", f"Invalid Token: '{p.get('nextToken')}'") from None
        if p.get("redriveFilter") is not None:
            records = [r for r in records if _redriven(r) == (p["redriveFilter"] == "REDRIVEN")]
        return {"executions": [self.summary(r) for r in records], **write_token("ex", after)}

    def get_execution_history(self, p: dict[str, Any]) -> dict[str, Any]:
        """GetExecutionHistory: pages of events, oldest or (reverseOrder) newest first."""
        record = self.record(p["executionArn"])
        limit = page_size(p.get("maxResults"))
        reverse = bool(p.get("reverseOrder"))
        kind = "hr" if reverse else "hf"
        position = _history_position(p.get("nextToken"), kind, record.execution_arn)
        try:
            page = self.log.history(
                record.execution_arn, next_token=position, limit=limit, reverse=reverse
            )
        except ValueError:
            raise ApiError("InvalidToken", f"Invalid Token: '{p.get('nextToken')}'") from None
        events, after = page.events, page.next_token
        if p.get("includeExecutionData") is False:
            events = [_without_data(event) for event in events]
        owned = None if after is None else f"{_owner(record.execution_arn)}/{after}"
        return {"events": events, **write_token(kind, owned)}

    def stop_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """StopExecution: abort a running execution (a finished one keeps its end)."""
        record = self.record(p["executionArn"])
        stopped = self.stepper.stop_execution(
            record.execution_arn,
            error=p.get("error"),
            cause=p.get("cause"),
            attributes=_principal(STOPPED_BY),
        )
        stop_date = (stopped or record).stop_date
        return {"stopDate": stop_date if stop_date is not None else self.stepper.clock()}

    def redrive_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """RedriveExecution: run a stopped execution again from the state it stopped in.

        Only FAILED, TIMED_OUT and ABORTED executions qualify, within
        ``Limits.redrive_window_seconds`` (AWS: 14 days) of their stop; the history
        goes on with ``ExecutionRedriven``.
        """
        record = self.record(p["executionArn"])
        reason = direct_redrive_refusal(
            record, decode_state(record.state), self.stepper.clock(), self.stepper.limits
        )
        if reason is not None:
            raise ApiError(
                "ExecutionNotRedrivable",
                f"Execution {record.execution_arn} cannot be redriven: {reason}",
            )
        redriven = self.stepper.redrive_execution(
            record.execution_arn, attributes=_principal(REDRIVEN_BY)
        )
        if redriven is None or (redriven.status == record.status and redriven.seq == record.seq):
            raise ApiError(
                "ExecutionNotRedrivable", f"Execution {record.execution_arn} cannot be redriven"
            )
        return {"redriveDate": self.stepper.clock()}

    def record(self, arn: str) -> ExecutionRecord:
        """The execution's record, or ExecutionDoesNotExist."""
        self.scope.parse_execution(arn)
        record = self.log.get(arn)
        if record is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return record

    def summary(self, record: ExecutionRecord) -> dict[str, Any]:
        """The fields DescribeExecution and ListExecutions share."""
        name, qualifier = self.scope.parse_machine(record.state_machine_arn)
        run = record.attributes.get("map_run_arn")
        result: dict[str, Any] = {
            "executionArn": record.execution_arn,
            "stateMachineArn": machine_of(run) if run else self.scope.machine_arn(name),
            "name": record.name,
            "status": record.status,
            "startDate": record.start_date,
        }
        if record.stop_date is not None:
            result["stopDate"] = record.stop_date
        if qualifier is not None and qualifier.isdigit() and not run:
            result["stateMachineVersionArn"] = record.state_machine_arn
        if ALIAS in record.attributes:
            result["stateMachineAliasArn"] = record.attributes[ALIAS]
        if run:
            result["mapRunArn"] = run
        return result


def _owner(execution_arn: str) -> str:
    """The tag a history token carries of its execution (a token is one execution's)."""
    return hashlib.sha256(execution_arn.encode()).hexdigest()[:16]


def _history_position(token: str | None, kind: str, execution_arn: str) -> str | None:
    """The log's token inside a history token of ``kind`` for ``execution_arn``, or InvalidToken.

    A token names its direction (``kind``) and its execution: one of another
    execution, or of the other direction, is refused rather than misread.
    """
    position = read_token(token, kind)
    if position is None:
        return None
    owner, sep, inner = position.partition("/")
    if not sep or not inner or not hmac.compare_digest(owner, _owner(execution_arn)):
        raise ApiError("InvalidToken", f"Invalid Token: '{token}'")
    return inner


def _redriven(record: ExecutionRecord) -> bool:
    return int(record.state.get("redrive_count") or 0) > 0


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event without its input and output payloads (includeExecutionData=false)."""
    stripped = dict(event)
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            stripped[key] = {k: v for k, v in value.items() if k not in ("input", "output")}
    return stripped


def _principal(key: str) -> dict[str, str]:
    """``{key: the calling principal}``, or nothing when no principal is known."""
    principal = current_principal()
    return {} if principal is None else {key: principal}
