"""Cells modules load by dotted name (``STEPFLOW_CELLS=package.module``), not only by path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from stepflow.cells import load_modules

MODULES = Path(__file__).resolve().parents[2] / "cdk" / "cells_modules"


@pytest.fixture
def on_path() -> object:
    sys.path.insert(0, str(MODULES))
    yield
    sys.path.remove(str(MODULES))


def test_a_dotted_module_name_loads(on_path: object) -> None:
    assert load_modules(["order_cells"]).cells.keys() == ["reserve-stock@1.0"]
    assert load_modules(["order_pkg.cells"]).cells.keys() == ["echo@2.1"]


def test_a_file_path_still_loads() -> None:
    loaded = load_modules([str(MODULES / "order_cells.py")])
    assert loaded.cells.keys() == ["reserve-stock@1.0"]
