"""EXPRESS map runs: items run in batches by :func:`stepflow.runtime.express.run_batch`.

No durable execution per item. The run's head starts a window of positions as batch
messages (``<run key>#xb/<first position>``, :func:`batch_size` positions each).
They are task messages (on AWS: the tasks queue and its runner, up to 15 minutes, never
the stepper); a runner runs a batch once under a lease (the lease record keeps its report, so a
redelivery after the run only re-sends it), writes each finished item's result once
(``<run key>#xr/<position>``: never in a head), re-arms the items the batch parked or
did not reach (delayed batch messages carrying their saved state) and reports the
finished ones to the run (``MapRunBatchDone``: one head commit per batch).

What one batch costs (any size): its lease (two writes), one read of the run's head, one
report and one head commit; each finished item adds a 25th of a write request
(BatchWriteItem) and, at the run's end, a 100th of a read (BatchGetItem).

What bounds a batch: its items run one after another in one runner invocation, so

- **time**: a batch starts no item and no further step after :data:`BATCH_SECONDS` (of
  the runner's 15 minutes); the item in progress is parked, the rest re-armed unrun;
- **concurrency**: at most :data:`EXPRESS_BATCH` positions, and a tenth of the window
  (MaxConcurrency) down to :data:`MIN_BATCH`, so a window still runs ten batches at once;
- **payload**: items re-armed together are split into messages of at most
  :data:`REARM_BYTES` of saved state (an SQS message holds 256 KB).

A batch's results are written without a condition (BatchWriteItem) when no other runner
can have written them: the lease is the message's first (no runner ran it before) and
is still ours for :data:`WRITE_MARGIN` seconds more (no runner may take it over before
the write ends). Otherwise (a re-run after its runner's lease ran out) each result is a
conditional put that keeps a success already written, as before.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stepflow.data.budget import ClockBudget
from stepflow.runtime import leases
from stepflow.runtime.express import ItemResult, run_batch
from stepflow.runtime.map_run_state import RunHead
from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import delay
from stepflow.runtime.ports import ExecutionAlreadyExistsError, ExecutionRecord
from stepflow.runtime.wire import encode_wire

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns

BATCH_MARK = "#xb/"
EXPRESS_BATCH = 100
"""The most items (or ItemBatcher batches) one EXPRESS batch message runs."""
MIN_BATCH = 25
"""Positions per batch message however small the window (unless fewer are free)."""
BATCHES_PER_COMMIT = 40
LEASE_SECONDS = 900.0
BATCH_SECONDS = 600.0
"""A batch starts nothing after this many seconds (the runner Lambda's timeout is 900)."""
WRITE_MARGIN = 60.0
"""Seconds of its lease a batch must have left to write its results unconditionally."""
REARM_BYTES = 128 * 1024
"""The most saved item state one re-armed batch message carries (one item may exceed it)."""
RESULT_READS = 100
"""Result records a redrive's check reads per request."""
FINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT")
NOT_STARTED = "NOT_STARTED"
"""A batch report's status of an item that never ran: out of the window, counted nowhere."""


def batch_size(window: int) -> int:
    """Positions per batch message for a run of this window (see the module docstring)."""
    return max(MIN_BATCH, min(EXPRESS_BATCH, window // 10))


def fill_express(runs: MapRuns, key: str, head: RunHead, outbox: list[Message]) -> None:
    """Start batches of the run's next positions while the window allows."""
    size = batch_size(head.window())
    checked: dict[int, str | None] = {}  # redrive: the statuses of results read so far
    for _ in range(BATCHES_PER_COMMIT):
        free = head.window() - len(head.running)
        if head.next >= head.children or free <= 0:
            return
        first = head.next
        positions: list[list[Any]] = []
        while head.next < head.children and len(positions) < min(free, size):
            position = head.next
            head.next += 1
            if str(position) in head.running:  # redriven while its batch still runs
                continue
            if position < head.check_below:  # redrive: a succeeded item is not run again
                if position not in checked:
                    checked.update(_statuses(runs, key, position, head.check_below))
                if checked.pop(position) == "SUCCEEDED":
                    continue
            head.running[str(position)] = runs.pages.child(key, position).count
            positions.append([position, None])
        if positions:
            body = {"type": "MapRunBatch", "run": key, "items": positions, "attempt": 0}
            batch_id = f"{key}{BATCH_MARK}{first}#{head.redrive_count}#0"
            # A task message: on AWS it goes to the tasks queue, run by the runner (15 min).
            outbox.append(Message(f"{key}{BATCH_MARK}{first}", batch_id, "task", body))


def express_batch(runs: MapRuns, message: Message) -> None:
    """Run one batch message once: results written, parked items re-armed, a report sent."""
    body = message.body
    key = str(body["run"])
    now = runs.clock()
    claim = leases.claim(runs.log, key, message.id, runs.owner, now, LEASE_SECONDS)
    if claim.status == "busy":
        # A duplicate of a message another runner is running. Acknowledged, it may delete
        # the message (SQS deletes through the latest receipt), so that the first copy
        # never comes back if its runner dies: sent again for when that lease ends (it
        # then finds the batch's report, or runs it).
        later = delay(claim.lease.until - now + 1) if claim.lease is not None else 0
        (runs.sender.tasks_bus or runs.sender.bus).send(message, later)
        return
    if claim.status == "done":
        assert claim.result is not None
        if not _redriven_since(runs, key, message):
            runs.sender.bus.send(_report(key, message, claim.result["done"]))
        return
    assert claim.lease is not None
    try:
        _run(runs, key, message, claim.lease, now)
    except BaseException:  # the next delivery may run it at once (its writes: conditional)
        with contextlib.suppress(Exception):
            runs.log.put_lease(leases.release(claim.lease, now))
        raise


def _run(runs: MapRuns, key: str, message: Message, lease: leases.TaskLease, now: float) -> None:
    """Run a batch whose ``lease`` this runner just took (see :func:`express_batch`)."""
    body = message.body
    if not int(body.get("attempt") or 0) and not _running(runs, key):
        # Stopped or failed before this batch started: its items never run (AWS starts
        # no child after a run's end); they leave the window uncounted, a redrive runs them.
        not_started = [[position, NOT_STARTED] for position, _ in body["items"]]
        runs.sender.bus.send(_report(key, message, not_started))
        leases.finish(runs.log, lease, {"done": not_started})
        return
    config = runs.pages.config(key)
    inputs: list[Any] = []
    for position, resume in body["items"]:
        if resume is not None:
            inputs.append(ItemResult.from_json(resume))
        else:
            inputs.append((int(position), runs.pages.child(key, int(position)).input))
    scope = config.get("scope") or {}
    if runs.invoker is None:
        raise RuntimeError("an EXPRESS map run needs the stepper's task invoker")
    results = run_batch(
        runs.definitions(str(config["state_machine_arn"])),
        str(config["machine"]),
        inputs,
        context=dict(scope.get("context") or {}),
        variables=dict(scope.get("variables") or {}),
        invoker=runs.invoker,
        clock=runs.clock,
        batch_budget=ClockBudget(
            runs.clock, expression_seconds=BATCH_SECONDS, decision_seconds=BATCH_SECONDS
        ),
        parent_arn=str(config["map_run_arn"]),
        redrive=_generation(message),
    )
    finished = [result for result in results if result.status in FINAL]
    if lease.version == 1 and runs.clock() < lease.until - WRITE_MARGIN:
        runs.log.put_many([_record(runs, key, result) for result in finished])
    else:  # another runner may have run this batch before: keep a success it wrote
        for result in finished:
            _write(runs, key, result)
    done = [[result.index, result.status] for result in finished]
    again = [
        [result.index, result.to_json() if result.status == "PENDING" else None]
        for result in results
        if result.status not in FINAL
    ]
    for later, wake in _rearmed(message, again):
        (runs.sender.tasks_bus or runs.sender.bus).send(later, delay((wake or now) - now))
    if done:
        runs.sender.bus.send(_report(key, message, done))
    leases.finish(runs.log, lease, {"done": done})


def _running(runs: MapRuns, key: str) -> bool:
    """Whether the run is still running (a batch of a stopped or failed run does not start)."""
    record = runs.log.get(key)
    return record is not None and record.state.get("status") == "RUNNING"


def _redriven_since(runs: MapRuns, key: str, message: Message) -> bool:
    """Whether the run was redriven after this batch (of a redrive count in its id) started.

    Its report was sent when it ended; re-sent now, it would count its positions for
    the redrive, which runs again those that failed (as FAILED, or dropped from the
    window as never started, while another batch runs them).
    """
    generation = _generation(message)
    record = runs.log.get(key)
    return record is not None and int(record.state.get("redrive_count") or 0) > generation


def _generation(message: Message) -> int:
    """The run's redrive count when the batch (or the one it re-arms) was started.

    Batch ids end ``#<redrive count>#<attempt>`` (:func:`fill_express`, :func:`_rearmed`).
    """
    return int(message.id.rsplit("#", 2)[1])


def _report(key: str, message: Message, done: list[list[Any]]) -> Message:
    body = {"type": "MapRunBatchDone", "done": done}
    return Message(key, f"{message.id}#done", "event", body)


def _rearmed(message: Message, again: list[list[Any]]) -> list[tuple[Message, float | None]]:
    """The delayed messages that carry a batch's parked and unreached items on.

    Split so that each carries at most :data:`REARM_BYTES` of saved state; the first keeps
    the batch's name, the others are named by their first position (unique in the run).
    """
    body = message.body
    attempt = int(body.get("attempt") or 0) + 1
    base, generation, _ = message.id.rsplit("#", 2)
    run_part = base.rsplit(BATCH_MARK, 1)[0]
    chunks: list[list[list[Any]]] = [[]] if again else []
    size = 0
    for entry in again:
        # measured as the bus writes it (U+FFFE, U+FFFF escaped: six bytes, not three)
        entry_size = len(encode_wire(entry[1]).encode()) if entry[1] is not None else 0
        if chunks[-1] and size + entry_size > REARM_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry_size
    out: list[tuple[Message, float | None]] = []
    for number, chunk in enumerate(chunks):
        name = base if number == 0 else f"{run_part}{BATCH_MARK}{chunk[0][0]}"
        wakes = [float(e[1]["wake_at"]) for e in chunk if e[1] and e[1].get("wake_at") is not None]
        wake = min(wakes) if wakes else None
        rest = {**body, "items": chunk, "attempt": attempt}
        arn = message.execution_arn if number == 0 else name
        later = Message(arn, f"{name}#{generation}#{attempt}", "task", rest, wake or 0.0)
        out.append((later, wake))
    return out


def _statuses(runs: MapRuns, key: str, position: int, below: int) -> dict[int, str | None]:
    """The statuses of the result records from ``position`` on (a redrive's check)."""
    positions = range(position, min(position + RESULT_READS, below))
    records = runs.log.get_many([f"{key}#xr/{p}" for p in positions])
    return {p: r.status if r is not None else None for p, r in zip(positions, records, strict=True)}


def _record(runs: MapRuns, key: str, result: Any) -> ExecutionRecord:
    """One finished item's result record (never listed)."""
    return ExecutionRecord(
        execution_arn=f"{key}#xr/{result.index}",
        state_machine_arn="",
        name=str(result.index),
        input=None,
        status=str(result.status),
        seq=0,
        state={"output": result.output, "error": result.error, "cause": result.cause},
        start_date=float(result.start_date or runs.clock()),
        stop_date=float(result.stop_date or runs.clock()),
        attributes={"listed_under": ""},
    )


def _write(runs: MapRuns, key: str, result: Any) -> None:
    """Store one finished item's result (once; a redrive's overwrites its failure)."""
    record = _record(runs, key, result)
    try:
        runs.log.create(record, [])
    except ExecutionAlreadyExistsError as exc:
        if exc.existing.status != "SUCCEEDED":
            with contextlib.suppress(Exception):
                runs.log.commit(replace(record, seq=exc.existing.seq + 1), exc.existing.seq, [])
