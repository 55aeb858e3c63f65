"""Where the sources the stack packages live."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER_SOURCE = ROOT / "layers" / "stepflow"
FUNCTIONS = ROOT / "functions"
PYPROJECT = ROOT / "pyproject.toml"
