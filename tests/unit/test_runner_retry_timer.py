"""A Task's retry fires on the runner, which runs the new attempt in place (round 11).

A runner's commit of a failed attempt arms the retry's timer; its message goes to the
tasks queue (``repair.rides_tasks``), and the runner that receives it commits
``TimerFired`` and runs the new attempt in the same invocation: no hop through the
transition queue. Counted: each handler's calls, every message sent to each queue, the
outbox clears and the commits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.runtime import InMemoryLog, Message, Stepper
from stepflow.runtime.in_place import InPlace
from stepflow.runtime.repair import rides_tasks
from stepflow.runtime.task_groups import group_members
from stepflow.testing.handlers import task_invoker

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Retry"
START = 1_000.0

RETRY = {
    "StartAt": "A",
    "States": {
        "A": {
            "Type": "Task",
            "Resource": FN + "a",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2}],
            "Next": "B",
        },
        "B": {"Type": "Task", "Resource": FN + "b", "End": True},
    },
}


class Bus:
    """Keeps every message sent, with its delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[Message, int]] = []

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))

    def messages(self) -> list[Message]:
        return [m for m, _ in self.sent]


class Log(InMemoryLog):
    """The in-memory log, its commits and outbox clears counted."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.clears = 0
        self.fail = False  # True: commits raise (the table is unreachable)
        self.fail_arn = ""  # commits of this execution raise

    def commit(self, record: Any, expected_seq: int, events: Any, **kwargs: Any) -> None:
        if self.fail or record.execution_arn == self.fail_arn:
            raise ConnectionError("the table is unreachable")
        super().commit(record, expected_seq, events, **kwargs)
        self.commits += 1

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        super().clear_outbox(execution_arn, seq)
        self.clears += 1


class World:
    """An execution of ``machine`` started, its first task message delivered to ``runner``."""

    def __init__(self, machine: dict[str, Any], *, task_runner: bool = True) -> None:
        self.calls = Counter[str]()
        self.seen: list[tuple[str, int, int]] = []  # per call: task, tasks and bus sends so far
        self.now = [START]
        self.log, self.bus, self.tasks = Log(), Bus(), Bus()
        parsed = parse(machine)

        def handler(name: str) -> Any:
            def run(payload: Any) -> Any:  # counted by task and execution ("who")
                key = name + str(payload.get("who", "")) if isinstance(payload, dict) else name
                self.calls[key] += 1
                self.seen.append((key, len(self.tasks.sent), len(self.bus.sent)))
                if name == "a" and self.calls[key] == 1:
                    raise RuntimeError("the first attempt fails")
                return {"ran": name}

            return run

        def stepper(**kwargs: Any) -> Stepper:
            return Stepper(
                log=self.log,
                bus=self.bus,  # type: ignore[arg-type]
                definitions=lambda _arn: parsed,
                clock=lambda: self.now[0],
                invoker=task_invoker({n: handler(n) for n in "abc"}),
                inline_tasks=False,
                tasks_bus=self.tasks,  # type: ignore[arg-type]
                **kwargs,
            )

        record = stepper().start_execution(state_machine_arn=SM, name="x", input={}, seed=1)
        self.arn = record.execution_arn
        self.runner = stepper(task_concurrency=10, task_runner=task_runner)
        self.runner.task_group_wait = 60.0
        (self.first,) = self.tasks.messages()
        self.tasks.sent.clear()
        self.log.commits = self.log.clears = 0

    def status(self) -> str:
        head = self.log.get(self.arn)
        assert head is not None
        return head.status


def _timer(world: World) -> tuple[Message, int]:
    """The retry's timer message, the one message sent since (to the tasks queue)."""
    assert world.bus.sent == []  # nothing to the transition queue
    ((timer, delay),) = world.tasks.sent
    assert timer.kind == "event" and timer.body["type"] == "TimerFired"
    return timer, delay


def test_the_retry_fires_on_the_runner_and_its_attempt_runs_in_place_once() -> None:
    world = World(RETRY)
    # WHEN the runner runs A's first attempt, which fails
    assert world.runner.handle_batch([world.first]) == []
    # THEN its commit sends the retry's timer to the tasks queue, due in 5 s
    timer, delay = _timer(world)
    assert delay == 5 and timer.not_before == START + 5
    assert world.calls == {"a": 1} and world.log.clears == 1
    world.tasks.sent.clear()
    world.log.commits = world.log.clears = 0
    # WHEN the runner receives the timer, due
    world.now[0] = START + 5
    assert world.runner.handle_batch([timer]) == []
    # THEN it fired the retry, ran A's second attempt and B in place: nothing was sent,
    # nothing cleared, and each attempt ran once
    assert world.calls == {"a": 2, "b": 1}
    assert world.tasks.sent == [] and world.bus.sent == []
    assert world.log.clears == 0 and world.log.commits == 3  # TimerFired, A's result, B's
    assert world.status() == "SUCCEEDED"
    # AND a duplicate of the timer changes nothing
    assert world.runner.handle_batch([timer]) == []
    assert world.calls == {"a": 2, "b": 1} and world.tasks.sent == [] and world.bus.sent == []


def test_a_timer_that_fails_on_the_runner_goes_to_the_stepper_not_back_to_the_tasks_queue() -> None:
    """The tasks queue would redeliver it in 16 minutes, the transition queue in 3."""
    world = World(RETRY)
    world.runner.handle_batch([world.first])
    timer, _ = _timer(world)
    world.tasks.sent.clear()
    world.now[0] = START + 5
    world.log.fail = True
    assert world.runner.handle_batch([timer]) == []  # acknowledged: it went to the stepper
    assert world.bus.messages() == [timer] and world.tasks.sent == []
    assert world.calls == {"a": 1}
    world.log.fail = False
    world.bus.sent.clear()
    stepper = Stepper(
        log=world.log,
        bus=world.bus,  # type: ignore[arg-type]
        definitions=lambda _arn: parse(RETRY),
        clock=lambda: world.now[0],
        invoker=task_invoker({}),
        inline_tasks=False,
        tasks_bus=world.tasks,  # type: ignore[arg-type]
    )
    assert stepper.handle_batch([timer]) == []  # the stepper fires it: the attempt is sent
    (group,) = world.tasks.messages()
    assert [m.body["resource"] for m in group_members(group) or [group]] == [FN + "a"]


def test_a_stepper_that_is_not_the_runner_sends_the_attempt() -> None:
    """The same timer on a stepper without ``task_runner``: the attempt goes to the queue."""
    world = World(RETRY, task_runner=False)
    world.runner.handle_batch([world.first])
    timer, _ = _timer(world)
    world.tasks.sent.clear()
    world.log.clears = 0
    world.now[0] = START + 5
    assert world.runner.handle_batch([timer]) == []
    assert world.calls == {"a": 1}  # not run here
    (group,) = world.tasks.messages()
    (attempt,) = group_members(group) or [group]
    assert attempt.body["resource"] == FN + "a" and world.log.clears == 1
    # the attempt's message runs it once
    world.tasks.sent.clear()
    world.runner.handle_batch([group])
    assert world.calls["a"] == 2


def _timer_and_a_task(world: World) -> tuple[Message, Message]:
    """x's retry timer, due, and the first task of a second execution y (its first fails)."""
    world.runner.handle_batch([world.first])
    timer, _ = _timer(world)
    world.tasks.sent.clear()
    world.now[0] = START + 5
    second = world.runner.start_execution(
        state_machine_arn=SM, name="y", input={"who": "y"}, seed=1
    )
    (task,) = [m for m in world.tasks.messages() if m.execution_arn == second.execution_arn]
    world.tasks.sent.clear()
    return timer, task


def test_a_timer_beside_tasks_in_one_batch_sends_its_attempt_which_runs_once() -> None:
    """A batch of a timer and another execution's task: the attempt is sent, not held."""
    world = World(RETRY)
    timer, task = _timer_and_a_task(world)
    assert world.runner.handle_batch([timer, task]) == []
    # the timer's attempt was sent, not held (held, it would start only after the batch's
    # task, and a held attempt must start at once): it runs once, from its message
    sent = [x for m in world.tasks.messages() for x in (group_members(m) or [m])]
    assert [m.execution_arn for m in sent if m.body.get("resource") == FN + "a"] == [world.arn]
    assert world.calls == {"a": 1, "ay": 1}  # y's first attempt failed: its timer was sent
    world.runner.handle_batch([m for m in world.tasks.messages() if m.kind == "task"])
    assert world.calls == {"a": 2, "b": 1, "ay": 1} and world.status() == "SUCCEEDED"


def test_a_wait_states_timer_stays_on_the_transition_queue() -> None:
    wait = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": FN + "c", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 7, "Next": "B"},
            "B": {"Type": "Task", "Resource": FN + "b", "End": True},
        },
    }
    world = World(wait)
    assert world.runner.handle_batch([world.first]) == []
    assert world.tasks.sent == [] and world.calls == {"c": 1}
    ((timer, delay),) = world.bus.sent
    assert timer.body["type"] == "TimerFired" and delay == 7


def _replace(head: Any, state: dict[str, Any]) -> Any:
    return replace(head, state=state)


def _fired(timer_id: Any) -> Message:
    return Message("arn:x", "arn:x#2#0", "event", {"type": "TimerFired", "timer_id": timer_id})


@pytest.mark.parametrize(
    ("timers", "timer_id", "rides"),
    [
        ({"w1": ["f1", "retry"]}, "w1", True),
        ({"w1": ["f1", "wait"]}, "w1", False),
        ({"w1": ["f1", "timeout:t1"]}, "w1", False),
        ({"w1": ["f1", "retry"]}, "w2", False),  # another timer
        ({"w1": ["f1", "retry"]}, ["w1"], False),  # an id of the wrong type
        ({"w1": ["f1", "retry", "x"]}, "w1", False),  # malformed entries
        ({"w1": "retry"}, "w1", False),
        ({"w1": None}, "w1", False),
        (["w1"], "w1", False),  # timers of the wrong type
        (None, "w1", False),  # no timers at all
    ],
)
def test_only_a_retrys_timer_rides_the_tasks_queue(timers: Any, timer_id: Any, rides: bool) -> None:
    record = _replace(_head(), {"timers": timers} if timers is not None else {})
    assert rides_tasks(record, _fired(timer_id)) is rides


def test_messages_that_are_not_a_fired_timer_never_ride_the_tasks_queue() -> None:
    record = _replace(_head(), {"timers": {"w1": ["f1", "retry"]}})
    body = {"type": "TimerFired", "timer_id": "w1"}
    assert not rides_tasks(record, Message("arn:x", "arn:x#2#0", "task", body))
    assert not rides_tasks(record, Message("arn:x", "arn:x#2#0", "event", {"type": "Stop"}))
    assert not rides_tasks(record, Message("arn:x", "arn:x#2#0", "repair", {}))


def _head() -> Any:
    world = World(RETRY)
    head = world.log.get(world.arn)
    assert head is not None
    return head


def test_a_lone_task_handed_off_goes_to_the_tasks_queue_not_the_steppers() -> None:
    """review 36: a hand-off sent on the transition queue ran on the stepper Lambda (30 s)."""
    world = World(RETRY)
    assert "group" in world.first.body  # a lone task: a group of one
    # WHEN the invocation has less time left than the group claim needs (no TimeoutSeconds)
    assert world.runner.handle_batch([world.first], None, lambda: 100.0) == []
    # THEN A is handed off, in the single shape, to the tasks queue; nothing to the stepper
    assert world.calls == {} and world.bus.sent == []
    ((alone, delay),) = world.tasks.sent
    assert "group" not in alone.body and alone.body["resource"] == FN + "a" and delay == 0
    # AND it runs once from there
    world.tasks.sent.clear()
    assert world.runner.handle_batch([alone]) == []
    assert world.calls == {"a": 1}


def test_a_timer_beside_tasks_sends_its_attempt_before_the_tasks_run() -> None:
    """review 36: applied after the batch's tasks, the retry waited for the slowest of them."""
    world = World(RETRY)
    timer, task = _timer_and_a_task(world)
    world.seen.clear()
    assert world.runner.handle_batch([task, timer]) == []
    # y's task started with x's attempt already sent (the first send of the batch)
    assert world.seen[0][0] == "ay" and world.seen[0][1] >= 1
    first = world.tasks.messages()[0]
    assert [m.body["resource"] for m in group_members(first) or [first]] == [FN + "a"]
    assert first.execution_arn == world.arn


def test_a_timer_that_fails_on_the_runner_is_sent_before_the_rounds_run() -> None:
    """review 36: sent only after the in-place rounds, a long attempt delayed it as long."""
    world = World(RETRY)
    timer, task = _timer_and_a_task(world)
    world.runner.handle_batch([task])  # y's first attempt fails: y's timer
    (y_timer,) = [m for m in world.tasks.messages() if m.kind == "event" and m is not timer]
    world.tasks.sent.clear()
    world.bus.sent.clear()
    world.seen.clear()
    world.now[0] = START + 10
    world.log.fail_arn = world.arn  # x's TimerFired cannot be committed
    assert world.runner.handle_batch([timer, y_timer]) == []
    # y's attempt ran in place, with x's timer already handed to the transition queue
    assert world.seen[0][0] == "ay" and world.seen[0][2] == 1
    assert world.bus.messages() == [timer]
    assert world.calls["ay"] == 2 and world.calls["a"] == 1


def test_with_lone_task_groups_off_a_lone_task_keeps_the_single_shape() -> None:
    """STEPFLOW_CLAIMS_IN_EVENTS=false (the first deploy of an upgrade): as before round 11."""
    world = World(RETRY)
    world.runner.lone_task_groups = False
    second = world.runner.start_execution(state_machine_arn=SM, name="y", input={}, seed=1)
    (task,) = [m for m in world.tasks.messages() if m.execution_arn == second.execution_arn]
    assert "group" not in task.body and task.body["resource"] == FN + "a"
    in_place = InPlace(None, 900.0, lone_groups=False)
    head = world.log.get(second.execution_arn)
    assert head is not None and in_place.hold(head, [task])
    assert in_place.take() == [task]


def test_a_task_the_runner_has_no_time_for_goes_back_to_the_tasks_queue() -> None:
    """review 37: a batch's task set aside when time ran out went to the transition queue."""
    one = {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": FN + "b", "End": True}}}
    world = World(one)
    answers = iter([True, False])  # time for the first message only
    copy = world.first  # a second delivery stands in for the batch's second task
    assert world.runner.handle_batch([world.first, copy], lambda: next(answers, False)) == []
    assert all(m.kind != "task" for m in world.bus.messages())
    assert [m.id for m in world.tasks.messages()] == [world.first.id]
    assert world.calls == {"b": 1}
