"""A map run's progress after its deliveries: failure threshold, window fill, end.

:func:`advance` fails a run past its tolerated failures (stopping its running
children), starts the next children while the window has room (a ``MapRunFill``
continues a long fill) and, once all ended, reads the output and tells the parent
(``MapRunFinished``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.engine import MapRunFinished
from stepflow.errors import StatesErrorName
from stepflow.runtime.map_express import fill_express
from stepflow.runtime.map_results import run_output
from stepflow.runtime.map_run_state import START_PER_COMMIT, RunHead, child_execution_arn
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.ports import ExecutionRecord

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns

THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"
CHECKS_PER_COMMIT = 500
"""Redrive: children whose record one commit reads to find the unsuccessful ones."""


def advance(
    runs: MapRuns,
    key: str,
    head: RunHead,
    now: float,
    outbox: list[Message],
    progress: list[list[Any]],
) -> None:
    """Stop on too many failures, fill the window, finish when all ended."""
    if head.status == "RUNNING" and head.error is None and head.exceeds_tolerance():
        head.error = StatesErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD.value
        head.cause = THRESHOLD_CAUSE
    if head.status == "RUNNING" and head.error is not None:
        head.status, head.stop_date, head.stopping = "FAILED", now, True
        outbox.append(_finished(key, head, None))
    if head.stopping:
        # An EXPRESS batch cannot be stopped: its late report is counted, nothing more.
        running = [] if head.execution_type == "EXPRESS" else head.running
        for position in sorted(running, key=int):
            if head.inline and head.status == "FAILED":
                progress.append(["Aborted", int(position)])
            arn = child_execution_arn(head.map_run_arn, int(position))
            # Aimed at the child's run the head knows (a Stop of this attempt, delivered
            # late, must not abort the child a later redrive runs again).
            redrive = head.restarted.get(position, -1) + 1
            stop = {"type": "Stop", "redrive": redrive}
            stop_id = f"{key}#stop/{position}#{head.redrive_count}"
            outbox.append(Message(arn, stop_id, "event", stop))
        head.stopping = False
        return
    if head.status != "RUNNING":
        return
    _fill(runs, key, head, outbox, progress)
    if not head.running and head.next >= head.children:
        head.status, head.stop_date = "SUCCEEDED", now
        outbox.append(_finished(key, head, run_output(runs, head)))


def _fill(
    runs: MapRuns, key: str, head: RunHead, outbox: list[Message], progress: list[list[Any]]
) -> None:
    if head.execution_type == "EXPRESS":
        fill_express(runs, key, head, outbox)
        return
    started = checked = 0
    while (
        head.next < head.children
        and len(head.running) < head.window()
        and started < START_PER_COMMIT
        and checked < CHECKS_PER_COMMIT
    ):
        position = head.next
        if str(position) in head.running:  # redriven while its stop is on the way
            head.next += 1
            continue
        arn = child_execution_arn(head.map_run_arn, position)
        body: dict[str, Any] = {"map_run": key, "position": position}
        body["attempt"] = head.redrive_count  # tells its NOT_STARTED answer's attempt
        if position < head.check_below:  # redrive: only unsuccessful or unstarted ones
            checked += 1
            child = runs.log.get(arn)
            late = head.not_started.pop(str(position), None)
            if late is not None and _settle_late(head, str(position), late, child, progress):
                head.next += 1
                continue
            if child is not None and child.status == "SUCCEEDED":
                head.next += 1
                continue
            body["redrive"] = child is not None
            if child is not None:
                head.restarted[str(position)] = int(child.state.get("redrive_count") or 0)
        count = runs.pages.child(key, position).count
        head.running[str(position)] = count
        message_id = f"{key}#child/{position}#{head.redrive_count}"
        outbox.append(Message(arn, message_id, "child", body))
        head.next += 1
        started += 1
        if head.inline:
            progress.append(["Started", position])
    if head.next < head.children and len(head.running) < head.window():
        more = f"{key}#fill/{head.next}#{head.redrive_count}"
        outbox.append(Message(key, more, "event", {"type": "MapRunFill"}))


def _settle_late(
    head: RunHead,
    position: str,
    late: list[int],
    child: ExecutionRecord | None,
    progress: list[list[Any]],
) -> bool:
    """Redrive: settle a child the run heard never started; whether it is not to run again.

    The refill reached its position, in ``not_started``. Started all the same and still
    running, it is a child of the run before (``stale``): its report tells. Succeeded,
    its report not applied yet, it is counted now (that report will find it nowhere).
    Otherwise it runs again, as any unsuccessful child.
    """
    count, before = late
    if child is None or int(child.state.get("redrive_count") or 0) <= before:
        return False
    if child.status == "RUNNING":
        head.running[position] = count
        head.stale.append(position)
        # Its run is the one it had (a stop is aimed at it; an earlier end is not counted).
        head.restarted[position] = int(child.state.get("redrive_count") or 0) - 1
        return True
    if child.status == "SUCCEEDED":
        head.done["SUCCEEDED"] += 1
        head.done_items["SUCCEEDED"] += count
        if head.inline:
            progress.append(["Succeeded", int(position)])
        return True
    return False


def _finished(key: str, head: RunHead, output: Any) -> Message:
    event = MapRunFinished(
        head.run_id,
        head.status,  # type: ignore[arg-type]
        output,
        head.error,
        head.cause,
        parent_redrive=head.parent_redrive,
    )
    message_id = f"{key}#finished#{head.redrive_count}"
    return Message(head.parent_arn, message_id, "event", encode_event(event))
