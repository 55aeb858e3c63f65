"""``child_inputs``: ItemSelector per item, then ItemBatcher, lazily."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.asl.machine import StateMachine
from stepflow.engine.map_items import DEFAULT_BATCH_BYTES, ChildInput, child_inputs
from stepflow.errors import StatesError

PROCESSOR = {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "End": True}},
}


def machine(language: str = "JSONPath", **fields: Any) -> StateMachine:
    state = {"Type": "Map", "ItemProcessor": PROCESSOR, "End": True, **fields}
    return parse({"QueryLanguage": language, "StartAt": "M", "States": {"M": state}})


def spec(batcher: dict[str, Any] | None = None, **scope: Any) -> dict[str, Any]:
    return {
        "state_name": "M",
        "machine": "/M",
        "parent_machine": "",
        "batcher": batcher,
        "scope": {
            "input": scope.get("input"),
            "context": {"Execution": {"Name": "e"}},
            "variables": scope.get("variables", {}),
        },
    }


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_without_selector_or_batcher_each_item_is_a_child() -> None:
    out = list(child_inputs(machine(), spec(), ["a", {"b": 1}]))
    assert out == [ChildInput(0, 1, "a"), ChildInput(1, 1, {"b": 1})]


def test_jsonpath_item_selector_sees_item_index_input_context_and_variables() -> None:
    sm = machine(
        ItemSelector={
            "v.$": "$$.Map.Item.Value",
            "i.$": "$$.Map.Item.Index",
            "t.$": "$.tag",
            "x.$": "$var",
            "n.$": "$$.Execution.Name",
        }
    )
    out = list(child_inputs(sm, spec(input={"tag": "T"}, variables={"var": 7}), ["a", "b"]))
    assert [c.input for c in out] == [
        {"v": "a", "i": 0, "t": "T", "x": 7, "n": "e"},
        {"v": "b", "i": 1, "t": "T", "x": 7, "n": "e"},
    ]


def test_jsonata_item_selector() -> None:
    sm = machine(
        "JSONata",
        ItemSelector={
            "v": "{% $states.context.Map.Item.Value %}",
            "i": "{% $states.context.Map.Item.Index %}",
            "t": "{% $states.input.tag & $var %}",
        },
    )
    out = list(child_inputs(sm, spec(input={"tag": "T"}, variables={"var": "!"}), [5]))
    assert out == [ChildInput(0, 1, {"v": 5, "i": 0, "t": "T!"})]


def test_a_failing_selector_raises_the_states_error() -> None:
    sm = machine("JSONata", ItemSelector="{% $error('boom') %}")
    with pytest.raises(StatesError) as info:
        list(child_inputs(sm, spec(input={}), [1]))
    assert info.value.error == "States.QueryEvaluationError"


def test_start_skips_items_but_keeps_their_indexes() -> None:
    sm = machine(ItemSelector={"i.$": "$$.Map.Item.Index"})
    out = list(child_inputs(sm, spec(input={}), ["a", "b", "c"], start=2))
    assert out == [ChildInput(2, 1, {"i": 2})]


def test_max_items_per_batch_groups_and_batch_input_is_added() -> None:
    batcher = {"max_items": 2, "max_bytes": None, "batch_input": {"k": 1}}
    out = list(child_inputs(machine(), spec(batcher), [1, 2, 3, 4, 5]))
    assert out == [
        ChildInput(0, 2, {"BatchInput": {"k": 1}, "Items": [1, 2]}),
        ChildInput(2, 2, {"BatchInput": {"k": 1}, "Items": [3, 4]}),
        ChildInput(4, 1, {"BatchInput": {"k": 1}, "Items": [5]}),
    ]


def test_without_batch_input_a_batch_is_just_items() -> None:
    batcher = {"max_items": 3, "max_bytes": None, "batch_input": None}
    (only,) = child_inputs(machine(), spec(batcher), ["x", "y"])
    assert only == ChildInput(0, 2, {"Items": ["x", "y"]})


def test_max_input_bytes_measures_the_whole_batch_input() -> None:
    items = ["aaaa", "bbbb", "cccc", "dddd", "ü"]
    two = size({"BatchInput": {"k": "v"}, "Items": items[:2]})
    batcher = {"max_items": None, "max_bytes": two, "batch_input": {"k": "v"}}
    out = list(child_inputs(machine(), spec(batcher), items))
    assert [c.count for c in out] == [2, 2, 1]
    assert all(size(c.input) <= two for c in out)
    batcher["max_bytes"] = two - 1  # one byte less: no longer room for two
    assert [c.count for c in child_inputs(machine(), spec(batcher), items)] == [
        1,
        1,
        1,
        2,
    ]  # "dddd" and "ü" (2 bytes) still fit


def test_bytes_are_utf8_bytes_not_characters() -> None:
    items = ["é" * 10, "é" * 10]
    both = size({"Items": items})  # 20 characters of 2 bytes each in the items
    batcher = {"max_items": None, "max_bytes": both - 1, "batch_input": None}
    assert [c.count for c in child_inputs(machine(), spec(batcher), items)] == [1, 1]


def test_both_limits_apply_together() -> None:
    batcher = {"max_items": 3, "max_bytes": size({"Items": [1, 2]}), "batch_input": None}
    out = list(child_inputs(machine(), spec(batcher), [1, 2, 3, 4]))
    assert [(c.index, c.count) for c in out] == [(0, 2), (2, 2)]


def test_only_max_items_still_caps_a_batch_at_256_kib() -> None:
    big = "x" * 100_000
    batcher = {"max_items": 10, "max_bytes": None, "batch_input": None}
    out = list(child_inputs(machine(), spec(batcher), [big] * 5))
    assert [c.count for c in out] == [2, 2, 1]
    assert all(size(c.input) <= DEFAULT_BATCH_BYTES for c in out)


def test_an_item_larger_than_a_batch_fails() -> None:
    batcher = {"max_items": None, "max_bytes": 20, "batch_input": None}
    with pytest.raises(StatesError) as info:
        list(child_inputs(machine(), spec(batcher), ["small", "x" * 50]))
    assert "index 1" in (info.value.cause or "")


def test_selector_applies_before_batching() -> None:
    sm = machine(ItemSelector={"v.$": "$$.Map.Item.Value"})
    batcher = {"max_items": 2, "max_bytes": None, "batch_input": None}
    out = list(child_inputs(sm, spec(batcher, input={}), ["a", "b"]))
    assert out == [ChildInput(0, 2, {"Items": [{"v": "a"}, {"v": "b"}]})]


def test_it_is_lazy_one_batch_at_a_time() -> None:
    consumed = 0

    def endless() -> Iterator[int]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield i

    batcher = {"max_items": 3, "max_bytes": None, "batch_input": None}
    first_two = list(itertools.islice(child_inputs(machine(), spec(batcher), endless()), 2))
    assert [c.input["Items"] for c in first_two] == [[0, 1, 2], [3, 4, 5]]
    assert consumed <= 7  # the items of two batches and the one that closed the second
    plain = list(itertools.islice(child_inputs(machine(), spec(), endless()), 3))
    assert [c.index for c in plain] == [0, 1, 2]


def test_a_nested_map_finds_its_state_from_the_processor_id() -> None:
    sm = parse(
        {
            "StartAt": "Par",
            "States": {
                "Par": {
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [
                        {
                            "StartAt": "M",
                            "States": {
                                "M": {
                                    "Type": "Map",
                                    "ItemProcessor": PROCESSOR,
                                    "End": True,
                                    "ItemSelector": {"w.$": "$$.Map.Item.Value"},
                                }
                            },
                        }
                    ],
                }
            },
        }
    )
    s = {
        "state_name": "M",
        "machine": "/Par/0/M",
        "batcher": None,
        "scope": {"input": {}, "context": {}, "variables": {}},
    }
    assert [c.input for c in child_inputs(sm, s, [1])] == [{"w": 1}]
