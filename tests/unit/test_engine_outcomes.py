"""Random Pass/Choice machines: every outcome equals the one main's engine recorded.

``engine_outcomes_main.txt`` holds, for 400 seeded random machines
(``tools/engine_differential.py``), the status and a digest of the output, error,
cause and every history event's JSON text that the engine gave before the issue-18
round-4 shortcuts (main at 1f43e1e). A shortcut that changes any byte of any of them
fails here. Regenerate only for a deliberate change of behaviour:

    PYTHONPATH=/tmp/base/layers/stepflow .venv/bin/python tools/engine_differential.py \\
        --random 400 --no-conformance > tests/unit/engine_outcomes_main.txt
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).with_name("engine_outcomes_main.txt")


def differential_tool() -> ModuleType:
    """tools/engine_differential.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location(
        "engine_differential", ROOT / "tools/engine_differential.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_random_machines_give_what_main_gave() -> None:
    tool = differential_tool()
    recorded = dict(line.split(" ", 1) for line in RECORDED.read_text().splitlines())
    found = tool.cases(400, 18, conformance=False)
    assert len(found) == len(recorded) == 400
    differ = []
    for case_id, definition, value in found:
        status, digest = tool.digest(definition, value)
        if recorded[case_id] != f"{status} {digest}":
            differ.append((case_id, definition, value))
    assert not differ, f"{len(differ)} outcomes differ from main's; the first: {differ[0]}"
    statuses = {line.split()[0] for line in recorded.values()}
    assert {"SUCCEEDED", "FAILED"} <= statuses  # both ends of the machines are covered
