"""Cells on a task queue, in memory: routing, workers, crashes, stale workers (cells-workers.md).

The environment's stepper loads no cell at all: a routed cell can only run on
a worker. Workers are real :class:`~stepflow.worker.Worker` threads over a
:class:`~stepflow.worker.ServiceClient`; leases run on the virtual clock, so a
lease runs out when the test advances it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from stepflow.activities import ActivityError
from stepflow.cells import CellModules, CellRegistry, EffectCall, EffectHandlers, IdempotencyKey
from stepflow.cells.journal import EffectRecord, LogJournal
from stepflow.cells.queues import CellQueueError, CellQueues, activity_name
from stepflow.engine.codec import decode_state
from stepflow.testing import WorkflowEnvironment
from stepflow.worker import CellHandler, ServiceClient, TaskContext, TaskFailure, Worker

from tests.worker.cells_module import Bump, Step, ThreeBumps

WAIT = 10.0  # a bound for thread hand-offs; never reached when things work
CELL = "arn:aws:states:::stepflow:cell:three-bumps"
QUEUE_ARN = f"arn:aws:states:us-east-1:123456789012:activity:{activity_name('orders')}"
MACHINE = {"StartAt": "Bump", "States": {"Bump": {"Type": "Task", "Resource": CELL, "End": True}}}


def until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


class Calls:
    """Every performed effect, by worker: (worker, n, idempotency token)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: list[tuple[str, int, str]] = []

    def of(self, n: int) -> list[str]:
        return [who for who, m, _ in self.done if m == n]


def modules(
    calls: Calls, who: str, before: Callable[[int], None] = lambda n: None, plus: int = 10
) -> CellModules:
    """ThreeBumps with a handler that records its calls as ``who`` (result n + ``plus``)."""

    def bump(effect: Bump, call: EffectCall) -> Step:
        before(effect.n)
        with calls.lock:
            calls.done.append((who, effect.n, call.key.token))
        return Step(n=effect.n + plus)

    handlers = EffectHandlers()
    handlers.register(Bump, bump)
    cells = CellRegistry()
    cells.register(ThreeBumps)
    return CellModules(cells, handlers)


class Recording(ServiceClient):
    """A ServiceClient that keeps each task it is handed; ``dead`` makes it a dead process."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        super().__init__(env.activities, wait_seconds=0.05)
        self.tasks: list[dict[str, Any]] = []
        self.dead = False

    def _alive(self) -> None:
        if self.dead:
            raise ConnectionError("this worker's process is gone")

    def get_activity_task(self, **kwargs: Any) -> dict[str, Any]:
        self._alive()
        task = super().get_activity_task(**kwargs)
        if task:
            self.tasks.append(task)
        return task

    def send_task_success(self, **kwargs: Any) -> Any:
        self._alive()
        return super().send_task_success(**kwargs)

    def send_task_failure(self, **kwargs: Any) -> Any:
        self._alive()
        return super().send_task_failure(**kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> Any:
        self._alive()
        return super().send_task_heartbeat(**kwargs)

    def release_task(self, **kwargs: Any) -> Any:
        self._alive()
        return super().release_task(**kwargs)


@contextmanager
def serving(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(WAIT)


def worker(client: ServiceClient, handler: CellHandler, name: str) -> Worker:
    # Heartbeats every minute of real time: none is sent while a test runs, so a
    # lease lasts exactly the service's lease_seconds of virtual time.
    return Worker(
        client,
        QUEUE_ARN,
        handler,
        concurrency=1,
        name=name,
        heartbeat_seconds=60,
        grace_seconds=0.2,
    )


def started(env: WorkflowEnvironment, start: int = 1) -> str:
    arn = env.start(MACHINE, {"start": start})
    env.run_until_idle()
    return arn


def test_routes_pick_the_queue_by_name_major_and_star() -> None:
    queues = CellQueues.parse("pay:2=fast, pay=slow, saga:compensate=undo, *=rest")
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:2") == "fast"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:2.1.0") == "fast"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:1") == "slow"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay") == "slow"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:ship") == "rest"
    assert queues.queue_for("arn:aws:states:::stepflow:saga:compensate") == "undo"
    assert queues.queue_for("arn:aws:states:::lambda:invoke") is None
    assert queues.queue_for("arn:aws:states:::stepflow:cell:x.waitForTaskToken") is None
    assert CellQueues.parse("ship=q").queue_for("arn:aws:states:::stepflow:cell:pay") is None
    assert CellQueues.parse("*=q").queue_for("arn:aws:states:::stepflow:saga:compensate") == "q"
    assert not CellQueues.parse("") and not CellQueues.parse(" , ")


@pytest.mark.parametrize(
    "text",
    [
        "pay",  # no queue
        "pay=",  # empty queue
        "pay=a b",  # a queue SQS cannot name
        "pay=" + "q" * 61,  # too long for the activity's queue name
        "pay:x=q",  # a major that is no number
        "pay:1.2=q",  # a selector takes the major only
        "p/ay=q",
        "=q",
        "pay=a,pay=b",  # routed twice
        "*=a,*=b",
    ],
)
def test_a_malformed_route_is_refused(text: str) -> None:
    with pytest.raises(CellQueueError):
        CellQueues.parse(text)


def test_a_routed_cell_runs_on_a_worker_with_the_keys_of_an_inline_run() -> None:
    env = WorkflowEnvironment(cell_queues="three-bumps=orders")  # the stepper has no cell
    arn = started(env)
    task_id = open_task(env, arn)
    assert [e["type"] for e in env.history(arn)][-1] == "TaskScheduled"  # waiting for a worker
    calls = Calls()
    handler = CellHandler(modules(calls, "a"), env.log)
    with serving(worker(Recording(env), handler, "a")) as running:
        until(lambda: running.counts["succeeded"] == 1)
    env.run_until_idle()
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert env.describe(arn)["output"] == '{"total":34}'
    types = [e["type"] for e in env.history(arn)]
    assert types[2:5] == ["TaskScheduled", "TaskStarted", "TaskSucceeded"]
    assert not [t for t in types if t.startswith("Activity")]
    inline = [IdempotencyKey(arn, "Bump", task_id, i, "run").token for i in range(3)]
    assert [token for _, _, token in calls.done] == inline
    # The same cell inline (no route): the same keys for the same attempt.
    inline_env = WorkflowEnvironment(cells=modules(Calls(), "inline"))
    inline_arn = started(inline_env)
    assert inline_env.describe(inline_arn)["output"] == '{"total":34}'


def open_task(env: WorkflowEnvironment, arn: str) -> str:
    """The id (the attempt id) of the execution's one open task."""
    record = env.log.get(arn)
    assert record is not None
    [task_id] = decode_state(record.state).tasks
    return task_id


def test_a_worker_crashed_after_two_effects_leaves_one_effect_to_the_next_worker() -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")
    arn = started(env)
    task_id = open_task(env, arn)
    calls = Calls()
    first, second = Recording(env), Recording(env)

    class Crash(BaseException):
        """The process dies in the middle of the cell (nothing catches it)."""

    def crash_at_third(n: int) -> None:
        if n == 2:
            first.dead = True  # no report, release or heartbeat leaves the process
            raise Crash

    a = worker(first, CellHandler(modules(calls, "a", crash_at_third), env.log), "a")
    with serving(a):
        until(lambda: first.dead)
        b = worker(second, CellHandler(modules(calls, "b"), env.log), "b")
        with serving(b):
            # While a's lease lives, b is handed nothing (one delivery per lease).
            threading.Event().wait(0.3)
            assert second.tasks == []
            env.advance(61)  # a's lease (60 s) runs out
            until(lambda: b.counts["succeeded"] == 1)
    env.run_until_idle()
    assert env.describe(arn)["output"] == '{"total":34}'
    assert calls.of(0) == ["a"] and calls.of(1) == ["a"]  # zero more times
    assert calls.of(2) == ["b"]  # exactly once
    assert len(first.tasks) == 1 and len(second.tasks) == 1  # one hand-out per lease
    assert [e["type"] for e in env.history(arn)].count("TaskStarted") == 1
    # The crashed worker's token names a superseded delivery: its report is refused.
    stale = first.tasks[0]["taskToken"]
    with pytest.raises(ActivityError) as refused:
        env.activities.send_task_success({"taskToken": stale, "output": '{"total":0}'})
    assert refused.value.code in ("TaskTimedOut", "InvalidToken")
    key = IdempotencyKey(arn, "Bump", task_id, 2, "run")
    assert LogJournal(env.log).recorded(key) == EffectRecord(
        Bump(n=2).effect_name(), Bump(n=2).digest(), True, {"n": 12}
    )


def test_a_stalled_worker_neither_overwrites_records_nor_performs_another_effect() -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")
    arn = started(env)
    task_id = open_task(env, arn)
    calls = Calls()
    a_stalls, b_stalls = threading.Event(), threading.Event()
    a_in, b_in = threading.Event(), threading.Event()

    def a_before(n: int) -> None:
        if n == 1:  # a stalls in effect 1 (GC pause, network): its lease runs out
            a_in.set()
            a_stalls.wait(WAIT)

    def b_before(n: int) -> None:
        if n == 2:  # b is in effect 2 when a wakes up
            b_in.set()
            b_stalls.wait(WAIT)

    first, second = Recording(env), Recording(env)
    a_handler = CellHandler(modules(calls, "a", a_before, plus=10), env.log)
    b_handler = CellHandler(modules(calls, "b", b_before, plus=100), env.log)
    a = worker(first, a_handler, "a")
    b = worker(second, b_handler, "b")
    with serving(a):
        until(a_in.is_set)
        with serving(b):
            env.advance(61)
            until(b_in.is_set)  # b replayed effect 0, performed 1, is in 2 (no record yet)
            a_stalls.set()  # a wakes: records 1 (too late), then must not perform 2
            until(lambda: a.counts["refused"] == 1)
            b_stalls.set()
            until(lambda: b.counts["succeeded"] == 1)
    env.run_until_idle()
    assert calls.of(0) == ["a"]
    assert sorted(calls.of(1)) == ["a", "b"]  # a's was in flight when its lease ran out
    assert calls.of(2) == ["b"]  # the fence: a stopped before it
    [journal] = a_handler.journals
    assert journal.lost.is_set()
    # b's record of effect 1 stands; a's late write got it back instead of overwriting it.
    key = IdempotencyKey(arn, "Bump", task_id, 1, "run")
    recorded = LogJournal(env.log).recorded(key)
    assert recorded is not None and recorded.result == {"n": 101}
    assert env.describe(arn)["output"] == f'{{"total":{1 + 10 + 101 + 102}}}'


def test_the_handler_refuses_input_that_is_no_cell_task() -> None:
    env = WorkflowEnvironment()
    handler = CellHandler(modules(Calls(), "a"), env.log)
    context = TaskContext(
        token="x.t1.sig.1.sig", idempotency_key="k", activity_arn="", worker_name="w"
    )
    for hostile in [None, 7, [], {"Input": {}}, {"StepFlowCellTask": {"resource": 3}}]:
        with pytest.raises(TaskFailure) as failed:
            handler(hostile, context)
        assert failed.value.error == "StepFlow.Cell.InvalidTask"
