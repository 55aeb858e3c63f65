"""An outbox left uncleared must not hand a group's running members out a second time.

A commit's task messages travel to the runner as one group, claimed through one lease
record keyed by the group (``tasks#<seq>#<first index>``). When the write that clears
the outbox after the send does not land (a throttled or timed-out write), the head
keeps the raw task messages. The runner's commit of the first results then carried the
still-open members forward into the new outbox and sent them again, grouped anew: a
group of fewer members has another key, so its claim was granted while the first
runner still ran them, and they ran twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from stepflow.runtime import InMemoryLog, Message

from tests.unit.test_runner_batch import setup
from tests.unit.test_runner_group_review6 import _parallel


def test_members_still_running_are_not_regrouped_from_an_uncleared_outbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Counter[str]()
    release = threading.Event()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            if name != "a" and calls[name] == 1:  # a second run (the bug) does not wait
                release.wait(10)
            return {"ran": name}

        return run

    with monkeypatch.context() as patch:  # the clear after the send does not land
        patch.setattr(InMemoryLog, "clear_outbox", lambda self, arn, seq: None)
        log, _bus, runner, messages = setup(
            {n: handler(n) for n in "abc"}, _parallel("abc"), grouped=True
        )
    (group,) = messages
    (arn,) = {m.execution_arn for m in messages}
    assert len(log.get(arn).outbox) == 3  # type: ignore[union-attr]
    runner.task_group_wait = 0.05  # a's result is committed while b and c still run
    tasks_bus = runner.tasks_bus
    assert tasks_bus is not None
    sent_before = len(tasks_bus.sent)  # type: ignore[attr-defined]
    first = threading.Thread(target=runner.handle_batch, args=([group],))
    first.start()
    try:
        deadline = time.monotonic() + 10
        while calls["a"] == 0 or not _committed_a(log, arn):
            assert time.monotonic() < deadline, "a's result was never committed"
            time.sleep(0.01)
        # Every task message sent since: another runner takes it while b and c still run.
        again: list[Message] = list(tasks_bus.sent[sent_before:])  # type: ignore[attr-defined]
        for message in again:
            runner.handle_batch([message])
    finally:
        release.set()
        first.join(10)
    assert calls == {"a": 1, "b": 1, "c": 1}
    head = log.get(arn)
    assert head is not None and head.status == "SUCCEEDED", head


def _committed_a(log: InMemoryLog, arn: str) -> bool:
    head = log.get(arn)
    return head is not None and head.seq > 1
