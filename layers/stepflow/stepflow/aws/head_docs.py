"""The head item's ``state`` and ``outbox`` documents, without what the head already says.

A head is rewritten at every commit and billed per KB, twice in a transaction.
Its ``state`` (the engine state, :mod:`stepflow.engine.codec`) repeats the
execution's ARN, name, state machine ARN and input, all of which the head
stores anyway (``pk``, ``name``, ``state_machine_arn``, ``input``); its outbox
messages repeat the execution's ARN in ``execution_arn`` and as the prefix of
their ids. What is written here leaves those out and :func:`read_state` /
:func:`read_outbox` put them back, so a reader of the log sees the same record:

- state: a key equal to the head's value is dropped and named in ``"~h"``
  (nothing else is ever dropped; a state without ``"~h"`` is read as it is,
  e.g. a head written before this layout);
- outbox message: ``execution_arn`` left out when it is the head's, ``id``
  stored as ``sid`` (the part after the ARN) when it starts with it,
  ``not_before`` left out when 0. A message with ``execution_arn`` is read as
  it is (the former layout).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepflow.data.serialize import dumps
from stepflow.runtime.messages import Message

HEAD_PRIMERS = {"state": ("input",), "outbox": ("state",)}
"""What primes the compression of a head's documents: the state repeats the input
(its root frame's), the outbox the state (task inputs, frame ids)."""

RESTORED = "~h"
"""The key of a stored state that lists the keys to take from the head."""


def write_state(
    state: dict[str, Any], arn: str, name: str, machine_arn: str, input_text: str
) -> dict[str, Any]:
    """``state`` without the keys the head holds (``input_text``: the head's input as JSON)."""
    heads = {"execution_arn": arn, "name": name, "state_machine_arn": machine_arn}
    dropped = [k for k, v in heads.items() if type(state.get(k)) is str and state[k] == v]
    if "input" in state and state["input"] is not None and dumps(state["input"]) == input_text:
        dropped.append("input")  # compared as JSON text: 1 == 1.0 == True in Python
    if not dropped or RESTORED in state:
        return state
    slim = {k: v for k, v in state.items() if k not in dropped}
    slim[RESTORED] = dropped
    return slim


def read_state(stored: Any, arn: str, name: str, machine_arn: str, input_value: Any) -> Any:
    """The state :func:`write_state` was given."""
    if not isinstance(stored, dict) or RESTORED not in stored:
        return stored
    heads = {
        "execution_arn": arn,
        "name": name,
        "state_machine_arn": machine_arn,
        "input": input_value,
    }
    state = dict(stored)
    for key in state.pop(RESTORED):
        state[key] = heads[key]
    return state


def write_outbox(arn: str, messages: Iterable[Message]) -> list[dict[str, Any]]:
    """The outbox's messages as stored in the head of ``arn``."""
    prefix = f"{arn}#"
    stored = []
    for message in messages:
        data: dict[str, Any] = {"kind": message.kind, "body": message.body}
        if message.execution_arn != arn:
            data["execution_arn"] = message.execution_arn
        if message.id.startswith(prefix):
            data["sid"] = message.id[len(arn) :]
        else:
            data["id"] = message.id
        if message.not_before != 0.0:
            data["not_before"] = message.not_before
        stored.append(data)
    return stored


def read_outbox(arn: str, stored: Iterable[dict[str, Any]]) -> tuple[Message, ...]:
    """The messages :func:`write_outbox` was given (or a former full outbox)."""
    messages = []
    for data in stored:
        if "execution_arn" not in data or "sid" in data:
            data = dict(data)
            data.setdefault("execution_arn", arn)
            if "sid" in data:
                data["id"] = arn + str(data.pop("sid"))
        messages.append(Message.from_json(data))
    return tuple(messages)
