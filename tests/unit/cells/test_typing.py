"""mypy strict catches a wrong effect or result type in a cell; the runtime catches the rest.

One mypy run (its API) over small cells written to a temporary folder: each line
marked ``# E: <code>`` must be reported with that error code, and no other line
may be. A correct cell type-checks clean. An effect that is a valid Effect but not
in the cell's declared union cannot be a type error (that needs an intersection
type: "an Effect[R] that is also one of EffT", which Python's typing lacks), so the
runtime refuses it (``StepFlow.Cell.UndeclaredEffect``), tested below too.
"""

from __future__ import annotations

import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import (
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
)
from stepflow.cells.effects import Effect
from stepflow.runtime import InMemoryLog

ROOT = Path(__file__).resolve().parents[3]

PRELUDE = """
from typing import Annotated, Literal
from pydantic import BaseModel, Field
from stepflow.cells import Cell, CellContext, Effect

class Receipt(BaseModel):
    charge_id: str

class Refunded(BaseModel):
    ok: bool

class Charge(Effect[Receipt]):
    kind: Literal["charge"] = "charge"
    cents: int

class Refund(Effect[Refunded]):
    kind: Literal["refund"] = "refund"
    charge_id: str

Effects = Annotated[Charge | Refund, Field(discriminator="kind")]

class In(BaseModel):
    cents: int

class Out(BaseModel):
    charge_id: str

class Other(BaseModel):
    nope: int

class Declined(BaseModel):
    why: str
"""

SNIPPETS = {
    "correct": """
        class Pay(Cell[In, Out, Declined, Effects]):
            name = "pay"

            def run(self, ctx: CellContext[Effects], data: In) -> Out:
                receipt: Receipt = ctx.effect(Charge(cents=data.cents))
                if not receipt.charge_id:
                    ctx.fail(Declined(why="no charge"))
                undone = ctx.effect(Refund(charge_id=receipt.charge_id))
                assert undone.ok
                return Out(charge_id=receipt.charge_id)
    """,
    "wrong_result": """
        class Pay(Cell[In, Out, Declined, Effects]):
            name = "pay"

            def run(self, ctx: CellContext[Effects], data: In) -> Out:
                receipt: Refunded = ctx.effect(Charge(cents=1))  # E: assignment
                ctx.effect(Charge(cents=1)).ok  # E: attr-defined
                return Out(charge_id=str(receipt))
    """,
    "not_an_effect": """
        class Pay(Cell[In, Out, Declined, Effects]):
            name = "pay"

            def run(self, ctx: CellContext[Effects], data: In) -> Out:
                ctx.effect(Receipt(charge_id="c"))  # E: arg-type
                ctx.effect({"kind": "charge", "cents": 1})  # E: arg-type
                ctx.effect(Charge)  # E: arg-type
                return Out(charge_id="c")
    """,
    "wrong_output": """
        class Pay(Cell[In, Out, Declined, Effects]):
            name = "pay"

            def run(self, ctx: CellContext[Effects], data: In) -> Out:
                return Other(nope=1)  # E: return-value

        class PayOther(Cell[In, Out, Declined, Effects]):
            name = "pay-other"

            def run(self, ctx: CellContext[Effects], data: In) -> Other:  # E: override
                return Other(nope=1)
    """,
    "wrong_request": """
        class Pay(Cell[In, Out, Declined, Effects]):
            name = "pay"

            def run(self, ctx: CellContext[Effects], data: In) -> Out:
                ctx.effect(Charge(cents="ten"))  # E: arg-type
                ctx.effect(Charge(amount=1))  # E: call-arg
                ctx.fail(data.cents)  # E: arg-type
                return Out(charge_id="c")
    """,
}

CACHE = Path(tempfile.gettempdir()) / "stepflow-test-typing-mypy-cache"
"""mypy's cache, kept between runs in the system's temporary folder (a warm run takes seconds)."""

MARK = re.compile(r"#\s*E:\s*([a-z-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def test_mypy_strict_catches_wrong_effects_and_results(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    expected: set[tuple[str, int, str]] = set()
    files = []
    for name, body in SNIPPETS.items():
        text = PRELUDE + textwrap.dedent(body)
        path = tmp_path / f"snippet_{name}.py"
        path.write_text(text)
        files.append(str(path))
        for number, line in enumerate(text.splitlines(), start=1):
            if found := MARK.search(line):
                expected.add((path.name, number, found.group(1)))
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\nstrict = True\npython_version = 3.11\n"
        f"mypy_path = {ROOT / 'layers' / 'stepflow'}\ncache_dir = {CACHE}\n"
        "[mypy-jsonpath_ng.*,jsonata.*,re2,re2.*,moto.*,boto3.*,botocore.*]\n"
        "ignore_missing_imports = True\n"
        # Only the cells API is read: the rest of StepFlow is Any here (a cold run is short).
        "[mypy-stepflow,stepflow.runtime.*,stepflow.engine.*,stepflow.data.*]\n"
        "follow_imports = skip\n"
    )
    limit = sys.getrecursionlimit()  # mypy raises it for the whole process: give it back
    try:
        out, err, _status = api.run(["--config-file", str(config), "--no-pretty", *files])
    finally:
        sys.setrecursionlimit(limit)
    reported = {
        (Path(m["file"]).name, int(m["line"]), m["code"])
        for line in out.splitlines()
        if (m := REPORTED.match(line.strip()))
    }
    assert reported == expected, out + err


# -- what mypy cannot see: a valid effect outside the declared union ---------------------------


class Receipt(BaseModel):
    charge_id: str


class Charge(Effect[Receipt]):
    kind: Literal["charge"] = "charge"
    cents: int


class Ship(Effect[Receipt]):
    kind: Literal["ship"] = "ship"


Payments = Annotated[Charge, Field(discriminator="kind")]


class In(BaseModel):
    cents: int


class Out(BaseModel):
    charge_id: str


class Declined(BaseModel):
    why: str


class Sneaky(Cell[In, Out, Declined, Payments]):
    name = "sneaky"

    def run(self, ctx: CellContext[Payments], data: In) -> Out:
        receipt = ctx.effect(Charge(cents=data.cents))
        ctx.effect(Ship())  # type-checks: Ship is an Effect; refused at run time
        return Out(charge_id=receipt.charge_id)


def test_an_undeclared_effect_is_refused_at_run_time_before_its_handler_runs() -> None:
    calls: list[str] = []

    def perform(effect: Any, call: EffectCall) -> Receipt:
        calls.append(type(effect).__name__)
        return Receipt(charge_id="c1")

    handlers = EffectHandlers()
    handlers.register(Charge, perform)
    handlers.register(Ship, perform)
    cells = CellRegistry()
    cells.register(Sneaky)
    runtime = CellRuntime(cells, handlers, LogJournal(InMemoryLog()))
    outcome = runtime(
        {
            "resource": "arn:aws:states:::stepflow:cell:sneaky",
            "input": {"cents": 5},
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
            "state_name": "Pay",
            "task_id": "t1",
        }
    )
    assert not outcome.ok and outcome.error == "StepFlow.Cell.UndeclaredEffect"
    assert outcome.cause is not None and "Ship" in outcome.cause and "Charge" in outcome.cause
    assert calls == ["Charge"]  # the undeclared Ship was never performed
