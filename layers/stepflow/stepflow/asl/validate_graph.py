"""Graph checks of one machine: transition targets, reachability and a way out.

They work on the raw ``States`` object, so that a state too broken to build
still contributes its transitions (and does not make its successors look
unreachable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from stepflow.asl.parse_context import Context, pointer

MISSING_TARGET = "MISSING_TRANSITION_TARGET"
MISSING_END = "MISSING_END_STATE"
_TERMINAL_TYPES = ("Succeed", "Fail")


def check_graph(ctx: Context, states: Mapping[str, Any], start_at: str | None, loc: str) -> None:
    """Report missing targets, unreachable states and a machine with no terminal state.

    ``loc`` is the pointer of the machine; ``start_at`` is ``None`` when the
    machine's ``StartAt`` is itself invalid (reachability is then not checked).
    """
    if not states:
        return
    edges: dict[str, list[str]] = {name: [] for name in states}
    missing = 0
    for name, raw in states.items():
        if not isinstance(raw, Mapping):
            continue
        for target, where, field in _transitions(raw, pointer(loc, "States", name)):
            if target in states:
                edges[name].append(target)
            else:
                missing += 1
                ctx.error(where, f"Missing '{field}' target: {target}", MISSING_TARGET)
    if start_at is None:
        return
    if start_at not in states:
        ctx.error(pointer(loc, "StartAt"), f"Missing 'StartAt' target: {start_at}", MISSING_TARGET)
        return
    reached = _reachable(edges, start_at)
    for name in states:
        if name not in reached:
            ctx.error(
                pointer(loc, "States", name), f'State "{name}" is not reachable.', MISSING_TARGET
            )
    if missing or any(_terminal(raw) for raw in states.values()):
        return
    if all(_well_formed(raw) for raw in states.values()):
        ctx.error(loc, "Workflow has no terminal state", MISSING_END)


def _transitions(raw: Mapping[str, Any], loc: str) -> Iterator[tuple[str, str, str]]:
    """Every ``(target, location, field)`` a state can transition to."""
    for field in ("Next", "Default"):
        if isinstance(raw.get(field), str):
            yield raw[field], pointer(loc, field), field
    for list_field in ("Choices", "Catch"):
        entries = raw.get(list_field)
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            if isinstance(entry, Mapping) and isinstance(entry.get("Next"), str):
                yield entry["Next"], pointer(loc, list_field, i, "Next"), "Next"


def _reachable(edges: Mapping[str, list[str]], start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in edges[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _terminal(raw: Any) -> bool:
    return isinstance(raw, Mapping) and (
        raw.get("Type") in _TERMINAL_TYPES or raw.get("End") is True
    )


def _well_formed(raw: Any) -> bool:
    """Whether a state has a way on (so "no terminal state" is not a follow-on error)."""
    if not isinstance(raw, Mapping):
        return False
    return raw.get("Type") == "Choice" or isinstance(raw.get("Next"), str)
