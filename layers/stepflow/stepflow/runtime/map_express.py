"""EXPRESS map runs: items run in batches by :func:`stepflow.runtime.express.run_batch`.

No durable execution per item. The run's head starts a window of positions as batch
messages (``<run key>#xb/<first position>``, :data:`EXPRESS_BATCH` positions each).
They are task messages (on AWS: the tasks queue and its runner, up to 15 minutes, never
the stepper); a runner runs a batch once under a lease (the lease record keeps its report, so a
redelivery after the run only re-sends it), writes each finished item's result once
(``<run key>#xr/<position>``: never in a head), re-arms the items the batch parked or
did not reach (a delayed batch message carrying their saved state) and reports the
finished ones to the run (``MapRunBatchDone``: one head commit per batch).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stepflow.runtime import leases
from stepflow.runtime.express import ItemResult, run_batch
from stepflow.runtime.map_run_state import RunHead
from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import delay
from stepflow.runtime.ports import ExecutionAlreadyExistsError, ExecutionRecord

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns

BATCH_MARK = "#xb/"
EXPRESS_BATCH = 25
"""Items (or ItemBatcher batches) one EXPRESS batch message runs."""
BATCHES_PER_COMMIT = 40
LEASE_SECONDS = 900.0
FINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT")
NOT_STARTED = "NOT_STARTED"
"""A batch report's status of an item that never ran: out of the window, counted nowhere."""


def fill_express(runs: MapRuns, key: str, head: RunHead, outbox: list[Message]) -> None:
    """Start batches of the run's next positions while the window allows."""
    for _ in range(BATCHES_PER_COMMIT):
        free = head.window() - len(head.running)
        if head.next >= head.children or free <= 0:
            return
        first = head.next
        positions: list[list[Any]] = []
        while head.next < head.children and len(positions) < min(free, EXPRESS_BATCH):
            position = head.next
            head.next += 1
            if str(position) in head.running:  # redriven while its batch still runs
                continue
            if position < head.check_below:  # redrive: a succeeded item is not run again
                done = runs.log.get(f"{key}#xr/{position}")
                if done is not None and done.status == "SUCCEEDED":
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
        raise RuntimeError(f"{message.id}: another stepper runs this batch")
    if claim.status == "done":
        assert claim.result is not None
        runs.sender.bus.send(_report(key, message, claim.result["done"]))
        return
    if not int(body.get("attempt") or 0) and not _running(runs, key):
        # Stopped or failed before this batch started: its items never run (AWS starts
        # no child after a run's end); they leave the window uncounted, a redrive runs them.
        not_started = [[position, NOT_STARTED] for position, _ in body["items"]]
        runs.sender.bus.send(_report(key, message, not_started))
        if claim.lease is not None:
            leases.finish(runs.log, claim.lease, {"done": not_started})
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
        parent_arn=str(config["map_run_arn"]),
    )
    done: list[list[Any]] = []
    again: list[list[Any]] = []
    wake: float | None = None
    for result in results:
        if result.status in FINAL:
            _write(runs, key, result)
            done.append([result.index, result.status])
        else:
            parked = result.to_json() if result.status == "PENDING" else None
            again.append([result.index, parked])
            if result.wake_at is not None:
                wake = result.wake_at if wake is None else min(wake, result.wake_at)
    if again:
        attempt = int(body.get("attempt") or 0) + 1
        rest = {**body, "items": again, "attempt": attempt}
        first_id = message.id.rsplit("#", 1)[0]
        later = Message(message.execution_arn, f"{first_id}#{attempt}", "task", rest, wake or 0.0)
        (runs.sender.tasks_bus or runs.sender.bus).send(later, delay((wake or now) - now))
    if done:
        runs.sender.bus.send(_report(key, message, done))
    if claim.lease is not None:
        leases.finish(runs.log, claim.lease, {"done": done})


def _running(runs: MapRuns, key: str) -> bool:
    """Whether the run is still running (a batch of a stopped or failed run does not start)."""
    record = runs.log.get(key)
    return record is not None and record.state.get("status") == "RUNNING"


def _report(key: str, message: Message, done: list[list[Any]]) -> Message:
    body = {"type": "MapRunBatchDone", "done": done}
    return Message(key, f"{message.id}#done", "event", body)


def _write(runs: MapRuns, key: str, result: Any) -> None:
    """Store one finished item's result (once; a redrive's overwrites its failure)."""
    record = ExecutionRecord(
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
    try:
        runs.log.create(record, [])
    except ExecutionAlreadyExistsError as exc:
        if exc.existing.status != "SUCCEEDED":
            with contextlib.suppress(Exception):
                runs.log.commit(replace(record, seq=exc.existing.seq + 1), exc.existing.seq, [])


def express_record(runs: MapRuns, key: str, position: int) -> ExecutionRecord | None:
    """An EXPRESS item's result as a record (its input from its page), or None."""
    record = runs.log.get(f"{key}#xr/{position}")
    if record is None:
        return None
    return replace(record, input=runs.pages.child(key, position).input)
