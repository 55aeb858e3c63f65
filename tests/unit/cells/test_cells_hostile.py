"""Hostile cases of the cells seam, each from a review finding; every test fails without its fix."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Any, Generic, Literal, Never, TypeVar

import pytest
from pydantic import BaseModel
from stepflow.cells import (
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
)
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.journal import EffectRecord
from stepflow.cells.registry import CellRegistrationError
from stepflow.runtime import InMemoryLog


class Num(BaseModel):
    n: float


class Bump(Effect[Num]):
    kind: Literal["bump"] = "bump"
    n: int


class In(BaseModel):
    k: int = 3


class Out(BaseModel):
    total: float


class Err(BaseModel):
    why: str


BODY: dict[str, Any] = {
    "resource": "arn:aws:states:::stepflow:cell:c",
    "input": {},
    "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
    "state_name": "C",
    "task_id": "t1",
}


class Counted(Cell[In, Out, Err, Bump]):
    name = "c"

    def run(self, ctx: CellContext[Bump], data: In) -> Out:
        return Out(total=sum(ctx.effect(Bump(n=i)).n for i in range(data.k)))


def runtime(
    cell: type[Cell[Any, Any, Any, Any]], calls: list[tuple[int, str]], log: InMemoryLog
) -> CellRuntime:
    def bump(effect: Bump, call: EffectCall) -> Num:
        calls.append((effect.n, call.key.token))
        return Num(n=effect.n)

    handlers = EffectHandlers()
    handlers.register(Bump, bump)
    cells = CellRegistry()
    cells.register(cell)
    return CellRuntime(cells, handlers, LogJournal(log))


class FlakyJournal:
    """A :class:`LogJournal` whose first ``record`` fails (after the handler ran), as a
    throttled table would.

    Each journal fails once: a flag on the class was left set by whichever test used
    it first in the worker process, and the next one then never failed.
    """

    def __init__(self, log: Any) -> None:
        self.inner = LogJournal(log)
        self.failed = False

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        return self.inner.recorded(key)

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the table is unavailable")
        return self.inner.record(key, record)


def test_a_journal_error_is_raised_so_the_attempt_runs_again_under_the_same_key() -> None:
    calls: list[tuple[int, str]] = []
    log = InMemoryLog()
    rt = runtime(Counted, calls, log)
    rt.journal = FlakyJournal(log)

    class Swallows(Cell[In, Out, Err, Bump]):
        name = "c"
        version = "2.0.0"

        def run(self, ctx: CellContext[Bump], data: In) -> Out:
            with contextlib.suppress(Exception):  # swallowing everything cannot hide it
                ctx.effect(Bump(n=7))
            return Out(total=0)

    rt.cells.register(Swallows)
    body = {**BODY, "resource": "arn:aws:states:::stepflow:cell:c:2.0.0"}
    with pytest.raises(ConnectionError):
        rt(body)  # not a TaskOutcome: a Retry would perform the effect under a new key
    assert rt(body).ok
    assert [n for n, _ in calls] == [7, 7] and calls[0][1] == calls[1][1]


def test_a_swallowed_non_determinism_still_fails_the_task() -> None:
    calls: list[tuple[int, str]] = []
    log = InMemoryLog()
    assert runtime(Counted, calls, log)(BODY).ok

    class Reordered(Cell[In, Out, Err, Bump]):
        name = "c"

        def run(self, ctx: CellContext[Bump], data: In) -> Out:
            with contextlib.suppress(Exception):
                ctx.effect(Bump(n=2))
            return Out(total=0)

    outcome = runtime(Reordered, calls, log)(BODY)
    assert not outcome.ok and outcome.error == "StepFlow.Cell.NonDeterministic"
    assert len(calls) == 3


def test_a_rerun_requesting_fewer_effects_is_non_deterministic() -> None:
    calls: list[tuple[int, str]] = []
    log = InMemoryLog()
    assert runtime(Counted, calls, log)(BODY).ok
    outcome = runtime(Counted, calls, log)({**BODY, "input": {"k": 2}})
    assert not outcome.ok and outcome.error == "StepFlow.Cell.NonDeterministic"
    assert "fewer" in (outcome.cause or "")
    again = runtime(Counted, calls, log)(BODY)  # the same run replays cleanly
    assert again.ok and len(calls) == 3


class Tags(Effect[Num]):
    kind: Literal["tags"] = "tags"
    tags: frozenset[str]
    extra: dict[str, int]


def test_the_digest_is_the_same_under_every_hash_seed() -> None:
    script = (
        "from tests.unit.cells.test_cells_hostile import Tags;"
        "print(Tags(tags=frozenset('abcdefghij'), extra={'b': 1, 'a': 2}).digest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": ":".join(sys.path)},
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(digests) == 1
    reordered = Tags(tags=frozenset("jihgfedcba"), extra={"a": 2, "b": 1}).digest()
    assert digests == {reordered}


def test_an_unstorable_result_fails_by_name_and_a_replay_sees_what_the_first_run_saw() -> None:
    log = InMemoryLog()
    handlers = EffectHandlers()
    handlers.register(Bump, lambda e, c: Num(n=float("inf")) if e.n == 0 else Num(n=e.n / 3))
    cells = CellRegistry()
    cells.register(Counted)
    outcome = CellRuntime(cells, handlers, LogJournal(log))({**BODY, "input": {"k": 1}})
    assert not outcome.ok and outcome.error == "StepFlow.Cell.UnstorableEffectResult"
    seen: list[Any] = []

    class Peek(Cell[In, Out, Err, Bump]):
        name = "p"

        def run(self, ctx: CellContext[Bump], data: In) -> Out:
            seen.append(ctx.effect(Bump(n=1)).n)
            return Out(total=0)

    cells.register(Peek)
    body = {**BODY, "resource": "arn:aws:states:::stepflow:cell:p", "task_id": "t2"}
    runner = CellRuntime(cells, handlers, LogJournal(log))
    assert runner(body).ok and runner(body).ok
    assert seen[0] == seen[1]


R = TypeVar("R")


class Call(Effect[R], Generic[R]):
    kind: Literal["call"] = "call"


class PutOut(BaseModel):
    version: int


class Put(Call[PutOut]):
    pass


def test_the_result_type_resolves_through_a_generic_intermediate_class() -> None:
    assert Put.result_type() is PutOut
    with pytest.raises(ValueError):
        Put.parse_result({"anything": "object"})


def test_a_field_that_hides_a_method_is_refused() -> None:
    with pytest.raises(TypeError, match="digest"):

        class Bad(Effect[Num]):
            digest: str  # type: ignore[assignment]


def test_a_cell_declaring_no_effects_may_request_none() -> None:
    class Pure(Cell[In, Out, Err, Never]):
        name = "pure"

        def run(self, ctx: CellContext[Never], data: In) -> Out:
            ctx.effect(Bump(n=1))
            return Out(total=0)

    calls: list[tuple[int, str]] = []
    outcome = runtime(Pure, calls, InMemoryLog())(
        {**BODY, "resource": "arn:aws:states:::stepflow:cell:pure"}
    )
    assert not outcome.ok and outcome.error == "StepFlow.Cell.UndeclaredEffect"
    assert calls == []


def test_one_version_written_two_ways_is_refused() -> None:
    class A(Counted):
        version = "1.2"

    class B(Counted):
        version = "1.2.0"

    registry = CellRegistry()
    registry.register(A)
    with pytest.raises(CellRegistrationError, match="already registered"):
        registry.register(B)


def test_system_exit_in_a_cell_fails_the_task() -> None:
    class Exits(Cell[In, Out, Err, Bump]):
        name = "exits"

        def run(self, ctx: CellContext[Bump], data: In) -> Out:
            raise SystemExit(3)

    outcome = runtime(Exits, [], InMemoryLog())(
        {**BODY, "resource": "arn:aws:states:::stepflow:cell:exits"}
    )
    assert not outcome.ok and outcome.error == "SystemExit"


def test_a_message_without_execution_or_attempt_is_refused() -> None:
    rt = runtime(Counted, [], InMemoryLog())
    with pytest.raises(ValueError, match="attempt"):
        rt({k: v for k, v in BODY.items() if k != "task_id"})
