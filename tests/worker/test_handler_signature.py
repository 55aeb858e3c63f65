"""A worker takes ``handler(input)`` as ``execute()`` does, or ``handler(input, context)``.

Which one is decided once, from the signature; anything else is refused before
the worker polls.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from stepflow.worker import ServiceClient, TaskContext, Worker
from stepflow.worker.cli import WorkerUsageError, load_handler
from stepflow.worker.signature import HandlerSignatureError, as_handler

from tests.worker.harness import Harness, activity, task_machine

WAIT = 10.0  # a bound for thread hand-offs; never reached when things work


def run_tasks(handler: Any, count: int) -> tuple[Harness, list[str], Worker]:
    h = Harness(task_machine(activity("jobs")))
    h.service.create_activity({"name": "jobs"})
    arns = [h.start({"n": i}) for i in range(count)]
    worker = Worker(ServiceClient(h.service, wait_seconds=0.05), activity("jobs"), handler)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        done = threading.Event()
        for _ in range(int(WAIT / 0.01)):
            if worker.counts["succeeded"] + worker.counts["failed"] >= count:
                break
            done.wait(0.01)
    finally:
        worker.stop()
        thread.join(WAIT)
    return h, arns, worker


def test_a_one_argument_handler_runs_on_the_input_once_per_task() -> None:
    calls: list[Any] = []

    def handler(task: Any) -> Any:
        calls.append(task)
        return {"double": task["n"] * 2}

    h, arns, worker = run_tasks(handler, 3)
    assert [h.status(arn) for arn in arns] == ["SUCCEEDED"] * 3
    assert [h.output(arn) for arn in arns] == [{"double": 0}, {"double": 2}, {"double": 4}]
    assert sorted(c["n"] for c in calls) == [0, 1, 2]  # once each, with the input alone
    assert worker.counts == {**worker.counts, "succeeded": 3, "failed": 0}


def test_a_two_argument_handler_still_gets_the_context() -> None:
    keys: list[str] = []

    def handler(task: Any, context: TaskContext) -> Any:
        keys.append(context.idempotency_key)
        return task

    h, arns, _ = run_tasks(handler, 2)
    assert [h.status(arn) for arn in arns] == ["SUCCEEDED"] * 2
    assert len(set(keys)) == 2


class Callable1:
    def __call__(self, task: Any) -> Any:
        return ("one", task)


class Callable2:
    def __call__(self, task: Any, context: Any) -> Any:
        return ("two", task)


def one(task: Any) -> Any:
    return ("one", task)


def two_with_default(task: Any, context: Any = None, *, flag: bool = False) -> Any:
    return ("two", task, context is not None)


def varargs(*args: Any) -> Any:
    return ("two", len(args))


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (one, ("one", 7)),
        (lambda task: ("one", task), ("one", 7)),
        (Callable1(), ("one", 7)),
        (Callable2(), ("two", 7)),
        (two_with_default, ("two", 7, True)),
        (varargs, ("two", 2)),
        (functools.partial(lambda prefix, task: (prefix, task), "one"), ("one", 7)),
    ],
)
def test_the_signature_decides_what_the_handler_is_called_with(handler: Any, expected: Any) -> None:
    context = object()
    assert as_handler(handler)(7, context) == expected  # type: ignore[arg-type]


def three_required(a: Any, b: Any, c: Any) -> Any:
    return a


def keyword_only(task: Any, *, context: Any) -> Any:
    return task


def nothing() -> Any:
    return None


async def coroutine(task: Any) -> Any:
    return task


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (three_required, "takes (a: 'Any', b: 'Any', c: 'Any')"),
        (keyword_only, "takes (task: 'Any', *, context: 'Any')"),
        (nothing, "takes ()"),
        (coroutine, "is async"),
        (42, "is not callable (int)"),
        (None, "is not callable (NoneType)"),
    ],
)
def test_a_handler_that_fits_neither_signature_is_refused_naming_both(
    handler: Any, words: str
) -> None:
    with pytest.raises(HandlerSignatureError) as raised:
        as_handler(handler, "mod:fn")
    assert words in str(raised.value)
    assert "handler(input) or handler(input, context)" in str(raised.value)
    with pytest.raises(HandlerSignatureError):
        Worker(ServiceClient(Harness(task_machine(activity("x"))).service), "arn", handler)


def test_the_cli_loads_a_one_argument_handler_and_refuses_the_rest() -> None:
    loaded = load_handler("tests.worker.handlers:doubled")
    assert loaded({"n": 4}, object()) == {"double": 8}  # type: ignore[arg-type]
    with pytest.raises(WorkerUsageError, match=r"'tests.worker.handlers:three' takes \(task"):
        load_handler("tests.worker.handlers:three")
    with pytest.raises(WorkerUsageError, match="is not callable"):
        load_handler("tests.worker.handlers:NOT_CALLABLE")
    with pytest.raises(WorkerUsageError, match="has no 'missing'"):
        load_handler("tests.worker.handlers:missing")


def test_a_one_argument_handler_loaded_by_the_cli_runs_on_a_worker() -> None:
    """``stepflow worker`` loads the handler (checked once) and hands it to Worker, which
    checks it again: the second check must not wrap the one-argument handler twice."""
    _, _, worker = run_tasks(load_handler("tests.worker.handlers:doubled"), 2)
    assert (worker.counts["succeeded"], worker.counts["failed"]) == (2, 0)
    again = as_handler(as_handler(lambda task_input: task_input))
    assert again({"n": 1}, object()) == {"n": 1}  # type: ignore[arg-type]
