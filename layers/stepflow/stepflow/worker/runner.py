"""The worker: lease activity tasks, run a handler on each, report, heartbeat, drain.

``concurrency`` threads each poll for a task and run the handler on it, so
at most that many tasks are in hand at once. A heartbeat thread reports
progress for every task in hand every ``heartbeat_seconds`` (which also
extends its lease); a refused heartbeat marks the task lost.

Stopping (:meth:`Worker.stop`, or SIGTERM/SIGINT with
:meth:`Worker.install_signal_handlers`): no handler starts after it. A task a
poll already in flight brings back is given back at once (``release_task``)
and never run; the tasks in hand may finish for up to ``grace_seconds``, then
the rest are released so another worker gets them at once, and a handler still
running is abandoned (its late result is not sent). A second signal skips the
rest of the grace period. :meth:`Worker.run` returns at most
``POLL_JOIN_SECONDS`` after the grace period.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from stepflow.worker.client import REFUSED, ActivityClient, error_code
from stepflow.worker.context import TaskContext, TaskFailure, idempotency_key
from stepflow.worker.signals import Wakeup, exit_within
from stepflow.worker.signature import as_handler

logger = logging.getLogger("stepflow.worker")

Handler = Callable[[Any, TaskContext], Any]
"""A task handler: ``(input, context) -> output`` (JSON-serialisable); raising fails the task.

:class:`Worker` also takes ``(input) -> output``, as ``execute()``'s handlers are
(see :mod:`stepflow.worker.signature`)."""

MAX_ERROR, MAX_CAUSE = 256, 32_768
REPORT_ATTEMPTS = 3
POLL_JOIN_SECONDS = 5.0
"""How long past the grace period :meth:`Worker.run` waits for polls in flight to return."""
THREAD_EXIT_SECONDS = 0.5
"""How long :meth:`Worker.run` waits for slot threads to leave before counting them abandoned."""
HARD_EXIT_MARGIN = 5.0
"""Slack past ``grace + POLL_JOIN_SECONDS`` before a signalled process is ended outright."""


class Worker:
    """Runs ``handler`` on the tasks of one activity.

    ``handler`` is ``handler(input)`` or ``handler(input, context)``, told apart
    here from its signature; one that fits neither raises
    :class:`~stepflow.worker.signature.HandlerSignatureError`.
    """

    def __init__(
        self,
        client: ActivityClient,
        activity_arn: str,
        handler: Callable[..., Any],
        *,
        concurrency: int = 8,
        name: str | None = None,
        heartbeat_seconds: float = 10.0,
        grace_seconds: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.handler: Handler = as_handler(handler)
        self.client, self.activity_arn = client, activity_arn
        self.concurrency = concurrency
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.heartbeat_seconds, self.grace_seconds = heartbeat_seconds, grace_seconds
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.signalled: signal.Signals | None = None
        """The first stop signal received (with :meth:`install_signal_handlers`)."""
        self.abandoned: list[threading.Thread] = []
        """Threads left in a handler or a poll when :meth:`run` returned (tasks released)."""
        self._wakeup = Wakeup()
        self._hard_exit = False
        self.counts = {
            "succeeded": 0,
            "failed": 0,
            "refused": 0,
            "released": 0,
            "returned": 0,
            "errors": 0,
        }
        self._in_hand: dict[str, TaskContext] = {}
        self._pollers: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        """The health report: ``ok`` while polling, ``draining``/``stopped`` after :meth:`stop`."""
        state = (
            "stopped" if self.stopped.is_set() else "draining" if self.stopping.is_set() else "ok"
        )
        with self._lock:
            return {
                "status": state,
                "worker": self.name,
                "activity": self.activity_arn,
                "in_flight": len(self._in_hand),
                **self.counts,
            }

    def install_signal_handlers(self, *, hard_exit: bool = False) -> None:
        """SIGTERM and SIGINT stop the worker gracefully (call from the main thread).

        The handlers only wake :meth:`run`'s loop (see :mod:`stepflow.worker.signals`).
        With ``hard_exit`` the first signal also arms :func:`exit_within`: the
        process ends ``grace_seconds + POLL_JOIN_SECONDS + HARD_EXIT_MARGIN``
        after it, whatever the handlers do.
        """
        self._wakeup.catch()
        self._hard_exit = hard_exit

    def stop(self, reason: str = "stop") -> None:
        """Stop polling; :meth:`run` drains and returns (safe from any thread)."""
        with self._lock:
            first = not self.stopping.is_set()
            self.stopping.set()  # under the lock: a polled task is in hand before, or released
        if first:
            logger.info("worker stopping", extra={"worker": self.name, "reason": reason})
        self._wakeup.wake()

    def run(self) -> None:
        """Poll and run tasks until :meth:`stop` (or a signal), then drain; returns when done."""
        logger.info(
            "worker started",
            extra={"worker": self.name, "activity": self.activity_arn, "slots": self.concurrency},
        )
        threads = [
            threading.Thread(target=self._slot, name=f"{self.name}-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        beats = threading.Thread(target=self._heartbeats, name=f"{self.name}-hb", daemon=True)
        for thread in [*threads, beats]:
            thread.start()
        try:
            while not self.stopping.is_set():
                self._on_signals(self._wakeup.wait())
            deadline = time.monotonic() + self.grace_seconds
            hurry = self._until(deadline, self._busy)  # the tasks in hand finish
            for context in self._snapshot():
                self._release(context)
            if not hurry:
                # Polls in flight end (a task they bring is handed straight back);
                # threads stuck in a handler past the grace period are left behind.
                self._until(deadline + POLL_JOIN_SECONDS, lambda: bool(self._polling()))
        finally:
            self.stopped.set()
            self._wakeup.close()
        end = time.monotonic() + THREAD_EXIT_SECONDS
        for thread in threads:  # a slot that is done leaves its loop at once
            thread.join(max(0.0, end - time.monotonic()))
        self.abandoned = [t for t in threads if t.is_alive()]
        logger.info(
            "worker stopped",
            extra={"worker": self.name, "abandoned": len(self.abandoned), **self.counts},
        )

    def _on_signals(self, received: list[signal.Signals] | None) -> bool:
        """Act on signals :meth:`Wakeup.wait` returned; True for one after the first."""
        again = False
        for signum in received or ():
            if self.signalled is None:
                self.signalled = signum
                if self._hard_exit:
                    exit_within(self.grace_seconds + POLL_JOIN_SECONDS + HARD_EXIT_MARGIN)
                self.stop(signum.name)
            else:
                again = True
                logger.info("worker hurrying", extra={"worker": self.name, "signal": signum.name})
        return again

    def _until(self, deadline: float, pending: Callable[[], bool]) -> bool:
        """Wait while ``pending()`` until ``deadline``; True if a further signal cut it short."""
        while pending():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._on_signals(self._wakeup.wait(min(left, 1.0))):
                return True
        return False

    def _polling(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._pollers if t.is_alive()]

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._in_hand)

    def _snapshot(self) -> list[TaskContext]:
        with self._lock:
            return list(self._in_hand.values())

    def _slot(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                if self.stopping.is_set():
                    break
                self._pollers.add(me)
            try:
                self._take(self._poll())
            finally:
                with self._lock:
                    self._pollers.discard(me)
                if self.stopping.is_set():
                    self._wakeup.wake()

    def _poll(self) -> dict[str, Any]:
        try:
            task: dict[str, Any] = self.client.get_activity_task(
                activityArn=self.activity_arn, workerName=self.name
            )
        except Exception as exc:
            self._count("errors")
            logger.warning("poll failed", extra={"worker": self.name, "error": repr(exc)})
            self.stopping.wait(1.0)
            return {}
        return task

    def _take(self, task: dict[str, Any]) -> None:
        """Run a polled task, unless the worker is stopping: then give it straight back."""
        token = task.get("taskToken")
        if not token:
            return
        context = TaskContext(
            token=token,
            idempotency_key=idempotency_key(token),
            activity_arn=self.activity_arn,
            worker_name=self.name,
            _beat=self._beat,
        )
        with self._lock:
            keep = not self.stopping.is_set()
            if keep:  # in hand before this thread stops counting as a poller
                self._in_hand[context.token] = context
                self._pollers.discard(threading.current_thread())
        if not keep:
            # A poll in flight when stop came: never run it, give it back.
            self._release(context, count="returned")
            return
        self._run(context, task.get("input"))

    def _run(self, context: TaskContext, raw_input: Any) -> None:
        key = context.idempotency_key
        log = {"worker": self.name, "idempotency_key": key}
        logger.info("task received", extra=log)
        started = time.monotonic()
        try:
            output = self.handler(json.loads(raw_input or "null"), context)
            text = json.dumps(output)
        except Exception as exc:
            context.reporting = True
            if isinstance(exc, TaskFailure):
                error, cause = exc.error, exc.cause
            else:
                error, cause = type(exc).__name__, str(exc) or repr(exc)
            outcome = self._report(
                context,
                "send_task_failure",
                error=error[:MAX_ERROR],
                cause=cause[:MAX_CAUSE],
            )
            kind = "failed"
        else:
            context.reporting = True
            outcome = self._report(context, "send_task_success", output=text)
            kind = "succeeded"
        with self._lock:
            self._in_hand.pop(context.token, None)
        if self.stopping.is_set():
            self._wakeup.wake()  # the drain loop counts what is left in hand
        counted = kind if outcome == "ok" else outcome
        self._count(counted)
        seconds = round(time.monotonic() - started, 3)
        logger.info("task " + counted, extra={**log, "seconds": seconds})

    def _report(self, context: TaskContext, operation: str, **fields: Any) -> str:
        """Send a result; ``ok``, ``refused`` (stale: the task is no longer ours) or ``errors``."""
        if context.lost.is_set() and operation != "send_task_heartbeat":
            return "refused"  # released or superseded: the result would be refused anyway
        for attempt in range(REPORT_ATTEMPTS):
            try:
                getattr(self.client, operation)(taskToken=context.token, **fields)
                return "ok"
            except Exception as exc:
                if error_code(exc) in REFUSED:
                    context.lost.set()
                    return "refused"
                logger.warning(
                    "report failed",
                    extra={"worker": self.name, "operation": operation, "error": repr(exc)},
                )
                time.sleep(0.2 * (attempt + 1))
        return "errors"

    def _beat(self, context: TaskContext) -> bool:
        return self._report(context, "send_task_heartbeat") == "ok"

    def _heartbeats(self) -> None:
        while not self.stopped.wait(self.heartbeat_seconds):
            for context in self._snapshot():
                if context.reporting or context.lost.is_set():
                    continue
                if not self._beat(context) and not context.reporting:
                    logger.warning(
                        "lease lost",
                        extra={"worker": self.name, "idempotency_key": context.idempotency_key},
                    )

    def _can_release(self) -> bool:
        return callable(getattr(self.client, "release_task", None))

    def _release(self, context: TaskContext, count: str = "released") -> None:
        """Give an unfinished task back; without ``release_task`` its lease simply runs out."""
        context.lost.set()
        with self._lock:
            self._in_hand.pop(context.token, None)
        outcome = f"task {count}"
        if self._can_release():
            try:
                self.client.release_task(taskToken=context.token)  # type: ignore[attr-defined]
            except Exception as exc:
                outcome = f"task {count}, not released: its lease runs out"
                logger.warning("release failed", extra={"worker": self.name, "error": repr(exc)})
        else:
            outcome = f"task {count}, not released (no release_task): its lease runs out"
        self._count(count)
        logger.info(
            outcome, extra={"worker": self.name, "idempotency_key": context.idempotency_key}
        )

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
