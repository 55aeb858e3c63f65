"""Shared by the cell-queue tests: a counting cells module per worker, recording clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stepflow.cells import CellModules, CellRegistry, EffectCall, EffectHandlers
from stepflow.cells.queues import activity_name
from stepflow.engine.codec import decode_state
from stepflow.testing import WorkflowEnvironment
from stepflow.worker import CellHandler, ServiceClient, Worker

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


def open_task(env: WorkflowEnvironment, arn: str) -> str:
    """The id (the attempt id) of the execution's one open task."""
    record = env.log.get(arn)
    assert record is not None
    [task_id] = decode_state(record.state).tasks
    return task_id
