"""Contract lock files: in-place edits of a cell are checked against what was locked."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from stepflow.cells import load_modules
from stepflow.cells.lock import (
    LOCK_ENV,
    LOCK_NAME,
    MAX_LOCK_BYTES,
    ContractLockError,
    LockViolationError,
    check_module,
    read_lock,
    update_lock,
)
from stepflow.cells.registry import import_cells_module
from stepflow.cli import main

HEADER = """\
from decimal import Decimal
from typing import Any
from pydantic import BaseModel, ConfigDict, Field
from stepflow.cells import Cell, CellContext
"""


def cell_source(version: str, fields: str, config: str = "", name: str = "pay") -> str:
    """A cell class ``name@version`` whose input model has ``fields``."""
    body = textwrap.indent(textwrap.dedent(fields).strip() or "pass", "    ")
    klass = f"C{version.replace('.', '_')}_{name}"
    return (
        f"\nclass In_{klass}(BaseModel):\n"
        + (f"    model_config = ConfigDict({config})\n" if config else "")
        + f"{body}\n\n"
        + f"class {klass}(Cell[In_{klass}, dict[str, int], Any, Any]):\n"
        + f'    name = "{name}"\n    version = "{version}"\n\n'
        + "    def run(self, ctx: CellContext[Any], data: Any) -> dict[str, int]:\n"
        + "        return {}\n"
    )


def write(path: Path, *cells: str) -> Path:
    path.write_text(HEADER + "".join(cells))
    return path


def lock_module(path: Path, lock: Path | None = None) -> Path:
    """Lock the cells of the module at ``path``; the lock's path."""
    module = import_cells_module(str(path))
    from stepflow.cells.lock import module_cells

    where = lock or path.parent / LOCK_NAME
    update_lock(module_cells(module), where)
    return where


V1 = cell_source("1.0.0", "amount: int\nnote: str | None = None")


@pytest.fixture()
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(LOCK_ENV, raising=False)
    path = write(tmp_path / "pay_cells.py", V1)
    lock_module(path)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(LockViolationError) as caught:
        load_modules([str(path)])
    return str(caught.value)


# -- in-place edits ----------------------------------------------------------------------------


def test_an_in_place_breaking_edit_is_refused_by_load_modules(module: Path) -> None:
    write(module, cell_source("1.1.0", "amount: int\ncurrency: str"))  # 1.0.0 deleted
    message = refusal(module)
    assert "pay@1.1.0 breaks the contract of pay@1.0.0" in message
    assert "input.currency: new required field" in message
    assert "input.note: removed field" in message
    assert "(2.0.0)" in message
    load_modules([str(module)], lock=False)  # no lock asked for: only the loaded versions


def test_a_locked_version_is_immutable(module: Path) -> None:
    write(module, cell_source("1.0.0", "amount: int"))
    message = refusal(module)
    assert "pay@1.0.0 changed its contract since it was locked" in message
    assert "input.note: removed field" in message and "(2.0.0)" in message
    # even a compatible change needs a new version (here a minor one)
    write(module, cell_source("1.0.0", "amount: int | str\nnote: str | None = None"))
    assert "give the change a new version (1.1.0)" in refusal(module)
    # titles and descriptions are not contract: a docstring may change
    write(
        module,
        cell_source("1.0.0", '"""Money in."""\namount: int = Field(description="cents")\n'
                    "note: str | None = None"),
    )  # fmt: skip
    load_modules([str(module)])


def test_compatible_edits_and_a_new_major_pass_and_are_added_to_the_lock(module: Path) -> None:
    compatible = cell_source(
        "1.1.0", "amount: int | str\nnote: str | None = None\nextra: Any = None"
    )
    breaking = cell_source("2.0.0", "amount: int\ncurrency: str")
    write(module, compatible, breaking)
    load_modules([str(module)])
    lock_module(module)
    assert sorted(read_lock(module.parent / LOCK_NAME)) == ["pay@1.0.0", "pay@1.1.0", "pay@2.0.0"]
    # 1.2.0 is checked against the locked 1.1.0 (the highest below it), not 1.0.0
    write(module, cell_source("1.2.0", "amount: int | str\nnote: str | None = None\nextra: int"))
    assert "pay@1.2.0 breaks the contract of pay@1.1.0" in refusal(module)
    # a version slotted below a locked one must keep its contract for the one above
    write(module, cell_source("1.0.5", "amount: int | str | float\nnote: str | None = None"))
    assert "pay@1.1.0 breaks the contract of pay@1.0.5" in refusal(module)


def test_the_accepted_but_breaking_cases_are_refused(module: Path) -> None:
    cases = {
        "amount: int\nnote: str | None = None\ncode: int | None = None": (
            "input.code: new field narrows an extra field"
        ),
        "model_config = ConfigDict(strict=True)\namount: int\nnote: str | None = None": (
            "input: strict mode turned on"
        ),
        "amount: int = Field(strict=True)\nnote: str | None = None": (
            "input.amount: strict mode turned on"
        ),
        "amount: int = Field(le=10)\nnote: str | None = Field(None, max_length=3)": (
            "input.amount: constraint tightened"
        ),
    }
    for fields, expected in cases.items():
        write(module, cell_source("1.1.0", fields))
        assert expected in refusal(module), fields
    write(module, cell_source("1.0.0", "d: Decimal = Field(max_digits=10)"))
    lock_module(module, module.parent / "decimal.lock.json")
    write(module, cell_source("1.1.0", "d: Decimal = Field(max_digits=5)"))
    with pytest.raises(LockViolationError, match=r"input\.d: constraint tightened"):
        load_modules([str(module)], lock=module.parent / "decimal.lock.json")


def test_a_new_optional_field_is_compatible_where_the_old_input_forbade_extras(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "strict_cells.py", cell_source("1.0.0", "a: int", 'extra="forbid"'))
    lock = lock_module(path)
    write(path, cell_source("1.1.0", "a: int\nb: int | None = None", 'extra="forbid"'))
    check_module(import_cells_module(str(path)), lock)


def test_the_lock_is_deterministic(module: Path, tmp_path: Path) -> None:
    lock = module.parent / LOCK_NAME
    first = lock.read_bytes()
    lock.unlink()
    lock_module(module)
    assert lock.read_bytes() == first
    lock_module(module)  # nothing new: not rewritten
    assert lock.read_bytes() == first
    document = json.loads(first)
    assert list(document) == ["cells", "format"] and first.endswith(b"}\n")
    text = first.decode()
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"
    # the same cells written in another order lock to the same bytes
    other = write(tmp_path / "twice.py", cell_source("2.0.0", "b: int"), V1)
    again = write(tmp_path / "again.py", V1, cell_source("2.0.0", "b: int"))
    assert lock_module(other, tmp_path / "a.json").read_bytes() == (
        lock_module(again, tmp_path / "b.json").read_bytes()
    )


def test_a_missing_lock_is_fine_and_the_environment_names_another(
    module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (module.parent / LOCK_NAME).rename(tmp_path / "elsewhere.json")
    write(module, cell_source("1.1.0", "amount: int\ncurrency: str"))
    load_modules([str(module)])  # no lock next to it: nothing to check
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "elsewhere.json"))
    assert "input.currency: new required field" in refusal(module)
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ContractLockError, match=r"missing\.json does not exist"):
        load_modules([str(module)])


# -- hostile lock files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply|is not JSON"),
        ("[]", 'expected an object with "format": 1'),
        ('{"format": 2, "cells": {}}', 'expected an object with "format": 1'),
        ('{"format": 1, "cells": []}', '"cells" must be an object'),
        ('{"format": 1, "cells": {"pay": {}}}', "'pay' is not name@MAJOR"),
        ('{"format": 1, "cells": {"pay@1.x": {}}}', "is not name@MAJOR"),
        ('{"format": 1, "cells": {"pay@1.0.0": 5}}', "pay@1.0.0 must be an object"),
        ('{"format": 1, "cells": {"pay@1.0.0": {"input": "s"}}}', "pay@1.0.0.input must be"),
        (
            '{"format": 1, "cells": {"pay@1.0.0": {"input": {}, "output": {}, "error": {}, '
            '"config": 3}}}',
            "config must be an object",
        ),
    ],
)
def test_malformed_lock_files_are_refused_clearly(
    module: Path, content: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (module.parent / LOCK_NAME).write_text(content)
    with pytest.raises(ContractLockError, match=why):
        load_modules([str(module)])
    assert main(["cells", "check", str(module)]) == 2
    assert "stepflow: error: lock file" in capsys.readouterr().err


def test_a_huge_or_binary_lock_file_is_refused_unread(module: Path) -> None:
    lock = module.parent / LOCK_NAME
    with lock.open("wb") as sparse:
        sparse.truncate(MAX_LOCK_BYTES + 1)
    with pytest.raises(ContractLockError, match=f"at most {MAX_LOCK_BYTES}"):
        read_lock(lock)
    lock.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ContractLockError, match="cannot read lock file"):
        read_lock(lock)


def test_well_formed_but_hostile_schemas_in_a_lock_are_compared_without_crashing(
    module: Path,
) -> None:
    hostile = [
        {"$ref": "#/nowhere"},
        {"type": 5, "properties": "x", "required": {"a": 1}, "anyOf": "no"},
        {"allOf": [True, False, {"$ref": "#"}]},
        {"$ref": "#", "properties": {"a": {"$ref": "#"}}},
        False,
    ]
    for schema in hostile:
        entry = {"input": schema, "output": {}, "error": {}, "config": {}}
        document = {"format": 1, "cells": {"pay@1.0.0": entry}}
        (module.parent / LOCK_NAME).write_text(json.dumps(document))
        with pytest.raises(LockViolationError, match=r"pay@1\.0\.0 changed its contract"):
            load_modules([str(module)])
