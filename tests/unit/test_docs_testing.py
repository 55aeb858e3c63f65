"""The example of docs/testing.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_the_environment_example_in_docs_testing_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "def test_an_approval_is_answered_by_the_test" in b)
    namespace: dict[str, Any] = {}
    exec(compile(example, str(DOC), "exec"), namespace)
    namespace["test_an_approval_is_answered_by_the_test"]()


def test_the_time_and_state_examples_in_docs_testing_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    names = ["test_a_slow_handler_times_out", "test_every_iteration_is_readable"]
    for name in names:
        example = next(b for b in blocks if f"def {name}" in b)
        namespace: dict[str, Any] = {}
        exec(compile(example, str(DOC), "exec"), namespace)
        namespace[name]()
