"""``stepflow cells lock|check`` and ``--cells`` against a contract lock: messages, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stepflow.cells.lock import LOCK_ENV, LOCK_NAME
from stepflow.cli import main

from tests.unit.cells.test_cells_lock import V1, cell_source, write

DEFINITION = {"StartAt": "Pay", "States": {"Pay": {
    "Type": "Task", "Resource": "arn:aws:states:::stepflow:cell:pay", "End": True,
}}}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_lock_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_ENV, raising=False)


def test_lock_then_check_then_an_in_place_breaking_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write(tmp_path / "pay_cells.py", V1)
    assert main(["cells", "check", str(module)]) == 2
    assert f"no lock file {tmp_path / LOCK_NAME}" in capsys.readouterr().err
    assert main(["cells", "lock", str(module)]) == 0
    assert "locked pay@1.0.0 (1 version(s) in all)" in capsys.readouterr().out
    first = (tmp_path / LOCK_NAME).read_bytes()
    assert main(["cells", "lock", str(module)]) == 0  # the same bytes twice
    assert "locked nothing new" in capsys.readouterr().out
    assert (tmp_path / LOCK_NAME).read_bytes() == first
    assert main(["cells", "check", str(module)]) == 0
    assert "1 cell version(s) keep their locked contracts" in capsys.readouterr().out

    write(module, cell_source("1.1.0", "amount: int\ncurrency: str"))  # 1.0.0 deleted
    assert main(["cells", "check", str(module)]) == 1
    err = capsys.readouterr().err
    assert "stepflow cells check: refused:" in err
    assert "pay@1.1.0 breaks the contract of pay@1.0.0: input.currency: new required" in err
    assert "new major version (2.0.0)" in err
    assert main(["cells", "lock", str(module)]) == 1  # the lock refuses it too, unchanged
    assert (tmp_path / LOCK_NAME).read_bytes() == first
    capsys.readouterr()
    definition = tmp_path / "flow.json"
    definition.write_text(json.dumps(DEFINITION))
    assert main(["run", str(definition), "--cells", str(module), "--json"]) == 2
    assert "breaks the contract of pay@1.0.0" in capsys.readouterr().err

    write(module, cell_source("2.0.0", "amount: int\ncurrency: str"))
    assert main(["cells", "lock", str(module)]) == 0
    assert "locked pay@2.0.0 (2 version(s) in all)" in capsys.readouterr().out
    # the new major loads and runs (and fails: the input {} lacks its fields)
    assert main(["run", str(definition), "--cells", str(module), "--json"]) == 1
    assert "The input of cell pay@2.0.0 is not valid" in capsys.readouterr().out


def test_an_explicit_lock_path_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write(tmp_path / "pay_cells.py", V1)
    lock = tmp_path / "locks" / "pay.json"
    lock.parent.mkdir()
    assert main(["cells", "lock", str(module), "--lock", str(lock)]) == 0
    assert not (tmp_path / LOCK_NAME).exists() and lock.is_file()
    assert main(["cells", "check", f"{module},", "--lock", str(lock)]) == 0
    assert main(["cells", "check", str(tmp_path / "nowhere.py")]) == 2
    assert "cannot load cells module" in capsys.readouterr().err
    (tmp_path / "empty.py").write_text("X = 1\n")
    assert main(["cells", "lock", str(tmp_path / "empty.py")]) == 2
    assert "defines no cell" in capsys.readouterr().err
    assert main(["cells", "check", ","]) == 2
