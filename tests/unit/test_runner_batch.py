"""The runner takes up to ten task messages per invocation and runs them side by side.

One receive, one delete and one Lambda request for a Map's ten tasks instead of ten
of each (issue 18's cost goal), while a slow task still holds no other's result: each
task sends its result as it ends. A task that cannot run now fails alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from stepflow.asl import parse
from stepflow.runtime import InMemoryLog, Message, Stepper, leases
from stepflow.runtime.messages import decode_event, task_lease_key
from stepflow.runtime.task_runs import TaskLeaseHeldError
from stepflow.testing.handlers import task_invoker

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Three"
THREE = {
    "StartAt": "All",
    "States": {
        "All": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": n, "States": {n: {"Type": "Task", "Resource": FN + n, "End": True}}}
                for n in ("a", "b", "c")
            ],
            "End": True,
        }
    },
}


class RecordingBus:
    """A thread-safe bus that keeps what is sent (the runner sends from its threads)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        with self._lock:
            self.sent.append(message)


def setup(handlers: dict[str, Any]) -> tuple[InMemoryLog, RecordingBus, Stepper, list[Message]]:
    """An execution waiting on three tasks, their messages, and a runner with ten workers."""
    log, bus, tasks = InMemoryLog(), RecordingBus(), RecordingBus()
    machine = parse(THREE)

    def stepper(concurrency: int) -> Stepper:
        return Stepper(
            log=log,
            bus=bus,  # type: ignore[arg-type]
            definitions=lambda _arn: machine,
            clock=lambda: 1_000.0,
            invoker=task_invoker(handlers),
            inline_tasks=False,
            tasks_bus=tasks,  # type: ignore[arg-type]
            task_concurrency=concurrency,
        )

    stepper(1).start_execution(state_machine_arn=SM, name="x", input={}, seed=1)
    assert [m.kind for m in tasks.sent] == ["task"] * 3
    return log, bus, stepper(10), list(tasks.sent)


def test_a_batch_of_tasks_runs_side_by_side_each_once_each_result_sent() -> None:
    # GIVEN three tasks whose handlers each wait until all three are running
    together = threading.Barrier(3, timeout=10)
    calls = Counter[str]()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            together.wait()  # one after the other, this would break the barrier
            return {"ran": name}

        return run

    _log, bus, runner, messages = setup({n: handler(n) for n in ("a", "b", "c")})
    # WHEN the runner gets the three in one batch
    failures = runner.handle_batch(messages)
    # THEN all three ran at the same time, once each, and each result was sent
    assert failures == [] and calls == {"a": 1, "b": 1, "c": 1}
    results = [decode_event(m.body) for m in bus.sent]
    assert sorted(type(e).__name__ for e in results) == ["TaskSucceeded"] * 3
    assert sorted(e.output["ran"] for e in results) == ["a", "b", "c"]  # type: ignore[attr-defined]


def test_a_task_that_cannot_run_now_fails_alone() -> None:
    calls = Counter[str]()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            return {"ran": name}

        return run

    log, bus, runner, messages = setup({n: handler(n) for n in ("a", "b", "c")})
    # GIVEN the second task's lease is held by another live runner
    held = messages[1]
    claim = leases.claim(log, held.execution_arn, task_lease_key(held.body), "other", 1_000.0, 900)
    assert claim.status == "acquired"
    # WHEN the batch runs
    failures = runner.handle_batch(messages)
    # THEN only that message failed (it comes back later); the other two ran and reported
    assert [(m.id, type(e)) for m, e in failures] == [(held.id, TaskLeaseHeldError)]
    assert sum(calls.values()) == 2 and len(bus.sent) == 2
