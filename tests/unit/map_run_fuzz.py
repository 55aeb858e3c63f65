"""A seeded fuzz of a map run redriven twice under hostile delivery: its counts must be exact.

One seed drives one run of :data:`ITEMS` (two fail until the second redrive fixes them)
through the real :class:`~stepflow.runtime.Stepper`: random batch sizes, shuffled and
duplicated deliveries, unacknowledged ones (redelivered), and messages held back and
delivered late (any message to the run or a child: starts, reports, NOT_STARTED answers,
stops, the parent's first StartMapRun). The parent redrives the run whenever it has
failed, at most twice. :func:`check` lists what the end breaks: every child counted
exactly once, none left running, the run ended SUCCEEDED for the parent's last redrive,
the run redriven exactly as often as the parent, each good item's Lambda run once.

Used by tests/integration/test_map_run_counts_fuzz.py (a few hundred seeds) and by
bench/map_run_fuzz.py (a longer campaign).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stepflow.runtime import InMemoryBus, InMemoryLog, Message
from stepflow.runtime.map_run_state import RunHead

from tests.unit import map_run_support as support
from tests.unit.map_run_support import KEY, PARENT, MeteredLog, children, finished, stepper

ITEMS: list[Any] = [1, 2, "bad", 3, "bad", 4]
REDRIVES = 2


@dataclass
class Outcome:
    """What one seed's run ended with."""

    redrives: int
    head: RunHead
    statuses: Counter[str]
    finished: list[dict[str, Any]]
    calls: Counter[str] = field(default_factory=Counter)


def run_seed(seed: int, log: Any | None = None, max_steps: int = 20_000) -> Outcome:
    """Drive one seed's run to its end (the bus empty, no redrive left to make)."""
    from tests.unit.map_run_support import start_message

    rng = random.Random(seed)
    log = log if log is not None else MeteredLog(InMemoryLog())
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    concurrency, tolerated = rng.choice([1, 2, 3]), rng.choice([0, 1])
    bus.send(start_message(ITEMS, max_concurrency=concurrency, tolerated_count=tolerated))
    redrives = 0
    original = support.work
    to_parent: list[Message] = []
    held: list[Message] = []
    try:
        for _ in range(max_steps):
            record = log.get(KEY)
            status = record.status if record is not None else None
            redriven = int(record.state.get("redrive_count") or 0) if record else 0
            if status == "FAILED" and redriven == redrives < REDRIVES and rng.random() < 0.3:
                redrives += 1
                if redrives == REDRIVES:  # the last redrive fixes the bad items
                    support.work = _fixed(original)  # type: ignore[assignment]
                seq = 5 + 2 * redrives
                fields = {"max_concurrency": concurrency, "tolerated_count": tolerated}
                bus.send(start_message(ITEMS, seq=seq, parent_redrive=redrives, **fields))
            if held and (rng.random() < 0.1 or not len(bus)):
                bus.send(held.pop(rng.randrange(len(held))))
            if not len(bus):
                if status == "FAILED" and redrives < REDRIVES:
                    continue
                break
            batch = []
            for message in bus.receive_batch(rng.randint(1, 4)):
                if message.execution_arn != PARENT and rng.random() < 0.15:
                    held.append(message)  # delivered late
                    bus.ack(message)
                else:
                    batch.append(message)
            if not batch:
                continue
            rng.shuffle(batch)
            if rng.random() < 0.3:
                batch.append(rng.choice(batch))  # delivered twice in one batch
            mine = [m for m in batch if m.execution_arn != PARENT]
            to_parent.extend(m for m in batch if m.execution_arn == PARENT)
            failed = {id(m) for m, _ in s.handle_batch(mine)} if mine else set()
            for message in batch:
                if id(message) not in failed and rng.random() >= 0.15:
                    bus.ack(message)  # else redelivered
    finally:
        support.work = original
    record = log.get(KEY)
    assert record is not None
    statuses = Counter(child.status for child in children(log))
    calls: Counter[str] = s.calls  # type: ignore[attr-defined]
    return Outcome(redrives, RunHead.from_json(record.state), statuses, finished(to_parent), calls)


def _fixed(original: Any) -> Any:
    def work(n: Any) -> Any:
        return 0 if n == "bad" else original(n)

    return work


def check(outcome: Outcome) -> list[str]:
    """What ``outcome`` breaks (empty: nothing)."""
    head, statuses = outcome.head, outcome.statuses
    problems = []
    if "RUNNING" in statuses or head.running:
        problems.append(f"children left running: {dict(statuses)}, head {head.running}")
    if {k: v for k, v in head.done.items() if v} != dict(statuses):
        problems.append(f"counts {head.done} != children {dict(statuses)}")
    if sum(statuses.values()) != len(ITEMS) or head.done_items != head.done:
        problems.append(f"children {dict(statuses)}, items {head.done_items}")
    if head.redrive_count != outcome.redrives:
        problems.append(f"run redriven {head.redrive_count} times, parent {outcome.redrives}")
    last = [d["status"] for d in outcome.finished if d["parent_redrive"] == outcome.redrives]
    if outcome.redrives == REDRIVES and last != ["SUCCEEDED"]:
        problems.append(f"ends told to the parent's last redrive: {last}, run {head.status}")
    twice = {n: c for n, c in outcome.calls.items() if n != repr("bad") and c != 1}
    if twice:
        problems.append(f"good items' Lambda calls: {twice}")
    return problems
