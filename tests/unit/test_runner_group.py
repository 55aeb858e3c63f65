"""One commit's tasks travel as ONE tasks-queue message and are claimed with ONE lease.

Issue 18, round 3 (runtime/task_groups.py): a Parallel's branches or a Map's iterations
sent by one commit are one group message; the runner runs its members side by side
under one lease record (``TK#tasks#<seq>#<first index>``) and commits their results as
before. Every guarantee of the single-task path holds, counted: a duplicate runs
nothing twice, a crash between the invoke and the commit reruns only after the lease
ran out (once), the fallback loses no result, a stale or forged group is refused.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.aws.sqs_bus import decode_message, encode_message
from stepflow.runtime import InMemoryLog, Message, Stepper, in_place, leases
from stepflow.runtime.messages import decode_event
from stepflow.runtime.signing import ForgedMessageError, KeyRing, MessageSigner, SigningKey
from stepflow.runtime.task_groups import (
    GROUP_MAX_BYTES,
    GROUP_MAX_TASKS,
    group_key,
    group_members,
    group_tasks,
)
from stepflow.runtime.task_runs import TaskLeaseHeldError
from stepflow.testing.handlers import task_invoker

from tests.unit.test_runner_batch import (
    FN,
    THREE,
    CountingLog,
    RecordingBus,
    _wait,
    counting,
    history,
    setup,
)

GROUP_KEY = "tasks#1#0"  # the start's commit (seq 1), its first task


class Crash(BaseException):
    """The runner's process dies (not an error it handles)."""


def lease_writes(log: InMemoryLog) -> list[str]:
    """Counts lease writes by key (InMemoryLog.put_lease wrapped)."""
    writes: list[str] = []
    put = log.put_lease

    def counted(lease: leases.TaskLease) -> None:
        put(lease)
        writes.append(lease.task_id)

    log.put_lease = counted  # type: ignore[method-assign]
    return writes


def a_stepper(log: InMemoryLog) -> Stepper:
    return Stepper(
        log=log,
        bus=RecordingBus(),  # type: ignore[arg-type]
        definitions=lambda _arn: parse(THREE),
        clock=lambda: 1_000.0,
        invoker=task_invoker({}),
    )


def test_a_parallels_three_tasks_are_one_message_one_claim_one_commit() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    writes = lease_writes(log)
    # GIVEN the start sent its three tasks as ONE message
    (group,) = messages
    assert [m.body["task_id"] for m in group_members(group) or []] == ["t4", "t5", "t6"]
    # WHEN the runner gets it
    assert runner.handle_batch([group]) == []
    # THEN each ran once, under ONE lease write, and their results are one commit
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert writes == [GROUP_KEY]
    assert log.commits == {group.execution_arn: 1} and bus.sent == []
    record = log.get(group.execution_arn)
    assert record is not None and record.status == "SUCCEEDED"
    for member in group_members(group) or []:  # no single-task lease was written
        assert log.lease(group.execution_arn, str(member.body["task_id"])) is None


def test_a_duplicate_delivery_of_a_group_runs_nothing_twice() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    writes = lease_writes(log)
    (group,) = messages
    # WHEN two copies come in one batch, and a third after the commit
    assert runner.handle_batch([group, group]) == []
    assert runner.handle_batch([group]) == []
    # THEN each task ran once; the duplicate after the commit read the head and wrote nothing
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert writes == [GROUP_KEY]
    assert log.commits == {group.execution_arn: 1} and bus.sent == []
    assert history(log, group.execution_arn).count("LambdaFunctionSucceeded") == 3


def test_a_crash_between_invoke_and_commit_reruns_once_after_the_lease_ran_out() -> None:
    calls = Counter[str]()
    now = [1_000.0]
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    runner.clock = lambda: now[0]
    (group,) = messages

    def die() -> None:
        raise Crash

    # GIVEN the runner dies after the three ran, before its commit (unacknowledged)
    log.before.append(die)
    with pytest.raises(Crash):
        runner.handle_batch([group])
    assert calls == {"a": 1, "b": 1, "c": 1} and log.commits == {}
    # WHEN the message comes back while the group's lease is live
    failures = runner.handle_batch([group])
    # THEN nothing runs (it comes back later)
    assert [type(e) for _, e in failures] == [TaskLeaseHeldError]
    assert calls == {"a": 1, "b": 1, "c": 1}
    # WHEN it comes back after the lease ran out: each runs again ONCE, and is committed
    now[0] += 901
    assert runner.handle_batch([group]) == []
    assert runner.handle_batch([group]) == []  # and a later duplicate runs nothing
    assert calls == {"a": 2, "b": 2, "c": 2}
    assert log.commits == {group.execution_arn: 1}
    record = log.get(group.execution_arn)
    assert record is not None and record.status == "SUCCEEDED"


def test_a_failed_commit_records_the_groups_results_on_its_one_lease_and_sends_them() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    writes = lease_writes(log)
    (group,) = messages
    arn = group.execution_arn
    # GIVEN the runner's commit fails
    log.fail = True
    assert runner.handle_batch([group]) == []
    log.fail = False
    # THEN the three results were recorded in ONE write of the group's lease, which is
    # released (no member runs), and sent to the transition queue
    assert writes == [GROUP_KEY, GROUP_KEY]
    lease = log.lease(arn, GROUP_KEY)
    assert lease is not None and lease.released and lease.result is not None
    assert sorted(lease.result["done"]) == ["t4", "t5", "t6"]
    assert sorted(type(decode_event(m.body)).__name__ for m in bus.sent) == ["TaskSucceeded"] * 3
    # AND a duplicate of the group (the sends lost, say) sends the recorded results again,
    # running nothing
    assert runner.handle_batch([group]) == []
    assert calls == {"a": 1, "b": 1, "c": 1} and len(bus.sent) == 6
    # AND a stepper commits them: each result once, the execution succeeds
    assert a_stepper(log).handle_batch(list(bus.sent)) == []
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert history(log, arn).count("LambdaFunctionSucceeded") == 3


def test_a_groups_lease_that_runs_out_while_a_slow_task_runs() -> None:
    calls = Counter[str]()
    now = [1_000.0]
    log, bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    (group,) = messages
    arn = group.execution_arn

    def slow(payload: Any) -> Any:  # outlives the group's lease (900 s)
        calls["slow"] += 1
        assert _committed(log, arn)  # b and c were committed while it ran
        now[0] += 901
        return {"ran": "a"}

    runner.clock = lambda: now[0]
    runner.task_group_wait = 0.05
    runner.invoker = task_invoker({"a": slow, "b": counting(calls, "b"), "c": counting(calls, "c")})
    assert runner.handle_batch([group]) == []
    # THEN b and c were committed; a's result went through the lease and the queue
    assert log.commits == {arn: 1}
    assert [decode_event(m.body).task_id for m in bus.sent] == ["t4"]  # type: ignore[attr-defined]
    lease = log.lease(arn, GROUP_KEY)
    assert lease is not None and lease.result is not None and lease.result["done"]["t4"]
    # (b and c listed done without a result: a runner that read the head before their
    # commit and claims after this record runs neither; released, nothing runs now)
    assert lease.result["done"]["t5"] is None and lease.result["done"]["t6"] is None
    assert lease.released
    # AND a redelivery of the group runs nothing (a's result is sent again, b and c closed)
    assert runner.handle_batch([group]) == []
    assert calls == {"slow": 1, "b": 1, "c": 1}
    assert a_stepper(log).handle_batch(list(bus.sent)) == []
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert history(log, arn).count("LambdaFunctionSucceeded") == 3


def _committed(log: CountingLog, arn: str) -> bool:
    """Whether ``arn`` gets its first commit (polled, bounded: not a timing)."""
    return _wait(lambda: log.commits[arn] == 1)


def test_a_group_whose_lease_another_runner_holds_waits() -> None:
    calls = Counter[str]()
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    (group,) = messages
    claim = leases.claim_group(log, group.execution_arn, GROUP_KEY, "other", 1_000.0, 900)
    assert claim.status == "acquired"
    failures = runner.handle_batch([group])
    assert [(m.id, type(e)) for m, e in failures] == [(group.id, TaskLeaseHeldError)]
    assert calls == {} and log.commits == {}


def test_a_group_is_signed_whole_and_a_forged_member_is_refused() -> None:
    log, _bus, runner, messages = setup({}, grouped=True)
    (group,) = messages
    signer = MessageSigner(KeyRing(SigningKey("v1", b"k" * 32)))
    wire = encode_message(group, signer)
    assert decode_message(wire, signer) == group
    # a member's input changed on the way: the signature no longer matches
    data = json.loads(wire)
    data["body"]["group"][1]["body"]["input"] = {"n": "forged"}
    with pytest.raises(ForgedMessageError):
        decode_message(json.dumps(data), signer)
    # a (signed) group naming another execution's task is refused without running it
    other = Message(
        group.execution_arn,
        group.id,
        "task",
        {"group": [{"id": "arn:aws:states:x:1:execution:Other:y#1#0", "body": {"task_id": "t"}}]},
    )
    failures = runner.handle_batch([other])
    assert [type(e) for _, e in failures] == [ValueError] and log.commits == {}


def test_groups_split_past_the_count_cap_and_keep_polls_apart() -> None:
    arn = "arn:aws:states:us-east-1:1:execution:M:x"
    tasks = [Message(arn, f"{arn}#7#{i}", "task", {"task_id": f"t{i}"}) for i in range(12)]
    poll = Message(arn, f"{arn}#7#12", "task", {"op": "poll", "task_id": "t0"})
    sent = group_tasks([*tasks, poll])
    assert [len(m.body.get("group", [m])) for m in sent] == [1, GROUP_MAX_TASKS, 2]
    assert sent[0] == poll
    assert [group_key(m) for m in sent[1:]] == ["tasks#7#0", "tasks#7#10"]
    (alone,) = group_tasks(tasks[:1])  # a lone task travels as a group of one
    assert group_members(alone) == tasks[:1] and group_key(alone) == "tasks#7#0"


def test_a_lone_task_too_big_for_a_group_keeps_the_single_shape() -> None:
    arn = "arn:aws:states:us-east-1:1:execution:M:x"
    big = Message(arn, f"{arn}#7#0", "task", {"task_id": "t", "input": "x" * GROUP_MAX_BYTES})
    assert group_tasks([big]) == [big]
    fits = Message(arn, f"{arn}#7#0", "task", {"task_id": "t", "input": "x" * 1000})
    assert [group_members(m) for m in group_tasks([fits])] == [[fits]]


THEN_C = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": n, "States": {n: {"Type": "Task", "Resource": FN + n, "End": True}}}
                for n in "ab"
            ],
            "Next": "C",
        },
        "C": {"Type": "Task", "Resource": FN + "c", "End": True},
    },
}


def test_a_redelivered_group_after_a_commit_whose_outbox_was_not_sent_sends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(in_place, "MAX_ROUNDS", 0)  # C is sent, not run in place
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, THEN_C, grouped=True)
    (group,) = messages
    tasks = runner.tasks_bus
    assert isinstance(tasks, RecordingBus)
    tasks.sent.clear()
    # GIVEN the runner committed a's and b's results, then could send nothing
    tasks.down = bus.down = True
    failures = runner.handle_batch([group])
    assert [m.id for m, _ in failures] == [group.id]
    assert log.commits == {group.execution_arn: 1} and tasks.sent == []
    # WHEN the group message comes back
    tasks.down = bus.down = False
    assert runner.handle_batch([group]) == []
    # THEN neither task runs again, and the pending outbox (C's task) is sent, once
    assert calls == {"a": 1, "b": 1}
    sent = [x for m in tasks.sent for x in (group_members(m) or [m])]
    assert [m.body["resource"] for m in sent] == [FN + "c"] and len(tasks.sent) == 1
    record = log.get(group.execution_arn)
    assert record is not None and record.outbox == ()


def test_a_group_listing_a_member_twice_runs_it_once() -> None:
    """A (signed) group naming one task twice, a sender's bug: the task runs once."""
    calls = Counter[str]()
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    (group,) = messages
    entries = group.body["group"]
    twice = Message(group.execution_arn, group.id, "task", {"group": [*entries, entries[0]]})
    assert [m.body["task_id"] for m in group_members(twice) or []] == ["t4", "t5", "t6"]
    assert runner.handle_batch([twice]) == []
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert log.commits == {group.execution_arn: 1}
    assert history(log, group.execution_arn).count("LambdaFunctionSucceeded") == 3


@pytest.mark.parametrize("swap", ["one id, two tasks", "one task, two ids"])
def test_a_group_naming_a_task_or_a_message_twice_is_refused(swap: str) -> None:
    """review: plans are keyed by message id, so one id for two tasks let a closed task
    take an open one's plan and run again; such a group is refused, nothing runs."""
    calls = Counter[str]()
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    (group,) = messages
    first, second, *_ = group.body["group"]
    if swap == "one id, two tasks":
        bad = {"id": first["id"], "body": second["body"]}
    else:
        bad = {"id": second["id"], "body": first["body"]}
    forged = Message(group.execution_arn, group.id, "task", {"group": [first, bad]})
    with pytest.raises(ValueError, match="twice"):
        group_members(forged)
    assert [m.id for m, _ in runner.handle_batch([forged])] == [group.id]
    assert calls == {}
    assert log.commits.get(group.execution_arn, 0) == 0
