"""Handlers the worker tests load by name (``tests.worker.handlers:NAME``)."""

from __future__ import annotations

import os
import time
from typing import Any

from stepflow.worker import TaskContext


def slow(task: Any, context: TaskContext) -> Any:
    """Takes a moment, so a SIGTERM finds it in hand."""
    time.sleep(float(task.get("seconds", 1.0)))
    return {"done": task.get("n"), "key": context.idempotency_key}


def hang(task: Any, context: TaskContext) -> Any:
    """Never finishes on its own (the test kills the process)."""
    time.sleep(3600)


def recorded(task: Any, context: TaskContext) -> Any:
    """Appends ``<time> <n> <pid>`` to the file ``$STEPFLOW_TEST_STARTS`` names, then sleeps."""
    with open(os.environ["STEPFLOW_TEST_STARTS"], "a", encoding="utf-8") as starts:
        starts.write(f"{time.time()} {task.get('n')} {os.getpid()}\n")
    time.sleep(float(task.get("seconds", 1.0)))
    return {"done": task.get("n")}


def doubled(task: Any) -> Any:
    """A one-argument handler, as ``execute()``'s are: the worker calls it with the input only."""
    return {"double": task["n"] * 2}


def three(task: Any, context: TaskContext, extra: Any) -> Any:
    """Fits neither signature a worker calls (a third required parameter)."""
    return task


NOT_CALLABLE = {"handler": "no"}
"""Not a handler at all."""
