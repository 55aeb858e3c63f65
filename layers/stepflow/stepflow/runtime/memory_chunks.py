"""How the in-memory log stores a commit's events: copied in as a store would, read back fresh.

A commit's event dicts are kept as one JSON text (what orjson refuses: a deep copy),
so that nothing the caller changes later reaches the log. Compact events
(:data:`~stepflow.engine.history_events.CompactEvent`, the states' entered and exited
events of a decision that was asked for them) are immutable: they are kept as they
are, after the same check a serializing store makes (a lone surrogate is refused).
Reading a commit back makes fresh dicts, equal to the ones the engine would have
recorded, in the order of the commit.
"""

from __future__ import annotations

import bisect
import copy
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from stepflow.data.serialize import storable_problem
from stepflow.engine.history_events import CompactEvent, HistoryEvent, expand, expanded


class Mixed(NamedTuple):
    """A commit with compact events: those in place, each dict event's place None."""

    compact: tuple[CompactEvent | None, ...]
    dicts: bytes | list[dict[str, Any]] | None
    """The dict events in order, stored as :func:`frozen` stores a commit of dicts."""


Chunk = tuple[bytes | list[dict[str, Any]] | Mixed, int]
"""The events of one commit as stored, and how many there are."""


class UnstorableValueError(ValueError):
    """What :func:`storable_problem` finds wrong with a value being stored."""


def frozen(events: Sequence[HistoryEvent]) -> list[Chunk]:
    """A commit's events as stored (raises :class:`UnstorableValueError` as a store refuses)."""
    if not events:
        return []
    kinds = list(map(type, events))  # counted in C (a set of them is slower)
    tuples = kinds.count(tuple)
    if tuples == len(events):  # the usual commit of a run of Pass and Choice states: compact only
        dicts: list[dict[str, Any]] = []
        compact: Sequence[CompactEvent] = events  # type: ignore[assignment]
        layout: tuple[CompactEvent | None, ...] = tuple(events)  # type: ignore[arg-type]
    elif tuples and tuples + kinds.count(dict) == len(events):  # a few dict events among them
        # found by list.index (in C), the compact runs between them copied as slices
        places: list[CompactEvent | None] = list(events)  # type: ignore[arg-type]
        dicts, compact, start = [], [], 0
        for _ in range(len(events) - tuples):
            index = kinds.index(dict, start)
            dicts.append(events[index])  # type: ignore[arg-type]
            compact.extend(events[start:index])  # type: ignore[arg-type]
            places[index] = None
            start = index + 1
        compact.extend(events[start:])  # type: ignore[arg-type]
        layout = tuple(places)
    else:
        dicts = [event for event in events if isinstance(event, dict)]
        if len(dicts) == len(events):
            return [(_encoded(dicts), len(events))]
        compact = [e for e in events if not isinstance(e, dict)]
        layout = tuple(None if isinstance(e, dict) else e for e in events)
    # the short names joined and scanned in C (one text is ASCII if and only if each part
    # is); each text asked alone: isascii reads a flag CPython keeps, where a join would copy
    # every payload (review 34); an event is looked at only if one of them is not ASCII
    if not ("".join(map(_NAME, compact)).isascii() and all(map(str.isascii, map(_TEXT, compact)))):
        for event in compact:
            if not (event[7].isascii() and event[5].isascii()):
                _check_texts(event)
    return [(Mixed(layout, _encoded(dicts) if dicts else None), len(events))]


_NAME = operator.itemgetter(5)
_TEXT = operator.itemgetter(7)


def _encoded(events: list[dict[str, Any]]) -> bytes | list[dict[str, Any]]:
    """Event dicts as one JSON text (or, what orjson refuses, a deep copy)."""
    try:  # the engine's events have text keys only: the option's slower path is a fallback
        return orjson.dumps(events)
    except TypeError:
        try:
            return orjson.dumps(events, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            check(events)
            return copy.deepcopy(events)


def _check_texts(event: CompactEvent) -> None:
    """Refuse a compact event whose name or text UTF-8 cannot encode (as for a dict)."""
    try:
        event[5].encode()
        event[7].encode()
    except UnicodeEncodeError:
        check(expanded([event]))


def thawed(chunks: list[Chunk], ends: list[int], start: int, stop: int) -> list[dict[str, Any]]:
    """Fresh copies of the stored events ``start`` to ``stop``; decodes only their commits."""
    page: list[dict[str, Any]] = []
    for i in range(bisect.bisect_right(ends, start), len(chunks)):
        data, count = chunks[i]
        offset = ends[i] - count
        if offset >= stop:
            break
        page.extend(_events(data)[max(0, start - offset) : stop - offset])
    return page


def _events(data: bytes | list[dict[str, Any]] | Mixed) -> list[dict[str, Any]]:
    """One stored commit's events, fresh."""
    if isinstance(data, bytes):
        decoded: list[dict[str, Any]] = orjson.loads(data)
        return decoded
    if isinstance(data, list):
        return copy.deepcopy(data)
    dicts = iter(_events(data.dicts) if data.dicts is not None else ())
    return [next(dicts) if event is None else expand(event) for event in data.compact]


def ends_of(ends: list[int], chunks: list[Chunk]) -> list[int]:
    """``ends`` extended with the running event count at the end of each of ``chunks``."""
    for _, count in chunks:
        ends.append((ends[-1] if ends else 0) + count)
    return ends


def position(token: str, prefix: str, most: int | None) -> int:
    """The event count a history token of ``prefix``'s direction carries, or ValueError."""
    digits = token[len(prefix) :] if token.startswith(prefix) else ""
    if not digits.isdigit() or not digits.isascii() or (most is not None and int(digits) > most):
        raise ValueError(f"invalid history token {token!r}")
    found = int(digits)
    if prefix and found == 0:
        raise ValueError(f"invalid history token {token!r}")
    return found


def check(value: Any) -> None:
    """Refuse what the DynamoDB log could not store either (a lone surrogate, not JSON)."""
    try:
        problem = storable_problem(value)
    except RecursionError:  # deeper than the recursion limit: copied without recursion
        return
    if problem is not None and "nested too deeply" not in problem:
        raise UnstorableValueError(problem)
