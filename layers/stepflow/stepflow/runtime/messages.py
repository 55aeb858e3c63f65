"""What travels on the queues: engine events and inline-task requests, as plain JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stepflow.engine import (
    CancelTask,
    ChildFinished,
    Continue,
    Event,
    MapIterations,
    MapRunFinished,
    PollTask,
    RunTask,
    Start,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskPending,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
)

_EVENTS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Start,
        TaskStarted,
        TaskSubmitted,
        TaskHeartbeat,
        TaskSucceeded,
        TaskFailed,
        TimerFired,
        Stop,
        Continue,
        ChildFinished,
        TaskPending,
        MapRunFinished,
        MapIterations,
    )
}


def encode_event(event: Event) -> dict[str, Any]:
    """An engine event as a JSON object with a ``type``."""
    fields = {k: getattr(event, k) for k in event.__slots__}
    # Tuples as lists: the encoding is the same before and after a trip through JSON.
    return {
        "type": type(event).__name__,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
    }


def decode_event(data: dict[str, Any]) -> Event:
    """The engine event written by :func:`encode_event`; ``ValueError`` if unknown."""
    cls = _EVENTS.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    fields = {k: v for k, v in data.items() if k != "type"}
    if isinstance(fields.get("effects"), list):  # a tuple, as JSON gives it back
        fields["effects"] = tuple(fields["effects"])
    event: Event = cls(**fields)
    return event


@dataclass(frozen=True, slots=True)
class Message:
    """One queue message for an execution.

    ``kind`` is ``event`` (deliver ``body`` to the engine), ``task`` (run the
    inline task described by ``body``, then report its result as an event) or
    ``child`` (create the child execution ``body`` describes, then start it) or
    ``repair`` (re-send the execution's outbox if it is still pending, nothing else).
    ``id`` is the idempotency key: the same command always yields the same id,
    so a re-sent message is recognised. ``not_before`` (epoch seconds) is the
    earliest delivery; a queue that cannot delay that long delivers early and
    the stepper re-arms the message.
    """

    execution_arn: str
    id: str
    kind: Literal["event", "task", "child", "repair"]
    body: dict[str, Any]
    not_before: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON object."""
        return {
            "execution_arn": self.execution_arn,
            "id": self.id,
            "kind": self.kind,
            "body": self.body,
            "not_before": self.not_before,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """The message written by :meth:`to_json`; ``KeyError``/``ValueError`` if malformed."""
        kind = data["kind"]
        if kind not in ("event", "task", "child", "repair"):
            raise ValueError(f"unknown message kind {kind!r}")
        return cls(
            execution_arn=str(data["execution_arn"]),
            id=str(data["id"]),
            kind=kind,
            body=dict(data["body"]),
            not_before=float(data.get("not_before", 0.0)),
        )


def task_body(command: RunTask) -> dict[str, Any]:
    """The body of a ``task`` message for an inline task."""
    return {
        "task_id": command.task_id,
        "resource": command.resource,
        "input": command.input,
        "state_name": command.state_name,
        "timeout_seconds": command.timeout_seconds,
        "heartbeat_seconds": command.heartbeat_seconds,
        "task_token": command.task_token,
        "role_arn": command.role_arn,
        "execution_role": command.execution_role,
        "frame": command.frame,
    }


POLL = "poll"
CANCEL = "cancel"
"""The ``op`` of a task message that polls (or cancels) a submitted ``.sync`` job; none: run it."""


def poll_body(command: PollTask) -> dict[str, Any]:
    """The body of a ``task`` message that polls the job of a ``.sync`` task (``op`` poll)."""
    return {
        "op": POLL,
        "task_id": command.task_id,
        "resource": command.resource,
        "input": None,
        "handle": command.handle,
        "poll_round": command.poll_round,
        "state_name": command.state_name,
        "role_arn": command.role_arn,
        "execution_role": command.execution_role,
    }


def cancel_body(command: CancelTask, role_arn: str, execution_role: str) -> dict[str, Any]:
    """The body of a ``task`` message that stops the job of a ``.sync`` task (``op`` cancel)."""
    return {
        "op": CANCEL,
        "task_id": command.task_id,
        "resource": command.resource,
        "input": None,
        "handle": command.handle,
        "state_name": "",
        "role_arn": role_arn,
        "execution_role": execution_role,
    }


def task_lease_key(body: dict[str, Any]) -> str:
    """The lease record a task message runs under: one per attempt, poll round, or cancel.

    ``<task_id>`` runs the task, ``<task_id>#poll<n>`` its n-th poll, ``<task_id>#cancel``
    the stop of its job: a redelivered poll or cancel finds its lease and runs once.
    """
    task_id = str(body["task_id"])
    op = body.get("op")
    if op == POLL:
        return f"{task_id}#poll{int(body.get('poll_round') or 0)}"
    if op == CANCEL:
        return f"{task_id}#cancel"
    return task_id
