"""A stateful chaos test of the real Stepper: faults as Hypothesis rules, invariants after each.

:class:`ChaosMachine` drives :class:`~stepflow.testing.WorkflowEnvironment`'s own
parts (its Stepper, in-memory log, bus, task queue and activity service) and a
second Stepper over the same log, with the fault actions of ``model/coordination.pml``:
delivering any queued message (reordering), duplicating one, losing a send (the
sender crashes), delivering a timer early, crashing a stepper around its commit,
two steppers interleaving load and commit, API calls (start, stop, redrive) whose
send is lost, activity workers (claim, heartbeat, complete, a stale complete after
the lease ran out) and time passing. After every rule: no history event recorded
twice, no task run or result committed more often than it was scheduled, every
commit goes one ``seq`` up, and a worker's result is accepted only from the current
lease holder. At teardown, under fair delivery (every message delivered, the repair
job run, activity tasks answered) every execution ends with the expected output.

``tests/model/test_chaos.py`` runs a few hundred interleavings; ``bench/chaos.py``
runs thousands and prints the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from stepflow.activities import ActivityError
from stepflow.activities.tokens import parse as parse_token
from stepflow.asl import parse
from stepflow.runtime import ExecutionRecord, InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.leases import LeaseFence
from stepflow.runtime.repair import repair_message
from stepflow.testing import WorkflowEnvironment

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:chaos"
LEASE_SECONDS = 60  # activities.service.DEFAULT_LEASE_SECONDS
REPAIR_DELAY = 60  # the API's STEPFLOW_REPAIR_DELAY_SECONDS

WORKFLOWS: dict[str, dict[str, Any]] = {
    # Lambda inline with Retry, a Wait, a Choice
    "retry": {
        "StartAt": "Charge",
        "States": {
            "Charge": {
                "Type": "Task",
                "Resource": FN + "flaky",
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 2}],
                "Next": "Pause",
            },
            "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 0, "Next": "Done"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    },
    # an activity task on a worker, then Lambda
    "activity": {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": ACTIVITY, "Next": "Double"},
            "Double": {"Type": "Task", "Resource": FN + "double", "End": True},
        },
    },
    # Parallel (inline) and Map over the child threshold (child executions)
    "fanout": {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {"A": {"Type": "Task", "Resource": FN + "double", "End": True}},
                    },
                    {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": True}}},
                ],
                "ResultPath": "$.both",
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Task", "Resource": FN + "double", "End": True}},
                },
                "ResultPath": "$.each",
                "End": True,
            },
        },
    },
    # Catch: a task that always fails is caught; a small inline Map
    "catch": {
        "StartAt": "Broken",
        "States": {
            "Broken": {
                "Type": "Task",
                "Resource": FN + "broken",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Few"}],
                "End": True,
            },
            "Few": {
                "Type": "Map",
                "ItemsPath": "$.two",
                "ItemProcessor": {
                    "StartAt": "Q",
                    "States": {"Q": {"Type": "Task", "Resource": FN + "double", "End": True}},
                },
                "ResultPath": "$.few",
                "End": True,
            },
        },
    },
}
INPUT = {"n": 3, "items": [1, 2, 3], "two": [4, 5]}
CHILD_LIMIT = 2  # a Map of 3 items runs child executions, one of 2 runs inline


class Flaky(Exception):
    """The first call of ``flaky`` for an execution fails (Retry runs it again)."""


class Broken(Exception):
    """``broken`` always fails (Catch)."""


def handlers(calls: Counter[str]) -> dict[str, Any]:
    """Deterministic handlers that count their calls by name."""
    seen: set[str] = set()

    def flaky(payload: Any) -> Any:
        calls["flaky"] += 1
        key = json.dumps(payload, sort_keys=True)
        if key not in seen:
            seen.add(key)
            raise Flaky("first try")
        return {**payload, "charged": True}

    def double(payload: Any) -> Any:
        calls["double"] += 1
        return payload * 2 if isinstance(payload, int) else {"doubled": payload}

    def broken(payload: Any) -> Any:
        calls["broken"] += 1
        raise Broken("always")

    return {"flaky": flaky, "double": double, "broken": broken}


def worker_output(task_input: Any) -> Any:
    """What every activity worker answers: a function of the input only."""
    return {"worked": task_input}


def _reference(name: str) -> Any:
    """The output of a fault-free run (the same environment, nothing injected)."""
    bound = {**handlers(Counter()), ACTIVITY: worker_output}
    env = WorkflowEnvironment(handlers=bound, child_limit=CHILD_LIMIT, start_time=1_000_000.0)
    arn = env.start(WORKFLOWS[name], INPUT, name="reference", seed=7)
    env.run(arn)
    record = env.log.get(arn)
    assert record is not None and record.status == "SUCCEEDED", (name, record)
    return record.state["output"]


REFERENCE = {name: _reference(name) for name in WORKFLOWS}


class Crash(ConnectionError):
    """An injected fault: the process dies at this point."""


class FaultLog(InMemoryLog):
    """The in-memory log that can crash around a commit and checks each commit's ``seq``."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_commit: str | None = None  # "before" or "after" the next commit
        self.on_get: Any = None  # a one-shot hook run inside the next get (a rival stepper)
        self.bad_seq: list[str] = []
        self.reruns = 0
        """Task runs in deliveries that then failed: those tasks may run again, by design
        (TaskRuns.task_result: only a crash between running a task and recording its
        result re-runs it)."""

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        """The head; runs the armed hook first (after the read: the rival commits in between)."""
        record = super().get(execution_arn)
        hook, self.on_get = self.on_get, None
        if hook is not None:
            hook()
        return record

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Any,
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        """Commit, maybe crashing before or after the write."""
        if record.seq != expected_seq + 1:
            self.bad_seq.append(f"{record.execution_arn}: {expected_seq} -> {record.seq}")
        when, self.crash_commit = self.crash_commit, None
        if when == "before":
            raise Crash("crash before the commit")
        super().commit(record, expected_seq, events, fence=fence)
        if when == "after":
            raise Crash("crash after the commit, before the send")


class FaultBus(InMemoryBus):
    """The in-memory bus whose n-th next send is lost (the sender crashes)."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self.lose_in: int | None = None  # sends left before the lost one

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        """Enqueue, unless this is the send armed to be lost."""
        if self.lose_in is not None:
            if self.lose_in == 0:
                self.lose_in = None
                raise Crash("the send is lost: the sender crashed")
            self.lose_in -= 1
        super().send(message, delay_seconds)

    def entries(self) -> list[tuple[float, Message]]:
        """Every queued message with the time it becomes deliverable, in order."""
        found = []
        for due, order, wire in sorted(self._queue, key=lambda e: e[:2]):
            message = self._verified(order, wire)  # the bus carries signed wire forms
            if message is not None:
                found.append((due, message))
        return found


class ChaosMachine(RuleBasedStateMachine):
    """Executions of :data:`WORKFLOWS` on the real runtime under injected faults."""

    totals: Counter[str] = Counter()
    """Across runs: faults injected by kind, and ``interleavings``, ``executions``,
    ``steps`` (for bench/chaos.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.log = FaultLog()
        self.bus = FaultBus(1_000_000.0)
        self.env = WorkflowEnvironment(
            handlers=handlers(self.calls),
            log=self.log,
            bus=self.bus,
            child_limit=CHILD_LIMIT,
            start_time=1_000_000.0,
        )
        self.api = self.env.stepper
        self.api.repair_delay = REPAIR_DELAY  # the API's stepper leaves a repair message
        self.rival = Stepper(
            log=self.env.log,
            bus=self.bus,
            definitions=lambda arn: self.machines[arn.split(":")[6]],
            clock=self.env.now,
            invoker=self.env.tasks,
            child_limit=CHILD_LIMIT,
            router=self.env.router,
        )
        self.machines = {name: parse(d) for name, d in WORKFLOWS.items()}
        self.arns: dict[str, str] = {}  # name of the execution -> arn
        self.stopped: set[str] = set()
        self.redriven: set[str] = set()
        self.tokens: list[str] = []  # tokens the workers hold, current or stale
        self.faults: Counter[str] = Counter()
        self.stale_refused = 0

    # -- helpers ------------------------------------------------------------------

    def _stepper(self, second: bool) -> Stepper:
        return self.rival if second else self.api

    def _deliver(self, message: Message, stepper: Stepper) -> None:
        """One delivery: acknowledged unless the stepper failed (then the queue redelivers)."""
        calls = sum(self.calls.values())
        failed = stepper.handle_batch([message])
        if failed:  # tasks run in a delivery that then failed may run again (by design)
            self.log.reruns += sum(self.calls.values()) - calls
        self.bus.lose_in, self.log.crash_commit = None, None
        self.bus.ack(message)
        if failed:  # as the queue: the message comes back after its visibility timeout
            self.bus.send(message, LEASE_SECONDS)

    def _due(self) -> list[Message]:
        return [m for due, m in self.bus.entries() if due <= self.bus.now]

    def _api(self, call: Any) -> None:
        calls = sum(self.calls.values())
        try:
            call()
        except Crash:
            self.faults["api crash"] += 1
            self.log.reruns += sum(self.calls.values()) - calls
        except ActivityError:
            pass

    # -- rules: executions (the API) ----------------------------------------------

    @precondition(lambda self: len(self.arns) < 4)
    @rule(workflow=st.sampled_from(sorted(WORKFLOWS)), lose=st.sampled_from([None, 0, 1]))
    def start(self, workflow: str, lose: int | None) -> None:
        """StartExecution; ``lose``: its repair message (0) or its first send (1) is lost."""
        name = f"{workflow}-{len(self.arns)}"
        arn = self.env.register(WORKFLOWS[workflow], workflow)
        self.bus.lose_in = lose
        try:
            record = self.api.start_execution(state_machine_arn=arn, name=name, input=INPUT, seed=7)
            self.arns[name] = record.execution_arn
        except Crash:
            self.faults["api crash"] += 1
            existing = self.log.get(f"{arn.replace(':stateMachine:', ':execution:')}:{name}")
            if existing is not None:
                self.arns[name] = existing.execution_arn
        finally:
            self.bus.lose_in = None

    @precondition(lambda self: bool(self.arns))
    @rule(data=st.data(), lose=st.sampled_from([None, 0, 1]))
    def stop(self, data: st.DataObject, lose: int | None) -> None:
        """StopExecution (its send may be lost)."""
        arn = data.draw(st.sampled_from(sorted(self.arns.values())))
        self.bus.lose_in = lose
        self.stopped.add(arn)
        self._api(lambda: self.api.stop_execution(arn, error="Chaos", cause="stopped"))
        self.bus.lose_in = None

    @precondition(lambda self: bool(self.stopped))
    @rule(data=st.data(), lose=st.sampled_from([None, 0, 1]))
    def redrive(self, data: st.DataObject, lose: int | None) -> None:
        """RedriveExecution of a stopped execution (its send may be lost)."""
        arn = data.draw(st.sampled_from(sorted(self.stopped)))
        self.bus.lose_in = lose
        before = self.log.get(arn)
        self._api(lambda: self.api.redrive_execution(arn))
        self.bus.lose_in = None
        after = self.log.get(arn)
        if before is not None and after is not None and after.seq > before.seq:
            self.redriven.add(arn)
            if after.status == "RUNNING":
                self.stopped.discard(arn)

    # -- rules: the transition queue ----------------------------------------------

    @precondition(lambda self: len(self.bus) > 0)
    @rule(data=st.data(), second=st.booleans())
    def deliver(self, data: st.DataObject, second: bool) -> None:
        """Deliver any due message (any order: reordering) to either stepper."""
        due = self._due()
        if not due:
            self.bus.now = self.bus.entries()[0][0]  # time passes to the next message
            self.faults["time"] += 1
            return
        message = data.draw(st.sampled_from(due))
        self._deliver(message, self._stepper(second))

    @precondition(lambda self: len(self.bus) > 0)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """The queue delivers a message twice (a copy is queued now)."""
        _, message = data.draw(st.sampled_from(self.bus.entries()))
        self.bus.send(replace(message))  # a second copy of the same message (same id)
        self.faults["duplicate"] += 1

    @precondition(lambda self: any(due > self.bus.now for due, _ in self.bus.entries()))
    @rule(data=st.data())
    def deliver_early(self, data: st.DataObject) -> None:
        """A delayed message (a timer) delivered before it is due."""
        early = [m for due, m in self.bus.entries() if due > self.bus.now]
        self._deliver(data.draw(st.sampled_from(early)), self.api)
        self.faults["early"] += 1

    @precondition(lambda self: len(self.bus) > 0)
    @rule(data=st.data(), where=st.sampled_from(["before", "after", "send"]), second=st.booleans())
    def crash(self, data: st.DataObject, where: str, second: bool) -> None:
        """Deliver a message to a stepper that dies before or after its commit, or mid-send."""
        entries = self.bus.entries()
        _, message = data.draw(st.sampled_from(entries))
        if where == "send":
            self.bus.lose_in = data.draw(st.integers(0, 2))
        else:
            self.log.crash_commit = where
        self.bus.now = max(self.bus.now, message.not_before)
        self._deliver(message, self._stepper(second))
        self.bus.lose_in, self.log.crash_commit = None, None
        self.faults[f"crash {where}"] += 1

    @precondition(lambda self: len(self._due()) >= 2)
    @rule(data=st.data())
    def race(self, data: st.DataObject) -> None:
        """Two steppers interleave: the rival delivers one message between the other's
        load and commit."""
        due = self._due()
        i = data.draw(st.integers(0, len(due) - 1))
        j = data.draw(st.integers(0, len(due) - 2))
        first, second = due[i], due[j + 1 if j >= i else j]
        self.log.on_get = lambda: self._deliver(second, self.rival)
        self._deliver(first, self.api)
        self.log.on_get = None
        self.faults["race"] += 1

    @rule()
    def repair_job(self) -> None:
        """aws/outbox_repair.py: a repair message for each running execution whose outbox is
        pending (the job's age threshold is time it lets pass)."""
        for arn, head in list(self.log._heads.items()):
            if head.status == "RUNNING" and head.outbox:
                self.bus.send(repair_message(arn))
                self.faults["repair job"] += 1

    @rule(seconds=st.sampled_from([1, 5, 30, LEASE_SECONDS + 1, 900]))
    def advance(self, seconds: int) -> None:
        """Time passes (timers fall due, leases run out)."""
        self.bus.now += seconds

    # -- rules: workers -----------------------------------------------------------

    @precondition(lambda self: self._activity_pending())
    @rule()
    def claim(self) -> None:
        """GetActivityTask: a worker claims the activity task (if a delivery is free)."""
        task = self.env.activities.get_activity_task({"activityArn": ACTIVITY, "waitSeconds": 0})
        if task:
            self.tokens.append(task["taskToken"])
            self.faults["claim"] += 1

    @precondition(lambda self: bool(self.tokens))
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        """SendTaskHeartbeat with any token a worker holds."""
        token = data.draw(st.sampled_from(self.tokens))
        self._api(lambda: self.env.activities.send_task_heartbeat({"taskToken": token}))
        self.faults["heartbeat"] += 1

    @precondition(lambda self: bool(self.tokens))
    @rule(data=st.data(), lose=st.sampled_from([None, 0]))
    def complete(self, data: st.DataObject, lose: int | None) -> None:
        """SendTaskSuccess with a token: accepted only from the current lease holder."""
        token = data.draw(st.sampled_from(self.tokens))
        parsed = parse_token(token)
        lease = self.log.lease(parsed.execution_arn, parsed.task_id)
        record = self.log.get(parsed.execution_arn)
        current = (
            lease is not None
            and lease.delivery == parsed.delivery
            and record is not None
            and record.status == "RUNNING"
        )
        before = len(self.log.history(parsed.execution_arn, limit=100_000).events)
        task_input = self._task_input(parsed.execution_arn, parsed.task_id)
        self.bus.lose_in = lose
        accepted = True
        try:
            self.env.activities.send_task_success(
                {"taskToken": token, "output": json.dumps(worker_output(task_input))}
            )
        except ActivityError:
            accepted = False
        except Crash:
            self.faults["api crash"] += 1
        finally:
            self.bus.lose_in = None
        after = len(self.log.history(parsed.execution_arn, limit=100_000).events)
        if not current:
            assert not accepted and after == before, "a stale worker's result was accepted"
            self.stale_refused += 1
        self.tokens.remove(token)
        self.faults["complete" if current else "stale complete"] += 1

    def _activity_pending(self) -> bool:
        return "chaos" in self.env.queue.names() and self.env.queue.pending("chaos") > 0

    def _task_input(self, arn: str, task_id: str) -> Any:
        for event in self.log.history(arn, limit=100_000).events:
            details = event.get("activityScheduledEventDetails")
            if details is not None:
                return json.loads(details["input"])
        return None

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def nothing_twice(self) -> None:
        """No event recorded twice, no task run or result committed more than scheduled,
        every commit one ``seq`` up."""
        assert not self.log.bad_seq, self.log.bad_seq
        scheduled = Counter[str]()
        for arn in list(self.log._heads):
            events = self.log.history(arn, limit=100_000).events
            ids = [e["id"] for e in events]
            assert ids == list(range(1, len(ids) + 1)), f"{arn}: an event lost or twice: {ids}"
            kinds = Counter(e["type"] for e in events)
            for e in events:
                if e["type"] == "LambdaFunctionScheduled":
                    resource = e["lambdaFunctionScheduledEventDetails"]["resource"]
                    scheduled[str(resource).rsplit(":", 1)[-1]] += 1
            for prefix in ("LambdaFunction", "Activity"):
                ends = sum(kinds[prefix + end] for end in ("Succeeded", "Failed", "TimedOut"))
                assert ends <= kinds[prefix + "Scheduled"], f"{arn}: a {prefix} result twice"
            assert kinds["ActivityStarted"] <= kinds["ActivityScheduled"], arn
        calls, attempts = sum(self.calls.values()), sum(scheduled.values())
        assert calls <= attempts + self.log.reruns, (
            f"tasks ran {calls} times for {attempts} attempts ({self.log.reruns} runs in "
            f"failed deliveries): {dict(self.calls)}"
        )

    # -- teardown: fair delivery --------------------------------------------------

    def teardown(self) -> None:
        """Deliver everything fairly; every execution ends with the expected output."""
        self.bus.lose_in, self.log.crash_commit, self.log.on_get = None, None, None
        self.repair_job()
        for _ in range(2_000):
            if self._all_done():
                break
            due = self._due()
            if due:
                self._deliver(due[0], self.api)
                continue
            if self._activity_pending():
                task = self.env.activities.get_activity_task(
                    {"activityArn": ACTIVITY, "waitSeconds": 0}
                )
                if task:
                    parsed = parse_token(task["taskToken"])
                    task_input = self._task_input(parsed.execution_arn, parsed.task_id)
                    output = json.dumps(worker_output(task_input))
                    self.env.activities.send_task_success(
                        {"taskToken": task["taskToken"], "output": output}
                    )
                    continue
            entries = self.bus.entries()
            self.bus.now = entries[0][0] if entries else self.bus.now + LEASE_SECONDS + 1
            self.repair_job()
        self.nothing_twice()
        totals = ChaosMachine.totals
        totals.update({f"fault: {kind}": n for kind, n in self.faults.items()})
        totals.update(interleavings=1, executions=len(self.arns), stale_refused=self.stale_refused)
        totals.update(reruns_after_a_crash=self.log.reruns)
        for name, arn in self.arns.items():
            record = self.log.get(arn)
            assert record is not None
            if arn in self.stopped:
                assert record.status in ("ABORTED", "SUCCEEDED"), (name, record.status)
                continue
            assert record.status == "SUCCEEDED", (name, record.status, self._debug())
            assert record.state["output"] == REFERENCE[name.rsplit("-", 1)[0]], name
            assert not record.outbox, name

    def _debug(self) -> str:
        heads = {a: (h.status, h.seq, [m.id for m in h.outbox]) for a, h in self.log._heads.items()}
        queued = [(due - self.bus.now, m.kind, m.id) for due, m in self.bus.entries()]
        leases = dict(self.log._leases)
        return f"heads={heads} queued={queued} leases={leases}"

    def _all_done(self) -> bool:
        return all(
            (record := self.log.get(arn)) is not None and record.status != "RUNNING"
            for arn in self.arns.values()
        ) and not any(h.status == "RUNNING" for h in self.log._heads.values())


class RunnerChaosMachine(ChaosMachine):
    """The same faults with every Lambda task run as deployed: queued, then run and
    committed by whichever stepper takes the task message (the runner's own commit of
    runtime/runner_commit.py, the lease's recorded result and a result message as its
    fallback), never inline in the commit that scheduled it."""

    def __init__(self) -> None:
        super().__init__()
        for stepper in (self.api, self.rival):
            stepper.inline_tasks = False  # task messages go on the queue, with the rest


class InPlaceChaosMachine(RunnerChaosMachine):
    """As deployed with a tasks queue: one commit's tasks travel as one group message,
    and a runner runs the tasks its own commit schedules in place (runtime/in_place.py:
    held, their outbox left pending, run in the same delivery), under the same faults."""

    def __init__(self) -> None:
        super().__init__()
        for stepper in (self.api, self.rival):
            stepper.tasks_bus = self.bus  # the tasks queue: the same bag of messages


HELD_SECONDS = 30
"""The seconds left a :class:`HeldChaosMachine` runner invocation says it has."""


class HeldChaosMachine(InPlaceChaosMachine):
    """As :class:`InPlaceChaosMachine`, each delivery with a deadline (its seconds left),
    as the deployed runner Lambda: a runner that holds its tasks marks the head "held
    until" the deadline, and no other delivery re-sends that outbox before it has passed."""

    def _deliver(self, message: Message, stepper: Stepper) -> None:
        """One delivery, with HELD_SECONDS left (acknowledged unless it failed)."""
        calls = sum(self.calls.values())
        failed = stepper.handle_batch([message], None, lambda: float(HELD_SECONDS))
        if failed:
            self.log.reruns += sum(self.calls.values()) - calls
        self.bus.lose_in, self.log.crash_commit = None, None
        self.bus.ack(message)
        if failed:
            self.bus.send(message, LEASE_SECONDS)


class LazyRepairChaosMachine(ChaosMachine):
    """As :class:`ChaosMachine`, with the API as deployed since issue 18's round 11: a repair
    message only after a failed send and before a commit that ends an execution (not before
    each commit); what an API crash leaves pending on a running execution is the repair
    job's."""

    def __init__(self) -> None:
        super().__init__()
        self.api.repair_delay = 0
        self.api.failed_send_repair = REPAIR_DELAY
