"""The state data pipeline, written once.

InputPath → Parameters → ResultSelector → ResultPath → OutputPath (JSONPath mode).
"""

from __future__ import annotations

from typing import Any

from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.data.scope import Scope
from stepflow.data.template import Template
from stepflow.errors import StatesError, StatesErrorName


def select(path: Path | None, scope: Scope) -> Any:
    """Apply an ``InputPath``/``OutputPath``/``ItemsPath``: ``None`` (``null``) gives ``{}``."""
    if path is None:
        return {}
    if path.root == "input" and path.steps == ():
        return scope.input
    try:
        return scope.read(path)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{path.text}' : No results for path: {path.normalized}",
        ) from None


def build(template: Template | None, scope: Scope) -> Any:
    """Apply ``Parameters``/``ItemSelector``/``ResultSelector`` (or pass ``$`` through)."""
    if template is None:
        return scope.input
    return template.evaluate(scope)


def place(path: Path | None, raw_input: Any, result: Any) -> Any:
    """Apply ``ResultPath``: combine ``result`` with the state's raw input."""
    if path is None:
        return raw_input
    if path.root == "input" and path.steps == ():
        return result
    if path.root != "input":
        raise StatesError(
            StatesErrorName.RUNTIME, f"ResultPath must refer to the state input: {path.text}"
        )
    try:
        return path.put(raw_input, result)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RESULT_PATH_MATCH_FAILURE,
            f'Unable to apply step "{path.text}" to input {_compact(raw_input)}',
        ) from None


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
