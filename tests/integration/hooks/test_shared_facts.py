"""The metrics and EventBridge hooks, built as deployed, share one head read per execution."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from stepflow.hooks import Dispatcher, ExecutionInfo, HookEvent
from stepflow.hooks.support import CachedFacts, ExecutionFacts
from stepflow.runtime.ports import ExecutionRecord

pytest.importorskip("boto3")

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import hooks_from_settings

SM = "arn:aws:states:us-east-1:1:stateMachine:m"


class CountingLog(DynamoDBLog):
    """A log whose heads are in memory and whose head reads are counted."""

    def __init__(self) -> None:  # no table: only get() is used
        self.reads: Counter[str] = Counter()

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        self.reads[execution_arn] += 1
        return ExecutionRecord(execution_arn, SM, "e", {"n": 1}, "RUNNING", 3, {}, (), 1.7e9)


class Events:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}


class StubWiring:
    """What the hook factories read of a Wiring: its log and its ``client`` method."""

    def __init__(self, log: DynamoDBLog, events: Events) -> None:
        self.log = log
        self.events = events
        self.denied_endpoints = None

    def client(self, service: str) -> Any:
        assert service == "events"
        return self.events


def _event(kind: Any, arn: str, id_: int, redrives: int = 0) -> HookEvent:
    info = ExecutionInfo(arn, SM, arn.rsplit(":", 1)[-1], redrive_count=redrives)
    return HookEvent(kind, info, id_, 1.7e9 + id_, {"id": id_, "type": kind}, None)


def test_one_head_read_per_execution_across_the_records_of_a_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log, events = CountingLog(), Events()
    wiring = StubWiring(log, events)
    settings = Settings(table_name="t", hooks="metrics,eventbridge")
    dispatcher = Dispatcher(hooks_from_settings(settings, wiring.client))
    x, y = (f"arn:aws:states:us-east-1:1:execution:m:{n}" for n in ("x", "y"))
    # GIVEN a batch of records (dispatched one by one, as the handler does) whose
    # executions started in earlier batches: x fails, is redriven and succeeds
    records = [
        [_event("ExecutionFailed", x, 10)],
        [_event("ExecutionFailed", y, 7)],
        [_event("ExecutionRedriven", x, 11, redrives=1)],
        [_event("ExecutionSucceeded", x, 20, redrives=1)],
    ]
    for record in records:
        dispatcher.dispatch(record)
    # THEN each execution's head was read once, for both hooks
    assert log.reads == Counter({x: 1, y: 1})
    assert len(events.entries) == 4
    capsys.readouterr()


def test_cached_facts_expire_and_stay_bounded() -> None:
    now = [0.0]
    reads: Counter[str] = Counter()

    def read(arn: str) -> ExecutionFacts:
        reads[arn] += 1
        return ExecutionFacts(1.0, "i" * 10)

    cached = CachedFacts(read, ttl=60, capacity=2, max_input_bytes=25, clock=lambda: now[0])
    for arn in ("a", "a", "b", "a"):
        cached(arn)
    assert reads == Counter({"a": 1, "b": 1})
    cached("c")  # three answers: over capacity (and over 25 bytes of input), "a" goes
    cached("a")
    assert reads["a"] == 2
    now[0] = 61.0  # stale: read anew
    cached("a")
    assert reads["a"] == 3
    cached.clear()
    cached("b")
    assert reads["b"] == 2


def test_one_default_and_one_case_rule_for_hook_names() -> None:
    from stepflow.aws.hooks_wiring import HookSettings
    from stepflow.aws.wiring import UnknownHookError

    # The hooks' settings and the process's agree: no hooks unless named
    assert HookSettings.model_validate({}).hooks == Settings(table_name="t").hooks == ""
    assert HookSettings.model_validate({}).enabled == []
    # AND names are case-sensitive in both (a misspelt one fails loudly in both)
    with pytest.raises(ValueError, match="unknown"):
        _ = HookSettings.model_validate({"STEPFLOW_HOOKS": "Metrics"}).enabled
    with pytest.raises(UnknownHookError):
        hooks_from_settings(Settings(table_name="t", hooks="Metrics"), lambda _: None)
