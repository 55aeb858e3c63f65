"""A map run's deliveries, one at a time, on its loaded head.

:func:`apply_event` counts a child's (or an EXPRESS batch's) report, a cancel, a
redrive's start or an update into the :class:`~stepflow.runtime.map_run_state.RunHead`
that :class:`~stepflow.runtime.map_runs.MapRuns` commits; the messages it must send go
to ``outbox``, an inline run's iteration events to ``progress``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.runtime.map_express import NOT_STARTED
from stepflow.runtime.map_inline import cancelled, inline_failure
from stepflow.runtime.map_run_state import UNSUCCESSFUL, RunHead, child_execution_arn
from stepflow.runtime.messages import Message

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns


def apply_event(
    runs: MapRuns,
    key: str,
    head: RunHead,
    message_id: str,
    body: dict[str, Any],
    now: float,
    outbox: list[Message],
    progress: list[list[Any]],
) -> None:
    """Apply one delivery's ``body`` to ``head`` (see the module docstring)."""
    kind = body.get("type")
    reports = [(body.get("child_id"), body.get("status"))] if kind == "ChildFinished" else []
    if kind == "MapRunBatchDone":
        reports = [(position, status) for position, status in body.get("done") or []]
    for child_id, status in reports:
        if status == NOT_STARTED:
            _not_started(runs, key, head, str(child_id), body.get("attempt"), outbox, progress)
            continue
        if kind == "ChildFinished" and (
            str(child_id) in head.stale or str(child_id) in head.restarted
        ):
            _redriven_report(runs, key, head, str(child_id), outbox, progress)
            continue
        if kind == "ChildFinished" and str(child_id) in head.not_started:
            _late_report(runs, head, str(child_id), progress)
            continue
        count = head.running.pop(str(child_id), None)
        if count is not None and status in head.done:  # else a duplicate or stale report
            head.done[str(status)] += 1
            head.done_items[str(status)] += count
            if head.inline and head.status == "RUNNING":  # else reported Aborted
                progress.append(
                    ["Succeeded" if status == "SUCCEEDED" else "Failed", int(str(child_id))]
                )
                if status != "SUCCEEDED":
                    inline_failure(head, body)
    if reports:
        return
    generation = int(body.get("parent_redrive") or 0)  # the parent's redrive it comes from
    if kind == "CancelMapRun":
        # A stop from before the parent's redrive, heard after the redrive's start: stale.
        if head.status == "RUNNING" and generation >= head.parent_redrive:
            head.status, head.stop_date, head.stopping = "ABORTED", now, True
            cancelled(head)
    elif kind == "StartMapRun":
        tombstone = not head.state_machine_arn  # cancelled before it started
        if (
            message_id != head.start_message
            and head.status in UNSUCCESSFUL
            and not tombstone
            and generation > head.parent_redrive  # else an earlier start, redelivered late
        ):
            _redrive(head, message_id, now)
            head.parent_redrive = generation
        elif head.status == "RUNNING" and generation > head.parent_redrive and not tombstone:
            # The parent was stopped and redriven before this run heard the stop (queues
            # reorder): the run goes on, for the redriven parent, and ends reporting to it.
            head.parent_redrive = generation
    elif kind == "UpdateMapRun" and head.status == "RUNNING":  # else it ended first
        if "max_concurrency" in body:
            head.max_concurrency = int(body["max_concurrency"])
        if "tolerated_count" in body:
            head.tolerated_count = int(body["tolerated_count"])
        if "tolerated_percentage" in body:
            head.tolerated_percentage = float(body["tolerated_percentage"])


def _not_started(
    runs: MapRuns,
    key: str,
    head: RunHead,
    position: str,
    attempt: Any,
    outbox: list[Message],
    progress: list[list[Any]],
) -> None:
    """A child (or EXPRESS batch item) that never started because its run had ended.

    It leaves the window uncounted; if a redrive runs the run again meanwhile, the
    position (stale: it was in the window) starts now, unless the child's record settles
    it (:func:`_told_by_record`). A STANDARD child is kept in ``not_started``: this may be
    the answer to a duplicate of its start, the other copy having started it (see
    :func:`_late_report`). A running run refuses no start of its own attempt, so while it
    runs the answer for a position not stale is to an earlier attempt's start (with or
    without its ``attempt``): its refill settles the position, the answer is ignored.
    """
    stale = position in head.stale
    if head.status == "RUNNING" and not stale:
        return
    if attempt is not None and int(attempt) < head.redrive_count and not stale:
        return
    if stale and head.status == "RUNNING" and _told_by_record(runs, head, position, progress):
        return
    before = head.restarted.pop(position, None)
    if stale:
        head.stale.remove(position)
    count = head.running.pop(position, None)
    if count is None:
        return
    if head.execution_type == "EXPRESS":
        return  # a batch's items are leased: a NOT_STARTED one never runs (map_express)
    if not stale or head.status != "RUNNING":
        head.not_started[position] = [count, -1 if before is None else before]
        return
    arn = child_execution_arn(head.map_run_arn, int(position))
    child = runs.log.get(arn)
    head.running[position] = count
    body: dict[str, Any] = {"map_run": key, "position": int(position)}
    body["attempt"] = head.redrive_count
    if child is not None:
        body["redrive"] = True
        head.restarted[position] = int(child.state.get("redrive_count") or 0)
    message_id = f"{key}#child/{position}#{head.redrive_count}"
    outbox.append(Message(arn, message_id, "child", body))


def _told_by_record(runs: MapRuns, head: RunHead, position: str, progress: list[list[Any]]) -> bool:
    """Whether a stale position's NOT_STARTED answer, its run running, is settled by its record.

    Else the child is run again.

    The answer may be to a duplicate of a start the other copy carried out: a running
    child reports its end (the answer is ignored); a child that succeeded in its own run
    (a later end than the one it had when run again) is counted now, its report then
    finding it nowhere. Restarting either would be a Redrive that does nothing, while
    its real report would be taken for the end before.
    """
    child = runs.log.get(child_execution_arn(head.map_run_arn, int(position)))
    if child is not None and child.status == "RUNNING":
        return True
    if child is None or child.status != "SUCCEEDED":
        return False
    if int(child.state.get("redrive_count") or 0) <= head.restarted.get(position, -1):
        return False  # the success before it was run again: cannot be (it would not run)
    head.stale.remove(position)
    head.restarted.pop(position, None)
    count = head.running.pop(position)
    head.done["SUCCEEDED"] += 1
    head.done_items["SUCCEEDED"] += count
    if head.inline:
        progress.append(["Succeeded", int(position)])
    return True


def _redriven_report(
    runs: MapRuns,
    key: str,
    head: RunHead,
    position: str,
    outbox: list[Message],
    progress: list[list[Any]],
) -> None:
    """A report on a child a redrive concerns, told by the child's record, not the report.

    A child still running from an earlier run (``stale``) counts if it succeeded and
    runs again otherwise (keeping its place in the window); a child run again
    (``restarted``) counts once its record shows a later end than the one it had.
    """
    arn = child_execution_arn(head.map_run_arn, int(position))
    child = runs.log.get(arn)
    if child is None or child.status == "RUNNING":
        return  # a late or duplicated report: the child runs
    generation = int(child.state.get("redrive_count") or 0)
    if position in head.restarted and generation <= head.restarted[position]:
        return  # the end it had before it was run again
    head.restarted.pop(position, None)
    stale = position in head.stale
    if stale:
        head.stale.remove(position)
    count = head.running.pop(position, None)
    if count is None or child.status not in head.done:
        return
    if not stale or child.status == "SUCCEEDED":
        head.done[child.status] += 1
        head.done_items[child.status] += count
        if head.inline and head.status == "RUNNING":
            outcome = "Succeeded" if child.status == "SUCCEEDED" else "Failed"
            progress.append([outcome, int(position)])
            if child.status != "SUCCEEDED":
                error, cause = child.state.get("error"), child.state.get("cause")
                inline_failure(head, {"status": child.status, "error": error, "cause": cause})
    elif head.status == "RUNNING":
        head.running[position] = count
        head.restarted[position] = generation
        body = {"map_run": key, "position": int(position), "redrive": True}
        body["attempt"] = head.redrive_count
        message_id = f"{key}#child/{position}#{head.redrive_count}"
        outbox.append(Message(arn, message_id, "child", body))


def _late_report(runs: MapRuns, head: RunHead, position: str, progress: list[list[Any]]) -> None:
    """A report on a child the run heard never started: it did (a start delivered twice).

    Told by the child's record: counted once, if its end is later than the one it had
    when the run heard it never started. A redriven run counts only a success here: it
    runs an unsuccessful child again when its refill reaches it (map_run_window).
    """
    count, before = head.not_started[position]
    child = runs.log.get(child_execution_arn(head.map_run_arn, int(position)))
    if child is None or child.status == "RUNNING" or child.status not in head.done:
        return  # a late or duplicated report: the child runs
    if int(child.state.get("redrive_count") or 0) <= before:
        return  # the end it had before
    if head.status == "RUNNING" and child.status != "SUCCEEDED":
        return
    del head.not_started[position]
    head.done[child.status] += 1
    head.done_items[child.status] += count
    if head.inline and head.status == "RUNNING":
        progress.append(["Succeeded", int(position)])


def _redrive(head: RunHead, message_id: str, now: float) -> None:
    """Run the unsuccessful and never-started children again (AWS's redrive rule)."""
    for status in UNSUCCESSFUL:
        head.done[status] = 0
        head.done_items[status] = 0
    head.status, head.stop_date, head.error, head.cause = "RUNNING", None, None, None
    head.stopping = False
    head.start_message = message_id
    head.redrive_count += 1
    head.redrive_date = now
    head.pending = []  # an inline run's events of the attempt before, never reported
    # A redrive of a redriven run that failed before refilling all it ran checks those too.
    head.check_below = max(head.check_below, head.next)
    head.next = 0
    if head.execution_type != "EXPRESS":  # an EXPRESS batch is never stopped
        head.stale = sorted(set(head.stale) | set(head.running), key=int)
        for position in head.running:  # started afresh: its run is its first (see advance)
            head.restarted.setdefault(position, -1)
