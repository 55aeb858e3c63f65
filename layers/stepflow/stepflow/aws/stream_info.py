"""An execution's :class:`~stepflow.hooks.ExecutionInfo` for the hooks of its stream records.

Read from its head: a decoded :class:`~stepflow.runtime.ports.ExecutionRecord`
(:func:`info_of`, after one ``GetItem``) or, cheaper, a stream record's head image
(:func:`info_of_image`: plain attributes and small inline documents only, never a
payload store read). Used by :mod:`stepflow.aws.stream_records`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from stepflow.api.map_runs import machine_of
from stepflow.aws.head_docs import HEAD_PRIMERS
from stepflow.aws.log_zdict import inflate
from stepflow.aws.topology import LIST_INDEX_PK, LISTED
from stepflow.engine.codec import decode_state
from stepflow.hooks import ExecutionInfo
from stepflow.runtime.ports import ExecutionRecord

EXPRESS_MARK = ":express:"
"""An EXPRESS execution ARN's resource type (``arn:aws:states:...:express:<machine>:...``)."""


def info_of(arn: str, record: ExecutionRecord | None) -> ExecutionInfo:
    """An execution's :class:`ExecutionInfo` from its head (None: only what its ARN says).

    The state machine ARN is the one DescribeExecution reports; the type is EXPRESS
    when the head's attributes say so (``execution_type``) or the ARN is an express
    one; the redrive count is the engine state's.
    """
    express = EXPRESS_MARK in arn
    if record is None:
        return ExecutionInfo(arn, execution_type="EXPRESS" if express else "STANDARD")
    kind = record.attributes.get("execution_type") if isinstance(record.attributes, dict) else None
    try:
        redrives = decode_state(record.state).redrive_count if record.state else 0
    except Exception:  # a state this code cannot decode still names its execution
        redrives = 0
    run = record.attributes.get("map_run_arn") if isinstance(record.attributes, dict) else None
    # As DescribeExecution names it: unqualified (no revision, version or alias), or a
    # map run child's ``stateMachine:<machine>/<label>``.
    machine = (
        machine_of(run) if isinstance(run, str) and run else _unqualified(record.state_machine_arn)
    )
    return ExecutionInfo(
        arn,
        state_machine_arn=machine,
        name=record.name,
        execution_type="EXPRESS" if express or kind == "EXPRESS" else "STANDARD",
        redrive_count=redrives,
    )


def info_of_image(arn: str, image: Mapping[str, Any]) -> ExecutionInfo:
    """An execution's :class:`ExecutionInfo` from a head image's plain attributes.

    No document is decoded but small inline ones (``attributes``, and ``state``
    for the redrive count): no payload store read, no engine state decode. A map
    run's child is known by its listing key (``EXL#<map run ARN>``).
    """
    # Older heads name the listing only by their index key.
    listed = image_text(image, LISTED) or image_text(image, LIST_INDEX_PK) or ""
    run = listed[4:] if listed.startswith("EXL#") and ":mapRun:" in listed else ""
    plain = image_text(image, "state_machine_arn") or ""
    machine = machine_of(run) if run else _unqualified(plain)
    attributes = _inline_doc(image, "attributes")
    kind = attributes.get("execution_type") if isinstance(attributes, dict) else None
    state = _inline_doc(image, "state")
    redrives = state.get("redrive_count") if isinstance(state, dict) else None
    return ExecutionInfo(
        arn,
        state_machine_arn=machine,
        name=image_text(image, "name") or "",
        execution_type="EXPRESS" if EXPRESS_MARK in arn or kind == "EXPRESS" else "STANDARD",
        redrive_count=redrives if isinstance(redrives, int) and redrives > 0 else 0,
    )


def _unqualified(machine_arn: str) -> str:
    """``arn:aws:states:<region>:<account>:stateMachine:<name>``, without a qualifier."""
    return ":".join(machine_arn.split(":")[:7])


def _inline_doc(image: Mapping[str, Any], name: str) -> Any:
    """A document stored inline in ``image`` (plain or compressed), else None (offloaded)."""
    try:
        text = _inline_text(image, name)
        return None if text is None else json.loads(text)
    except (ValueError, zlib.error, RecursionError):
        return None


def _inline_text(image: Mapping[str, Any], name: str) -> bytes | None:
    """The JSON text of an inline document, primed as the log primes it (see log_items)."""
    text = image_text(image, name)
    if text is not None:
        return text.encode()
    value = image.get(f"{name}_z")
    data = value.get("B") if isinstance(value, Mapping) else None
    if not isinstance(data, bytes | bytearray):
        return None
    primers = [_inline_text(image, p) for p in HEAD_PRIMERS.get(name, ())]
    return inflate(bytes(data), ([p for p in primers if p is not None], ()))


def image_text(item: Mapping[str, Any] | None, name: str) -> str | None:
    """The string attribute ``name`` of an item in DynamoDB JSON (None: absent or not ``S``)."""
    value = item.get(name) if item is not None else None
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else None
