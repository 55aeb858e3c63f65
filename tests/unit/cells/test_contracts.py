"""Contract checks at registration: breaking changes within a major version are refused."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, ConfigDict, Field, create_model
from stepflow.cells import Cell, CellContext, CellRegistry, load_modules
from stepflow.cells.contracts import (
    MAX_PROBLEMS,
    BreakingChangeError,
    Problem,
    check_compatible,
    compare_schemas,
)
from stepflow.cells.registry import CellRegistrationError
from stepflow.cells.schemas import MAX_DEPTH


class Empty(BaseModel):
    pass


def cell(
    inp: type[BaseModel],
    out: type[BaseModel] = Empty,
    err: Any = Empty,
    version: str = "1.0.0",
    name: str = "c",
) -> type[Cell[Any, Any, Any, Any]]:
    """A cell class with these contract types."""

    class Made(Cell[inp, out, err, Any]):  # type: ignore[valid-type]
        def run(self, ctx: CellContext[Any], data: Any) -> Any:
            raise NotImplementedError

    Made.name, Made.version = name, version
    return Made


def problems(old_in: Any, new_in: Any, old_out: Any = Empty, new_out: Any = Empty) -> set[str]:
    """``path: kind`` of each problem from a cell with these types to one with those."""
    found = check_compatible(cell(old_in, old_out), cell(new_in, new_out, version="1.1.0"))
    return {f"{p.path}: {p.kind}" for p in found}


# -- inputs ----------------------------------------------------------------------------------


class In1(BaseModel):
    sku: str
    qty: int
    note: str | None = None


class InOptionalAdded(In1):
    gift: Any = None  # typed, it would refuse extra values In1 ignored (test_cells_lock.py)


class InRequiredAdded(In1):
    gift: bool


class InRemoved(BaseModel):
    sku: str
    qty: int


class InWidened(BaseModel):
    sku: str
    qty: float | None
    note: str | int | None = None


class InChanged(BaseModel):
    sku: int
    qty: int
    note: str = ""


class InEnum(BaseModel):
    sku: Literal["a", "b"]
    qty: Annotated[int, Field(le=10)]
    note: str | None = None


class InForbid(In1):
    model_config = ConfigDict(extra="forbid")


def test_compatible_input_changes_are_accepted() -> None:
    assert problems(In1, InOptionalAdded) == set()
    assert problems(In1, InWidened) == set()  # int -> float | None, str -> str | int
    assert problems(InEnum, In1) == set()  # restrictions lifted
    assert problems(InForbid, In1) == set()  # extra fields now allowed


def test_breaking_input_changes_name_each_path() -> None:
    assert problems(In1, InRequiredAdded) == {"input.gift: new required field"}
    assert problems(In1, InRemoved) == {"input.note: removed field"}
    assert problems(In1, InChanged) == {"input.sku: type changed", "input.note: type narrowed"}
    assert problems(InWidened, In1) == {"input.qty: type narrowed", "input.note: type narrowed"}
    assert problems(In1, InEnum) == {
        "input.sku: new enum restriction",
        "input.qty: constraint tightened",
    }
    assert problems(In1, InForbid) == {"input: additionalProperties tightened"}


class Letters(BaseModel):
    kind: Literal["a", "b", "c"]


class FewerLetters(BaseModel):
    kind: Literal["a", "b"]


def test_enum_values_removed_from_an_input_break_and_added_ones_do_not() -> None:
    assert problems(Letters, FewerLetters) == {"input.kind: enum values removed"}
    assert problems(FewerLetters, Letters) == set()


# nested models, arrays, dicts, unions


class Address(BaseModel):
    zip: str
    city: str


class Address2(BaseModel):  # renamed: titles and $defs names are not contract
    zip: Annotated[str, Field(max_length=5)]
    city: str


class Order(BaseModel):
    to: Address
    lines: list[Address]
    by_sku: dict[str, int]
    pair: tuple[int, str]


class Order2(BaseModel):
    to: Address2
    lines: list[Address2]
    by_sku: dict[str, bool]
    pair: tuple[int, int]


class Card(BaseModel):
    kind: Literal["card"] = "card"
    number: str


class Cash(BaseModel):
    kind: Literal["cash"] = "cash"


class Pay(BaseModel):
    by: Annotated[Card | Cash, Field(discriminator="kind")]


class PayByCard(BaseModel):
    by: Annotated[Card, Field(discriminator="kind")]


def test_nested_models_arrays_and_dicts_are_compared_by_path() -> None:
    assert problems(Order, Order2) == {
        "input.to.zip: constraint tightened",
        "input.lines[].zip: constraint tightened",
        "input.by_sku.*: type changed",
        "input.pair[1]: type changed",
    }
    assert problems(Order2, Order) == {
        "input.by_sku.*: type changed",
        "input.pair[1]: type changed",
    }


def test_a_discriminated_union_losing_a_variant_breaks_an_input() -> None:
    assert problems(Pay, PayByCard) == {
        "input.by.kind: enum values removed",
        "input.by.number: new required field",
    }
    assert problems(PayByCard, Pay) == set()


# -- outputs and errors ------------------------------------------------------------------------


class Out1(BaseModel):
    id: str
    total: int
    status: Literal["ok", "held"]


class OutMore(Out1):
    extra: str = ""


class OutLess(BaseModel):
    id: str
    total: int


class OutWider(BaseModel):
    id: str
    total: float | None
    status: Literal["ok", "held", "lost"]


class OutNarrower(BaseModel):
    id: str
    total: int
    status: Literal["ok"]


def test_output_changes_breaking_for_consumers_are_refused() -> None:
    assert problems(Empty, Empty, Out1, OutMore) == set()  # a new field
    assert problems(Empty, Empty, Out1, OutNarrower) == set()  # fewer values
    assert problems(Empty, Empty, Out1, OutLess) == {"output.status: removed field"}
    assert problems(Empty, Empty, Out1, OutWider) == {
        "output.total: type widened",
        "output.status: enum values added",
    }


def test_an_output_field_no_longer_required_breaks() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    new = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert [(p.path, p.kind) for p in compare_schemas(old, new, "output")] == [
        ("output.a", "field no longer required")
    ]
    assert compare_schemas(new, old, "output") == []


class Declined(BaseModel):
    reason: str
    retry: bool


class DeclinedLess(BaseModel):
    reason: str


def test_the_business_error_is_checked_as_an_output() -> None:
    found = check_compatible(
        cell(Empty, err=Declined), cell(Empty, err=DeclinedLess, version="1.0.1")
    )
    assert [(p.path, p.kind) for p in found] == [("error.retry", "removed field")]
    assert check_compatible(cell(Empty, err=None), cell(Empty, err=None, version="1.1")) == []


# -- registration ------------------------------------------------------------------------------


def test_registration_refuses_a_breaking_minor_and_names_every_path() -> None:
    registry = CellRegistry()
    registry.register(cell(In1, Out1))
    with pytest.raises(BreakingChangeError) as caught:
        registry.register(cell(InChanged, OutLess, version="1.1.0"))
    message = str(caught.value)
    for path in ("input.sku", "input.note", "output.status"):
        assert path in message
    assert "c@1.1.0 breaks the contract of c@1.0.0" in message and "2.0.0" in message
    assert isinstance(caught.value, CellRegistrationError)
    assert {p.path for p in caught.value.problems} == {"input.sku", "input.note", "output.status"}
    assert registry.keys() == ["c@1.0.0"]  # nothing registered
    registry.register(cell(InChanged, OutLess, version="2.0.0"))  # a new major is accepted
    registry.register(cell(InOptionalAdded, Out1, version="1.0.1"))  # a compatible patch
    assert registry.keys() == ["c@1.0.0", "c@1.0.1", "c@2.0.0"]


def test_versions_registered_out_of_order_are_checked_in_version_order() -> None:
    registry = CellRegistry()
    registry.register(cell(InOptionalAdded, version="1.2.0"))
    registry.register(cell(In1, version="1.0.0"))  # 1.0 -> 1.2 adds an optional field: fine
    with pytest.raises(BreakingChangeError, match=r"c@1\.2\.0 breaks the contract of c@1\.1\.0"):
        registry.register(cell(InWidened, version="1.1.0"))  # 1.0 -> 1.1 fine, 1.1 -> 1.2 not
    assert registry.keys() == ["c@1.0.0", "c@1.2.0"]


def test_load_modules_checks_the_versions_of_a_module(tmp_path: Path) -> None:
    module = tmp_path / "breaking_cells.py"
    module.write_text(
        textwrap.dedent(
            """
            from typing import Any
            from pydantic import BaseModel
            from stepflow.cells import Cell, CellContext

            class In(BaseModel):
                a: int

            class InB(BaseModel):
                a: int
                b: int

            class V11(Cell[InB, In, In, Any]):
                name, version = "m", "1.1.0"

            class V1(Cell[In, In, In, Any]):
                name, version = "m", "1.0.0"
            """
        )
    )
    with pytest.raises(BreakingChangeError, match=r"input\.b: new required field"):
        load_modules([str(module)])


# -- hostile schemas ----------------------------------------------------------------------------


class Node(BaseModel):
    value: int
    children: list[Node] = []
    next: Optional[Node] = None  # noqa: UP045 (Optional reads as the Optional it tests)


class Node2(BaseModel):
    value: float
    children: list[Node2] = []
    next: Node2 | None = None


class Node3(BaseModel):
    value: int
    children: list[Node3] = []


def test_recursive_models_are_compared_once_per_pair() -> None:
    assert problems(Node, Node2) == set()  # int -> float widens an input
    assert problems(Node2, Node) == {  # each path through the recursion, once
        "input.value: type narrowed",
        "input.next.value: type narrowed",
        "input.children[].value: type narrowed",
        "input.children[].next.value: type narrowed",
    }
    assert problems(Node, Node3) == {
        "input.next: removed field",
        "input.children[].next: removed field",
    }
    assert problems(Empty, Empty, Node3, Node) == set()


def _chain(depth: int, leaf: type) -> type[BaseModel]:
    model: type[BaseModel] = create_model("Leaf", v=(leaf, ...))
    for i in range(depth):
        model = create_model(f"Level{i}", inner=(model, ...))
    return model


def test_deep_schemas_are_refused_as_too_complex_instead_of_crashing() -> None:
    same = problems(_chain(150, int), _chain(150, int))
    assert same == set()  # identical: nothing to compare
    assert problems(_chain(20, int), _chain(20, str)) == {
        "input" + ".inner" * 20 + ".v: type changed"
    }
    deep = check_compatible(cell(_chain(150, int)), cell(_chain(150, str), version="1.1"))
    assert [(p.path, p.kind) for p in deep] == [("input", "too complex to check")]
    assert str(MAX_DEPTH) in deep[0].detail


def test_huge_and_exploding_schemas_stay_bounded() -> None:
    wide = create_model("Wide", **{f"f{i}": (int, ...) for i in range(1000)})  # type: ignore[call-overload]
    wider = create_model("Wider", **{f"f{i}": (float, ...) for i in range(1000)})  # type: ignore[call-overload]
    assert problems(wide, wider) == set()
    assert len(problems(wider, wide)) == MAX_PROBLEMS  # the first ones named, not all 1000
    # Unions of unions: every variant of one side tried against every one of the other.
    variants = [create_model(f"V{i}", **{f"k{i}": (int, ...)}) for i in range(100)]  # type: ignore[call-overload]
    union: Any = variants[0]
    for v in variants[1:]:
        union = union | v
    many = create_model("Many", x=(list[union], ...))
    fewer_union: Any = variants[0]
    for v in variants[1:70]:
        fewer_union = fewer_union | v
    fewer = create_model("Fewer", x=(list[fewer_union], ...))
    found = check_compatible(cell(many), cell(fewer, version="1.1"))
    assert found and all(isinstance(p, Problem) for p in found)


def test_models_shared_at_every_level_do_not_multiply_the_work() -> None:
    leaf: type[BaseModel] = create_model("L", v=(int, ...))
    changed: type[BaseModel] = create_model("L", v=(str, ...))
    for i in range(40):  # 2**40 paths to the leaf through a and b
        leaf = create_model(f"D{i}", a=(leaf, ...), b=(leaf, ...))
        changed = create_model(f"D{i}", a=(changed, ...), b=(changed, ...))
    found = check_compatible(cell(leaf), cell(changed, version="1.1"))
    assert len(found) == MAX_PROBLEMS
    assert all(p.kind == "type changed" and p.path.endswith(".v") for p in found)


def test_a_problem_reads_as_path_kind_and_detail() -> None:
    [problem] = compare_schemas({"type": "integer"}, {"type": "string"}, "input")
    assert str(problem) == "input: type changed (was integer, now string)"


@pytest.mark.parametrize(
    ("old", "new", "breaks"),
    [
        ({"gt": 0}, {"ge": 0}, False),
        ({"ge": 0}, {"gt": 0}, True),
        ({"ge": 1}, {"gt": 0}, False),
        ({"ge": 0}, {"ge": 0}, False),
        ({"le": 10}, {"lt": 11}, False),
        ({"lt": 10}, {"le": 10}, False),
        ({"le": 10}, {"lt": 10}, True),
        ({}, {"le": 10}, True),
        ({"ge": 5}, {}, False),
    ],
)
def test_inclusive_and_exclusive_number_bounds_compare_as_numbers(
    old: dict[str, int], new: dict[str, int], breaks: bool
) -> None:
    before = create_model("Before", x=(Annotated[float, Field(**old)], ...))  # type: ignore[call-overload]
    after = create_model("After", x=(Annotated[float, Field(**new)], ...))  # type: ignore[call-overload]
    assert bool(problems(before, after)) is breaks
    assert bool(problems(Empty, Empty, after, before)) is breaks  # an output: the mirror image
