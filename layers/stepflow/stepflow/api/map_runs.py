"""The Map Run API: ListMapRuns, DescribeMapRun, UpdateMapRun (and a run's children).

A map run's head and its pointer live in the coordination log
(:mod:`stepflow.runtime.map_run_state`); the parent's history names its runs
(``MapRunStarted``'s ``mapRunArn``), which is what ListMapRuns reads.
"""

from __future__ import annotations

from typing import Any

from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError, invalid_arn, validation
from stepflow.api.paging import page_size, read_token, write_token
from stepflow.runtime import CoordinationLog, Stepper
from stepflow.runtime.map_run_state import RunHead, describe
from stepflow.runtime.map_runs import MapRunNotFoundError


class MapRunApi:
    """The map run operations of the API."""

    def __init__(self, scope: Scope, log: CoordinationLog, stepper: Stepper) -> None:
        self.scope, self.log, self.stepper = scope, log, stepper

    def describe_map_run(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeMapRun: status, dates, limits, item and execution counts, redrives."""
        return describe(self.head(p["mapRunArn"]))

    def list_map_runs(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListMapRuns of an execution, in the order they started, paged."""
        arn = p["executionArn"]
        self.scope.parse_execution(arn)
        if self.log.get(arn) is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        token = read_token(p.get("nextToken"), "mr")
        if token is not None and not (token.isascii() and token.isdigit()):  # forged: "-5", ""
            raise ApiError("InvalidToken", f"Invalid Token: '{p.get('nextToken')}'")
        start = int(token) if token else 0
        limit = page_size(p.get("maxResults"))
        arns = self._run_arns(arn)
        runs = []
        for run_arn in arns[start : start + limit]:
            try:
                head = self.head(run_arn)
            except ApiError:
                continue  # started in the history, its run not created yet
            entry: dict[str, Any] = {
                "executionArn": arn,
                "mapRunArn": run_arn,
                "stateMachineArn": machine_of(run_arn),
                "startDate": head.start_date,
            }
            if head.stop_date is not None and head.status != "RUNNING":
                entry["stopDate"] = head.stop_date
            runs.append(entry)
        after = str(start + limit) if start + limit < len(arns) else None
        return {"mapRuns": runs, **write_token("mr", after)}

    def update_map_run(self, p: dict[str, Any]) -> dict[str, Any]:
        """UpdateMapRun: MaxConcurrency and the tolerated failures, for the running run."""
        arn = p["mapRunArn"]
        fields = ("maxConcurrency", "toleratedFailureCount", "toleratedFailurePercentage")
        if not any(name in p for name in fields):
            raise validation(
                "at least one of maxConcurrency, toleratedFailureCount or "
                "toleratedFailurePercentage must be given"
            )
        percentage = p.get("toleratedFailurePercentage")
        if percentage is not None and not 0 <= float(percentage) <= 100:
            raise validation("toleratedFailurePercentage must be between 0 and 100")
        for name in ("maxConcurrency", "toleratedFailureCount"):
            if name in p and int(p[name]) < 0:
                raise validation(f"{name} must be at least 0")
        head = self.head(arn)
        if head.status != "RUNNING":
            raise validation(f"Map Run {arn} is not running")
        self.stepper.map_runs().update(
            arn,
            max_concurrency=p.get("maxConcurrency"),
            tolerated_count=p.get("toleratedFailureCount"),
            tolerated_percentage=percentage,
        )
        return {}

    def head(self, arn: str) -> RunHead:
        """The run's head, or InvalidArn / ResourceNotFound as AWS answers."""
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 8 or ":".join(parts[:5]) != self.scope.prefix or parts[5] != "mapRun":
            raise invalid_arn(str(arn), "map run")
        try:
            return self.stepper.map_runs().head(arn)
        except MapRunNotFoundError:
            raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'") from None

    def _run_arns(self, execution_arn: str) -> list[str]:
        """The map runs the execution's history records, in order (each once)."""
        found: dict[str, None] = {}
        token = None
        while True:
            page = self.log.history(execution_arn, next_token=token, limit=1000)
            for event in page.events:
                details = event.get("mapRunStartedEventDetails")
                if isinstance(details, dict) and isinstance(details.get("mapRunArn"), str):
                    found[details["mapRunArn"]] = None
            token = page.next_token
            if token is None:
                return list(found)


def machine_of(map_run_arn: str) -> str:
    """The ``stateMachine:<machine>/<label>`` ARN of a map run (AWS's for a run's children)."""
    head = map_run_arn.rsplit(":", 1)[0]
    return head.replace(":mapRun:", ":stateMachine:", 1)
