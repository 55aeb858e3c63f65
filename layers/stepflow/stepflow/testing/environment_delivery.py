"""How a :class:`~stepflow.testing.WorkflowEnvironment` passes time and delivers messages.

:class:`MessageDelivery`, the environment's base, moves the virtual clock
(:meth:`~MessageDelivery.run_until_idle`, :meth:`~MessageDelivery.run`,
:meth:`~MessageDelivery.skip_to_next_timer`, :meth:`~MessageDelivery.advance`) and
runs the inner loop: due messages to the stepper (early ones sent back delayed,
failed ones redelivered until :data:`~stepflow.testing.delivery.MAX_RECEIVES`),
the handlers' reports sent through the activity service, activity handlers run,
and whether a task waits for the test to answer it.
"""

from __future__ import annotations

import functools
import math

from stepflow.activities import ActivityError, ActivityService
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.runtime import CoordinationLog, InMemoryBus, Message, Stepper
from stepflow.runtime.task_queue import InMemoryTaskQueue
from stepflow.testing.delivery import MAX_RECEIVES, REDELIVERY_SECONDS, Deliver, DeliveryError
from stepflow.testing.environment_tasks import activity_task
from stepflow.testing.handlers import Handler, call_handler, find_handler
from stepflow.testing.tasks import AutoActivityRouter, CallbackTasks, OpenTask
from stepflow.testing.timing import VirtualTimeTasks


class MessageDelivery:
    """The virtual clock and delivery loop of :class:`~stepflow.testing.WorkflowEnvironment`."""

    bus: InMemoryBus
    queue: InMemoryTaskQueue
    log: CoordinationLog
    stepper: Stepper
    activities: ActivityService
    tasks: CallbackTasks
    timing: VirtualTimeTasks
    router: AutoActivityRouter
    handlers: dict[str, Handler]
    messages: int
    _deliver: Deliver
    _receives: dict[str, int]

    def run_until_idle(self) -> None:
        """Deliver every message due now and answer tasks with handlers; no time passes."""
        while True:
            due = self.bus.next_due()
            self.tasks.due_reports()
            if due is not None and due <= self.bus.now:
                self._process(self.bus.receive_batch(10))
            elif not self._answer():
                self.tasks.free(self._attempt_open)
                self.timing.free(self._attempt_open)
                return

    def run(self, execution_arn: str | None = None, *, skip_open_tasks: bool = False) -> None:
        """Run, skipping time, until ``execution_arn`` ends (None: every execution).

        Time skips from timer to timer, but not past a task waiting for the
        test (an open callback or activity task without a handler): ``run``
        returns instead, so the test can answer it (or :meth:`advance` to let
        it time out). With ``skip_open_tasks`` it skips on as long as timers
        are pending, as an execution nobody answers would. Either way it
        returns, with the execution RUNNING, when nothing is pending at all.
        """
        while True:
            self.run_until_idle()
            if execution_arn is not None:
                record = self.log.get(execution_arn)
                if record is None or record.status != "RUNNING":
                    return
            if not skip_open_tasks and self._awaits_test():
                return
            if self.skip_to_next_timer() is None:
                return

    def skip_to_next_timer(self) -> float | None:
        """Move the clock to the next timer (or delayed message) and deliver what is due.

        Returns the new time; None (the clock unmoved) when nothing is pending.
        """
        self.run_until_idle()
        due = self._next_due()
        if due is None:
            return None
        self.bus.now = max(self.bus.now, due)
        self.run_until_idle()
        return self.bus.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, firing every timer due on the way in order."""
        target = self.bus.now + seconds
        self.run_until_idle()
        while (due := self._next_due()) is not None and due <= target:
            self.bus.now = max(self.bus.now, due)
            self.run_until_idle()
        self.bus.now = max(self.bus.now, target)
        self.run_until_idle()

    def _next_due(self) -> float | None:
        """The next timer, delayed message or delayed handler report (None: nothing)."""
        dues = [d for d in (self.bus.next_due(), self.tasks.next_due()) if d is not None]
        return min(dues, default=None)

    # -- delivery ----------------------------------------------------------------

    def _process(self, batch: list[Message]) -> None:
        now = self.bus.now
        early = [m for m in batch if m.not_before > now]
        if early:
            # What the stepper does with an early message (send it back delayed), minus
            # SQS's 900 s cap on a delay: a Wait of a year is then one hop, not 35,040.
            for message in early:
                self.bus.ack(message)
                self.bus.send(message, math.ceil(message.not_before - now))
            batch = [m for m in batch if m.not_before <= now]
            if not batch:
                return
        self.messages += len(batch)
        failures = self._deliver(self.stepper, batch)
        for message in batch:
            self.bus.ack(message)
        for message, exc in failures:
            count = self._receives[message.id] = self._receives.get(message.id, 0) + 1
            if count >= MAX_RECEIVES:
                raise DeliveryError(f"message {message.id} failed {count} times: {exc}") from exc
            self.bus.send(message, REDELIVERY_SECONDS)

    def _answer(self) -> bool:
        """Send the handlers' queued reports and run activity handlers; True if any."""
        acted = False
        while self.tasks.reports:
            token, outcome = self.tasks.reports.pop(0)
            acted = True
            try:
                if outcome.ok:
                    output = dumps(outcome.output)
                    self.activities.send_task_success({"taskToken": token, "output": output})
                else:
                    failure = {"error": outcome.error, "cause": outcome.cause}
                    request = {k: v for k, v in failure.items() if v is not None}
                    self.activities.send_task_failure({"taskToken": token, **request})
            except ActivityError:
                pass  # the task timed out or was stopped meanwhile: as the API refuses it
        for queue, arn in self.router.arns.items():
            found = find_handler(self.handlers, arn, None)
            while found is not None and self.queue.pending(queue):
                task = self.activities.get_activity_task({"activityArn": arn, "waitSeconds": 0})
                if not task:
                    break
                value = activity_task(task, arn).input
                self.tasks.answer(
                    task["taskToken"],
                    functools.partial(call_handler, found[0], value, arn, virtual_time=True),
                )
                acted = True
        return acted or bool(self.tasks.reports)

    def _awaits_test(self) -> bool:
        """True if a callback or an activity task without a handler waits for an answer."""
        self.tasks.open = {t.token: t for t in self.tasks.open.values() if self._is_open(t)}
        if self.tasks.open:
            return True
        return any(
            self.queue.pending(queue) and find_handler(self.handlers, arn, None) is None
            for queue, arn in self.router.arns.items()
        )

    def _attempt_open(self, execution_arn: str, task_id: str) -> bool:
        """Whether a task attempt may still be answered (unknown execution: kept, to be safe)."""
        record = self.log.get(execution_arn)
        if record is None:
            return True
        return record.status == "RUNNING" and task_id in decode_state(record.state).tasks

    def _is_open(self, task: OpenTask) -> bool:
        record = self.log.get(task.execution_arn)
        if record is None or record.status != "RUNNING":
            return False
        return task.task_id in decode_state(record.state).tasks
