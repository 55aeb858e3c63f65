"""The pure parts of a map run: its keys in the log, its bounded head, its counters.

A map run (``StartMapRun``) lives in the coordination log as records of its own:

- the run's head, keyed ``<parent execution arn>#maprun/<run id>`` (:func:`run_key`):
  the parent derives it from the run id alone, so ``CancelMapRun`` needs nothing
  else; its ``state`` is :class:`RunHead` (counters, the window of running children,
  the paging cursor: bounded, whatever the item count);
- a pointer keyed by the run's AWS ARN (``…:mapRun:<machine>/<label>:<run id>``)
  naming the head's key, for the Map Run API;
- the child inputs, written once in pages of :data:`PAGE_SIZE` (``<key>#page/<n>``);
- one child execution per child input (an item, or a batch of items), keyed by its AWS
  ARN ``…:execution:<machine>/<label>:<run id>-<position>``. Its result stays in its
  own record: no head ever holds another execution's result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from stepflow.engine import CancelMapRun, StartMapRun
from stepflow.runtime.messages import Message

PAGE_SIZE = 100
"""Child inputs per page record (a child's page is ``position // PAGE_SIZE``)."""

DEFAULT_WINDOW = 1000
"""Children running at once when the Map sets no MaxConcurrency (AWS: up to 10,000)."""

START_PER_COMMIT = 100
"""Children started by one commit of the run's head (bounds its outbox)."""

UNSUCCESSFUL = ("FAILED", "TIMED_OUT", "ABORTED")

MARK = "#maprun/"


def run_key(parent_arn: str, run_id: str) -> str:
    """Where a map run's head is stored: derived from its parent and run id."""
    return f"{parent_arn}{MARK}{run_id}"


def is_run_key(key: str) -> bool:
    """Whether ``key`` is a map run's head (its messages go to the coordinator)."""
    return MARK in key and "#page/" not in key


def page_key(key: str, page: int) -> str:
    """The record of the run's ``page``-th page of child inputs."""
    return f"{key}#page/{page}"


def child_execution_arn(map_run_arn: str, position: int) -> str:
    """The AWS ARN of the run's ``position``-th child execution."""
    head, _, run_id = map_run_arn.rpartition(":")
    return f"{head.replace(':mapRun:', ':execution:', 1)}:{run_id}-{position}"


@dataclass(slots=True)
class RunHead:
    """The run's head state: small and bounded (no items, no results)."""

    map_run_arn: str
    run_id: str
    parent_arn: str
    state_machine_arn: str
    machine: str
    state_name: str
    execution_type: str
    start_message: str
    start_date: float
    max_concurrency: int = 0
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None
    writer: dict[str, Any] | None = None
    role_arn: str = ""
    execution_role: str = ""
    status: str = "RUNNING"
    children: int = 0
    items: int = 0
    next: int = 0
    running: dict[str, int] = field(default_factory=dict)
    """Running children: position (as text) to its item count."""
    done: dict[str, int] = field(default_factory=lambda: _zero())
    """Finished children by status (SUCCEEDED, FAILED, TIMED_OUT, ABORTED)."""
    done_items: dict[str, int] = field(default_factory=lambda: _zero())
    results_written: int = 0
    stop_date: float | None = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0
    redrive_date: float | None = None
    stopping: bool = False
    """The run just failed or was cancelled: its running children are to be stopped."""
    check_below: int = 0
    """Redrive: children before this position ran before; only unsuccessful ones run again."""
    stale: list[str] = field(default_factory=list)
    """Redrive: children still running from an earlier run (stopped, their reports late):
    their end is not the redriven run's; an unsuccessful one is run again."""
    restarted: dict[str, int] = field(default_factory=dict)
    """Redrive: children run again, to their redrive count then: a report of the end
    before (late or duplicated) is not counted; their record tells their end."""
    not_started: dict[str, list[int]] = field(default_factory=dict)
    """Children the run heard never started, once it had ended: position to [its item
    count, the child's redrive count then, -1 if it was not run again]. A child start
    delivered twice may have started it all the same: its record then tells its end,
    counted once (:func:`~stepflow.runtime.map_run_events.apply_event`); a redrive
    settles the rest (:mod:`~stepflow.runtime.map_run_window`)."""
    parent_redrive: int = 0
    """The parent's redrive count when it started (or cancelled) this run."""
    inline: bool = False
    """The run of an INLINE Map past ``child_limit``: no Map Run API entry, and a failed
    iteration fails it with its own error (see :func:`stepflow.engine.distributed.run_inline`)."""
    reports: int = 0
    """Progress reports sent to the parent (an inline run's ``MapIterations.seq``)."""
    pending: list[list[Any]] = field(default_factory=list)
    """An inline run's iteration events not reported yet (at most ``REPORT_EVENTS`` and
    one commit's: see :func:`stepflow.runtime.map_inline.report`)."""
    written_at: float = 0.0
    """When the head was last written (the stepper's clock): reports arriving sooner than
    :data:`~stepflow.runtime.map_coalesce.MIN_WRITE_INTERVAL` after it are deferred."""

    def to_json(self) -> dict[str, Any]:
        """The head as stored."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunHead:
        """The head stored by :meth:`to_json` (its counters copied: ``data`` is not changed)."""
        head = cls(**data)
        head.running, head.done = dict(head.running), dict(head.done)
        head.done_items, head.stale = dict(head.done_items), list(head.stale)
        head.restarted, head.pending = dict(head.restarted), list(head.pending)
        head.not_started = {k: list(v) for k, v in head.not_started.items()}
        return head

    def window(self) -> int:
        """How many children may run at once now."""
        return self.max_concurrency if self.max_concurrency > 0 else DEFAULT_WINDOW

    def failed_items(self) -> int:
        """Items in failed, timed-out or aborted children."""
        return sum(self.done_items[s] for s in UNSUCCESSFUL)

    def exceeds_tolerance(self) -> bool:
        """Whether the failures so far exceed ToleratedFailureCount/Percentage."""
        failed = self.failed_items()
        if failed == 0:
            return False
        count, percentage = self.tolerated_count, self.tolerated_percentage
        if count is None and percentage is None:
            return True
        over_count = count is not None and failed > count
        over_percentage = (
            percentage is not None and self.items > 0 and failed * 100.0 / self.items > percentage
        )
        return over_count or over_percentage  # either threshold, as the inline Map (fanout)


def _zero() -> dict[str, int]:
    return {"SUCCEEDED": 0, "FAILED": 0, "TIMED_OUT": 0, "ABORTED": 0}


def describe(head: RunHead) -> dict[str, Any]:
    """DescribeMapRun's response for ``head`` (dates as epoch seconds)."""
    running_items = sum(head.running.values())
    pending_children = head.children - head.next if head.status == "RUNNING" else 0
    pending_items = max(0, head.items - sum(head.done_items.values()) - running_items)
    response: dict[str, Any] = {
        "mapRunArn": head.map_run_arn,
        "executionArn": head.parent_arn,
        "status": head.status,
        "startDate": head.start_date,
        "maxConcurrency": head.max_concurrency,
        "toleratedFailurePercentage": float(head.tolerated_percentage or 0.0),
        "toleratedFailureCount": int(head.tolerated_count or 0),
        "itemCounts": _counts(
            head.done_items,
            running_items,
            pending_items if head.status == "RUNNING" else 0,
            head.items,
            head.results_written,
        ),
        "executionCounts": _counts(
            head.done, len(head.running), pending_children, head.children, head.results_written
        ),
        "redriveCount": head.redrive_count,
    }
    if head.stop_date is not None and head.status != "RUNNING":
        response["stopDate"] = head.stop_date
    if head.redrive_date is not None:
        response["redriveDate"] = head.redrive_date
    return response


def _counts(
    done: dict[str, int], running: int, pending: int, total: int, written: int
) -> dict[str, int]:
    return {
        "pending": pending,
        "running": running,
        "succeeded": done["SUCCEEDED"],
        "failed": done["FAILED"],
        "timedOut": done["TIMED_OUT"],
        "aborted": done["ABORTED"],
        "total": total,
        "resultsWritten": written,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    }


def map_run_message(
    parent_arn: str,
    message_id: str,
    command: StartMapRun | CancelMapRun,
    machine_arn: str,
    parent_redrive: int = 0,
) -> Message:
    """The outbox message of a parent's ``StartMapRun`` or ``CancelMapRun``: to the run's head.

    A start carries the exact revision the parent runs (``machine_arn``), whose
    definition holds the item processor. Both carry the parent's redrive count: a
    run cancelled before it started is started by a later redrive's start only.
    """
    key = run_key(parent_arn, command.run_id)
    if isinstance(command, CancelMapRun):
        cancel = {"type": "CancelMapRun", "parent_redrive": parent_redrive}
        return Message(key, message_id, "event", cancel)
    body = {
        "type": "StartMapRun",
        "spec": command.spec,
        "state_machine_arn": machine_arn,
        "parent_arn": parent_arn,
        "parent_redrive": parent_redrive,
    }
    return Message(key, message_id, "event", body)
