"""Cells on workers that crash, stall or compete, in memory and on moto (cells-workers.md).

Workers are real :class:`~stepflow.worker.Worker` threads over a
:class:`~stepflow.worker.ServiceClient`; leases run on the virtual clock, so a
lease runs out when the test advances it. The environment's stepper loads no
cell: a routed cell can only run on a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from stepflow.activities import ActivityError
from stepflow.cells import IdempotencyKey
from stepflow.cells.journal import EffectRecord, LogJournal
from stepflow.testing import WorkflowEnvironment, open_environment
from stepflow.worker import CellHandler, Worker

from tests.unit.cells.queue_support import (
    MACHINE,
    QUEUE_ARN,
    WAIT,
    Calls,
    Recording,
    modules,
    open_task,
    serving,
    started,
    until,
    worker,
)
from tests.worker.cells_module import Bump


@pytest.fixture(params=["memory", "moto"])
def env(request: pytest.FixtureRequest) -> Iterator[WorkflowEnvironment]:
    """The environment routing every cell to queue ``orders``: in memory, and on moto."""
    with open_environment(request.param, cell_queues="*=orders") as environment:
        yield environment


def test_a_worker_crashed_after_two_effects_leaves_one_effect_to_the_next_worker(
    env: WorkflowEnvironment,
) -> None:
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
        b_handler = CellHandler(modules(calls, "b"), env.log)
        b = worker(second, b_handler, "b")
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
    [b_journal] = b_handler.journals
    assert b_journal.checks == 1  # one lease read, for effect 3: none for the replayed two
    assert len(first.tasks) == 1 and len(second.tasks) == 1  # one hand-out per lease
    assert [e["type"] for e in env.history(arn)].count("TaskStarted") == 1
    # The history shows b's run: two effects replayed from a's records, one performed.
    effects = [e["type"] for e in env.history(arn) if e["type"].startswith("StepFlowEffect")]
    assert effects == ["StepFlowEffectReplayed"] * 2 + ["StepFlowEffectSucceeded"]
    # The crashed worker's token names a superseded delivery: its report is refused.
    stale = first.tasks[0]["taskToken"]
    with pytest.raises(ActivityError) as refused:
        env.activities.send_task_success({"taskToken": stale, "output": '{"total":0}'})
    assert refused.value.code in ("TaskTimedOut", "InvalidToken")
    key = IdempotencyKey(arn, "Bump", task_id, 2, "run")
    assert LogJournal(env.log).recorded(key) == EffectRecord(
        Bump(n=2).effect_name(), Bump(n=2).digest(), True, {"n": 12}
    )


def test_a_stalled_worker_neither_overwrites_records_nor_performs_another_effect(
    env: WorkflowEnvironment,
) -> None:
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


def test_many_cells_on_competing_workers_perform_each_effect_once() -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")
    arns = [env.start(MACHINE, {"start": i}) for i in range(12)]
    env.run_until_idle()
    calls = Calls()
    clients = [Recording(env) for _ in range(3)]
    workers = [
        Worker(client, QUEUE_ARN, CellHandler(modules(calls, f"w{i}"), env.log), concurrency=2)
        for i, client in enumerate(clients)
    ]
    with serving(workers[0]), serving(workers[1]), serving(workers[2]):
        until(lambda: sum(w.counts["succeeded"] for w in workers) == 12)
    env.run_until_idle()
    assert [env.describe(arn)["output"] for arn in arns] == [
        f'{{"total":{i + 33}}}' for i in range(12)
    ]
    assert sum(len(c.tasks) for c in clients) == 12  # each task handed out once
    tokens = [token for _, _, token in calls.done]
    assert len(tokens) == 36 and len(set(tokens)) == 36  # each effect of each run once
