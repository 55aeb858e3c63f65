"""The head's compact documents: what is left out comes back, exactly, and nothing else."""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import fields
from typing import Any

import pytest
from stepflow.aws.head_docs import (
    HEAD_PRIMERS,
    RESTORED,
    read_outbox,
    read_state,
    write_outbox,
    write_state,
)
from stepflow.aws.log_items import Draft, ItemPacker
from stepflow.aws.log_zdict import STATIC, deflate, inflate
from stepflow.data.serialize import dumps
from stepflow.engine import new_execution
from stepflow.engine.codec import decode_state, encode_state
from stepflow.engine.model import Frame
from stepflow.runtime.messages import Message

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e1"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:m"


def test_state_keys_equal_to_the_head_are_left_out_and_put_back() -> None:
    state = encode_state(new_execution(name="e1", input={"n": 1}, now=0.0))
    state["execution_arn"], state["state_machine_arn"] = ARN, SM
    stored = write_state(state, ARN, "e1", SM, dumps({"n": 1}))
    assert sorted(stored[RESTORED]) == ["execution_arn", "input", "name", "state_machine_arn"]
    assert not {"execution_arn", "input", "name", "state_machine_arn"} & set(stored)
    assert read_state(json.loads(dumps(stored)), ARN, "e1", SM, {"n": 1}) == state


@pytest.mark.parametrize("other", [{"n": 1.0}, {"n": True}, None])
def test_an_input_equal_only_in_python_is_kept(other: Any) -> None:
    state = {"input": other, "name": "e1", "format": 2}
    stored = write_state(state, ARN, "e1", SM, dumps({"n": 1}))
    assert stored["input"] == other and stored[RESTORED] == ["name"]
    assert json.loads(dumps(read_state(stored, ARN, "e1", SM, {"n": 1}))) == json.loads(
        dumps(state)
    )


def test_a_state_without_the_marker_is_read_as_it_is() -> None:
    old = {"execution_arn": "x", "input": [1], "running": 3}
    assert read_state(old, ARN, "e1", SM, {"n": 1}) is old


def test_outbox_messages_lose_the_head_arn_and_get_it_back() -> None:
    messages = (
        Message(ARN, f"{ARN}#3#0", "task", {"task_id": "t1"}),
        Message(f"{ARN}#child", f"{ARN}#3#1", "child", {"input": 1}),
        Message("arn:parent", f"{ARN}#finished", "event", {"type": "x"}, 12.5),
        Message(ARN, "other-id", "event", {"type": "y"}),
    )
    stored = write_outbox(ARN, messages)
    assert "execution_arn" not in stored[0] and stored[0]["sid"] == "#3#0"
    assert "not_before" not in stored[0] and stored[2]["not_before"] == 12.5
    assert read_outbox(ARN, json.loads(dumps(stored))) == messages


def test_a_former_outbox_is_read_as_it_is() -> None:
    message = Message(ARN, f"{ARN}#3#0", "task", {"task_id": "t1"})
    assert read_outbox(ARN, [message.to_json()]) == (message,)


def test_format_2_frames_leave_out_defaults_and_the_same_effective_input() -> None:
    state = new_execution(name="e1", input={"n": 1}, now=0.0)
    shared = {"a": [1, 2]}
    state.frames["/1"] = Frame(id="/1", machine="/M", state="S", input=shared, effective=shared)
    state.frames["/2"] = Frame(id="/2", machine="/M", state="S", input={"a": 1}, effective=None)
    state.frames["/3"] = Frame(
        id="/3", machine="/M", state="S", input={"a": 1}, effective={"a": 1.0}, index=0
    )
    data = json.loads(dumps(encode_state(state)))
    assert data["frames"]["/1"] == {"machine": "/M", "state": "S", "input": shared}
    assert data["frames"]["/2"]["effective"] is None
    assert data["frames"]["/3"]["effective"] == {"a": 1.0}
    decoded = decode_state(data)
    assert decoded.frames["/1"].effective == shared and decoded.frames["/2"].effective is None
    assert decoded == decode_state(json.loads(dumps(encode_state(decoded))))


def test_a_format_1_state_decodes() -> None:
    state = new_execution(name="e1", input={"n": 1}, now=0.0)
    data = json.loads(dumps(encode_state(state)))
    frame = Frame(id="", machine="", state="A", input={"n": 1}, phase="task", task_id="t1")
    full = {f.name: getattr(frame, f.name) for f in fields(frame)}  # format 1: every field
    data["frames"][""], data["format"] = {**full, "retries": []}, 1
    decoded = decode_state(json.loads(dumps(data)))
    assert decoded.frames[""] == frame and decoded.frames[""].effective is None
    with pytest.raises(ValueError, match="format"):
        decode_state({**data, "format": 3})


def test_the_dictionary_is_named_by_the_stream_and_old_streams_inflate() -> None:
    text = b'{"phase":"task","entered_time":"2026","input":{"sku":"a"}}' * 3
    assert inflate(zlib.compress(text)) == text
    primed = deflate(text, [b'{"sku":"a"}'])
    assert zlib.adler32(STATIC + b'{"sku":"a"}') == int.from_bytes(primed[2:6], "big")
    assert inflate(primed, ([b"other"], [b'{"sku":"a"}'])) == text
    with pytest.raises(ValueError, match="dictionary"):
        inflate(primed, ((),))


def test_an_offloaded_primer_leaves_its_dependents_primed_without_it() -> None:
    store: dict[str, bytes] = {}

    def offload(data: bytes) -> str:
        store[str(len(store))] = data
        return str(len(store) - 1)

    packer = ItemPacker(
        compress_above=256,
        item_budget=2500,
        transaction_budget=3_000_000,
        offload=offload,
        fetch=store.__getitem__,
    )
    big = os.urandom(3000).hex()  # incompressible: offloaded
    state = dumps({"frames": {"": {"input": big[:1000], "phase": "task"}}}).encode()
    draft = Draft(
        {"pk": {"S": "EX#a"}, "sk": {"S": "HEAD"}},
        {"input": dumps(big).encode(), "state": state},
        HEAD_PRIMERS,
    )
    (item,) = packer.seal([draft], "test")
    assert "input_ref" in item and "state_z" in item
    # readable without the payload store: a stream consumer reads inline documents only
    assert inflate(item["state_z"]["B"]) == state
    assert packer.texts(item, ["state", "input"], HEAD_PRIMERS) == {
        "state": state,
        "input": dumps(big).encode(),
    }


@pytest.mark.parametrize("cut", [1, 4, 6])
def test_a_truncated_dictionary_stream_is_refused_as_plain_zlib_refuses_one(cut: int) -> None:
    data = deflate(b'{"a":12345,"b":"' + b"x" * 200 + b'"}')
    assert inflate(data) == b'{"a":12345,"b":"' + b"x" * 200 + b'"}'
    with pytest.raises((ValueError, zlib.error)):
        inflate(data[:-cut])
    with pytest.raises(ValueError):
        inflate(data + b"junk")
