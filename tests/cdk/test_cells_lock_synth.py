"""The CDK construct checks a cells module against its contract lock at synth."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from stepflow.cells.lock import LOCK_ENV  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cdk"))
from stepflow_cdk.cells import StepFlowCells  # noqa: E402
from stepflow_cdk.cells_source import CellsModuleError, cells_source  # noqa: E402
from stepflow_cdk.stack import StepFlowStack  # noqa: E402

from tests.unit.cells.test_cells_lock import V1, cell_source, lock_module, write  # noqa: E402


def test_an_in_place_breaking_edit_fails_the_app_before_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOCK_ENV, raising=False)
    module = write(tmp_path / "pay_cells.py", V1)
    lock_module(module)
    assert cells_source(module).cell_keys() == ["pay@1.0.0"]
    write(module, cell_source("1.1.0", "amount: int\ncurrency: str"))
    with pytest.raises(CellsModuleError, match="breaks its contract lock") as caught:
        cells_source(module).cell_keys()
    assert "input.currency: new required field" in str(caught.value)
    app = cdk.App()
    stack = StepFlowStack(app, "StepFlow", bundle=False)
    with pytest.raises(CellsModuleError, match=r"pay@1\.1\.0 breaks the contract of pay@1\.0\.0"):
        StepFlowCells(stack, "Cells", stepflow=stack, module=module)
    write(module, cell_source("2.0.0", "amount: int\ncurrency: str"))  # a new major ships
    assert StepFlowCells(stack, "Major", stepflow=stack, module=module).cell_keys == ["pay@2.0.0"]
