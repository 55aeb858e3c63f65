"""X-Ray never receives execution data or task tokens: no response or error capture.

Powertools' ``capture_lambda_handler`` by default puts the handler's whole response
(execution output, task tokens) and any exception into the trace as metadata.
Every StepFlow handler turns both off; these tests fail if one turns them back on.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from stepflow.api import lambda_handler
from stepflow.aws import stepper_lambda

ROOT = Path(__file__).resolve().parents[2]
SECRET = "AAAAtask-token-and-execution-data"


class _Subsegment:
    def __init__(self) -> None:
        self.metadata: list[tuple[str, Any]] = []
        self.annotations: list[tuple[str, Any]] = []

    def put_metadata(self, key: str, value: Any, namespace: str = "") -> None:
        self.metadata.append((key, value))

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations.append((key, value))

    def add_exception(self, exception: BaseException, stack: Any = None) -> None:
        self.metadata.append(("exception", exception))


class _Provider:
    def __init__(self) -> None:
        self.subsegments: list[_Subsegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[_Subsegment]:
        subsegment = _Subsegment()
        self.subsegments.append(subsegment)
        yield subsegment


class _Context:
    function_name = "stepflow-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepflow-test"
    aws_request_id = "req"


HANDLERS = [
    (lambda_handler, "handler"),
    (stepper_lambda, "handler"),
    (stepper_lambda, "runner_handler"),
]


@pytest.mark.parametrize(("module", "name"), HANDLERS)
@pytest.mark.parametrize("fails", [False, True], ids=["response", "error"])
def test_a_handler_puts_neither_its_response_nor_its_error_into_the_trace(
    module: ModuleType, name: str, fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a recording X-Ray provider and a handler whose work returns (or raises) secrets
    provider = _Provider()
    monkeypatch.setattr(module.tracer, "provider", provider)

    def respond(*_: Any, **__: Any) -> dict[str, Any]:
        if fails:
            raise RuntimeError(SECRET)
        return {"statusCode": 200, "body": SECRET, "batchItemFailures": []}

    monkeypatch.setattr(module, "respond", respond)
    if hasattr(module, "get_runner"):
        monkeypatch.setattr(module, "get_runner", lambda: None)
    # WHEN the Lambda entry point runs
    with contextlib.suppress(RuntimeError):
        getattr(module, name)({"Records": []}, _Context())
    # THEN it was traced (one subsegment) but no metadata went with it
    assert len(provider.subsegments) == 1
    assert provider.subsegments[0].metadata == []
    assert SECRET not in repr(provider.subsegments[0].annotations)


def test_every_tracer_decorator_in_the_code_turns_capture_off() -> None:
    decorators = re.compile(r"@\w+\.capture_(lambda_handler|method)\b(\([^)]*\))?")
    found = 0
    for path in [*ROOT.joinpath("layers").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]:
        for match in decorators.finditer(path.read_text()):
            found += 1
            arguments = match.group(2) or ""
            assert "capture_response=False" in arguments, f"{path}: {match.group(0)}"
            assert "capture_error=False" in arguments, f"{path}: {match.group(0)}"
    assert found >= 3
