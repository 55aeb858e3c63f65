"""The inputs of a distributed Map's children: ItemSelector per item, then ItemBatcher.

The runtime that runs a map run (``StartMapRun``) reads the items (from the spec or
through its ``ItemSource``) and turns them into child inputs here, so STANDARD and
EXPRESS runs share one definition of what a child receives. Lazy: one batch is
held at a time, whatever the item count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.asl.machine import StateMachine
from stepflow.asl.states.base import MISSING
from stepflow.asl.states.map import MapState
from stepflow.data.jsonata import compile_template
from stepflow.data.scope import Scope
from stepflow.data.serialize import dumps
from stepflow.engine.pipeline import build
from stepflow.errors import StatesError, StatesErrorName

DEFAULT_BATCH_BYTES = 262_144
"""A batch's input is at most 256 KiB even when only ``MaxItemsPerBatch`` is set."""


@dataclass(frozen=True, slots=True)
class ChildInput:
    """The input of one child: items ``index`` to ``index + count - 1`` (one, or a batch)."""

    index: int
    count: int
    input: Any


def map_state(definition: StateMachine, spec: Mapping[str, Any]) -> MapState:
    """The Map state a run spec belongs to (its ItemSelector is read from it)."""
    machine_id = spec.get("parent_machine")
    if machine_id is None:  # the processor's id is "<parent machine>/<state name>"
        machine_id = str(spec["machine"]).removesuffix("/" + str(spec["state_name"]))
    node = definition.machines[str(machine_id)].states[str(spec["state_name"])]
    if not isinstance(node, MapState):
        raise ValueError(f"state {spec['state_name']!r} is not a Map state")
    return node


def child_inputs(
    definition: StateMachine, spec: Mapping[str, Any], items: Iterable[Any], start: int = 0
) -> Iterator[ChildInput]:
    """Each child's input, from item ``start`` on (a batch boundary when batching).

    Raises :class:`StatesError` where Step Functions fails the Map: an ItemSelector
    that cannot be evaluated, or an item too large for ``MaxInputBytesPerBatch``.
    """
    node = map_state(definition, spec)
    selected = _selected(node, spec, items, start)
    batcher = spec.get("batcher")
    if not batcher:
        for index, value in selected:
            yield ChildInput(index, 1, value)
        return
    yield from _batches(selected, batcher)


def _selected(
    node: MapState, spec: Mapping[str, Any], items: Iterable[Any], start: int
) -> Iterator[tuple[int, Any]]:
    scope = spec.get("scope") or {}
    state_input = scope.get("input")
    context = scope.get("context") or {}
    variables = scope.get("variables") or {}
    jsonata = node.query_language == "JSONata"
    expression = None
    if jsonata and node.item_selector_raw is not MISSING:
        expression = compile_template(node.item_selector_raw, "ItemSelector")
    for index, item in enumerate(items):
        if index < start:
            continue
        item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
        if expression is not None:
            states = {"input": state_input, "context": item_context}
            yield index, expression.evaluate(states, variables)
        elif not jsonata and node.item_selector is not None:
            yield index, build(node.item_selector, Scope(state_input, item_context, variables))
        else:
            yield index, item


def _batches(
    selected: Iterator[tuple[int, Any]], batcher: Mapping[str, Any]
) -> Iterator[ChildInput]:
    """Group items: at most ``max_items`` each, and the batch's JSON at most ``max_bytes``.

    The size measured is the child's whole input (``{"BatchInput": …, "Items": [...]}``,
    compact UTF-8 JSON), which is what the child receives.
    """
    max_items = batcher.get("max_items") or None
    max_bytes = batcher.get("max_bytes") or DEFAULT_BATCH_BYTES
    batch_input = batcher.get("batch_input")
    has_input = batch_input is not None
    head = '{"BatchInput":' + dumps(batch_input) + ',"Items":[' if has_input else '{"Items":['
    overhead = len(head.encode()) + 2  # "]}"
    batch: list[Any] = []
    first = 0
    size = overhead
    for index, value in selected:
        item_bytes = len(dumps(value).encode())
        if overhead + item_bytes > max_bytes:
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The item at index {index} ({item_bytes} bytes) does not fit in a batch of "
                f"MaxInputBytesPerBatch {max_bytes} bytes",
            )
        grown = size + item_bytes + (1 if batch else 0)
        if batch and (grown > max_bytes or (max_items is not None and len(batch) >= max_items)):
            yield ChildInput(first, len(batch), _batch(batch_input, has_input, batch))
            batch, size = [], overhead
            grown = size + item_bytes
        if not batch:
            first = index
        batch.append(value)
        size = grown
    if batch:
        yield ChildInput(first, len(batch), _batch(batch_input, has_input, batch))


def _batch(batch_input: Any, has_input: bool, items: list[Any]) -> dict[str, Any]:
    if has_input:
        return {"BatchInput": batch_input, "Items": items}
    return {"Items": items}
