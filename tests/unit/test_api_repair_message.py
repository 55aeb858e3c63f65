"""The API's repair message: only after a failed send by default (issue 18, round 11).

Counted: the repair messages on the transition queue, with their delays, for a start whose
send goes through, one whose send fails, and the old mode (one before each commit).
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.aws.settings import REPAIR_DELAY_SECONDS, Settings
from stepflow.runtime import InMemoryLog, Message, Stepper
from stepflow.testing.handlers import task_invoker

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:M"
MACHINE = parse(
    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": FN + "a", "End": True}}}
)


class Bus:
    """Keeps every message with its delay; ``down`` refuses sends of ``down``'s kinds."""

    def __init__(self) -> None:
        self.sent: list[tuple[Message, int]] = []
        self.down: set[str] = set()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        if message.kind in self.down:
            raise ConnectionError("SQS refused the send")
        self.sent.append((message, delay_seconds))

    def repairs(self) -> list[int]:
        return [delay for m, delay in self.sent if m.kind == "repair"]


def _api(repair_delay: int) -> tuple[Stepper, Bus, Bus]:
    bus, tasks = Bus(), Bus()
    api = Stepper(
        log=InMemoryLog(),
        bus=bus,  # type: ignore[arg-type]
        definitions=lambda _arn: MACHINE,
        clock=lambda: 1_000.0,
        invoker=task_invoker({}),
        inline_tasks=False,
        tasks_bus=tasks,  # type: ignore[arg-type]
        repair_delay=repair_delay,
        failed_send_repair=REPAIR_DELAY_SECONDS,
    )
    return api, bus, tasks


def _start(api: Stepper) -> Any:
    return api.start_execution(state_machine_arn=SM, name="x", input={}, seed=1)


def test_the_default_is_no_repair_message_before_a_commit() -> None:
    assert Settings.model_fields["repair_delay_seconds"].default == 0


def test_a_start_whose_send_goes_through_sends_no_repair_message() -> None:
    api, bus, tasks = _api(repair_delay=0)
    _start(api)
    assert bus.sent == [] and [m.kind for m, _ in tasks.sent] == ["task"]


def test_a_start_whose_send_fails_leaves_one_delayed_repair_message() -> None:
    api, bus, tasks = _api(repair_delay=0)
    tasks.down = {"task"}
    with pytest.raises(ConnectionError):
        _start(api)
    assert bus.repairs() == [REPAIR_DELAY_SECONDS] and tasks.sent == []
    # its delivery re-sends the pending outbox, once
    tasks.down = set()
    ((repair, _),) = bus.sent
    api.handle_batch([repair])
    assert [m.kind for m, _ in tasks.sent] == ["task"]
    head = api.log.get(repair.execution_arn)
    assert head is not None and head.outbox == ()


def test_a_repair_message_before_the_commit_is_not_doubled_by_a_failed_send() -> None:
    api, bus, _tasks = _api(repair_delay=60)  # STEPFLOW_REPAIR_DELAY_SECONDS=60: as before
    _start(api)
    assert bus.repairs() == [60]
    api2, bus2, tasks2 = _api(repair_delay=60)
    tasks2.down = {"task"}
    with pytest.raises(ConnectionError):
        _start(api2)
    assert bus2.repairs() == [60]


def test_a_failed_repair_send_leaves_the_sends_own_error() -> None:
    api, bus, tasks = _api(repair_delay=0)
    tasks.down = {"task"}
    bus.down = {"repair"}
    with pytest.raises(ConnectionError, match="refused"):
        _start(api)
    assert bus.sent == [] and tasks.sent == []  # the outbox repair job is the backstop
