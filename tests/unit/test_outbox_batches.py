"""OutboxSender.flush: an outbox of several messages goes out in one send_batch call.

A map run's commit sends up to a hundred child messages; on SQS, one
SendMessageBatch per ten instead of one SendMessage each. A bus without
``send_batch`` (the in-memory bus) still gets each message through ``send``.
"""

from __future__ import annotations

from typing import Any

from stepflow.runtime import InMemoryBus, InMemoryLog, Message
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.repair import OutboxSender
from stepflow.runtime.task_groups import group_members

ARN = "arn:aws:states:us-east-1:123456789012:execution:M:e"


class BatchingBus:
    def __init__(self) -> None:
        self.sends: list[tuple[Message, int]] = []
        self.batches: list[list[tuple[Message, int]]] = []

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        self.sends.append((message, delay_seconds))

    def send_batch(self, messages: list[tuple[Message, int]]) -> None:
        self.batches.append(list(messages))


def record(outbox: tuple[Message, ...]) -> ExecutionRecord:
    return ExecutionRecord(ARN, "sm", "e", None, "RUNNING", 1, {}, outbox)


def sender(bus: Any, tasks: Any, log: InMemoryLog) -> OutboxSender:
    return OutboxSender(
        log=log,
        bus=bus,
        clock=lambda: 100.0,
        inline_tasks=False,
        router=None,
        tasks_bus=tasks,
        repair_delay=0,
    )


def outbox() -> tuple[Message, ...]:
    children = tuple(Message(f"{ARN}/c{i}", f"{ARN}#1#{i}", "child", {"i": i}) for i in range(3))
    task = Message(ARN, f"{ARN}#1#3", "task", {"task_id": "t"})
    timer = Message(ARN, f"{ARN}#1#4", "event", {"type": "TimerFired"}, not_before=130.0)
    return (*children, task, timer)


def test_an_outbox_of_several_messages_is_one_batch_and_tasks_go_to_their_queue() -> None:
    bus, tasks, log = BatchingBus(), BatchingBus(), InMemoryLog()
    sender(bus, tasks, log).flush(record(outbox()))
    assert bus.sends == []
    (batch,) = bus.batches
    assert [(m.id.rsplit("#", 1)[-1], delay) for m, delay in batch] == [
        ("0", 0),
        ("1", 0),
        ("2", 0),
        ("4", 30),
    ]
    # the lone task travels as a group of one (its claim may share its events' item)
    assert [m.id for m, _ in tasks.sends] == [f"{ARN}#1#3+1"]
    assert [group_members(m) for m, _ in tasks.sends] == [[outbox()[3]]]


def test_a_single_message_is_sent_alone() -> None:
    bus = BatchingBus()
    sender(bus, None, InMemoryLog()).flush(record(outbox()[:1]))
    assert bus.batches == [] and [m.id for m, _ in bus.sends] == [f"{ARN}#1#0"]


def test_a_bus_without_send_batch_gets_each_message() -> None:
    bus = InMemoryBus()
    sender(bus, None, InMemoryLog()).flush(record(outbox()))
    assert [m.id.rsplit("#", 1)[-1] for m in bus.sent] == ["0", "1", "2", "3", "4"]


def test_the_tasks_of_one_commit_go_to_the_tasks_queue_as_one_group_message() -> None:
    # GIVEN a commit that schedules a Map's ten tasks and a timer (deployed: a tasks queue)
    tasks_of_map = tuple(
        Message(ARN, f"{ARN}#1#{i}", "task", {"task_id": f"t{i}"}) for i in range(10)
    )
    timer = Message(ARN, f"{ARN}#1#10", "event", {"type": "TimerFired"}, not_before=130.0)
    bus, tasks, log = BatchingBus(), BatchingBus(), InMemoryLog()
    # WHEN its outbox is flushed
    sender(bus, tasks, log).flush(record((*tasks_of_map, timer)))
    # THEN the ten tasks are ONE message on the tasks queue (a group: issue 18, round 3;
    # before, one send_batch of ten), holding each task's message
    (sent,) = tasks.sends
    assert tasks.batches == []
    assert sent[1] == 0 and group_members(sent[0]) == list(tasks_of_map)
    # AND the timer went to the transition queue on its own
    assert [m.id for m, _ in bus.sends] == [timer.id] and bus.batches == []
