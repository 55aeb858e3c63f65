"""Payload templates: ``Parameters``, ``ResultSelector`` and ``ItemSelector``.

A template is JSON in which a key ending in ``.$`` takes its value from a path
(``$.x``, ``$$.Execution.Id``, ``$var``) or an intrinsic function call
(``States.Format(...)``). Templates are compiled once into closures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stepflow.data.intrinsics import compile_intrinsic
from stepflow.data.jsonpath import PathNotFoundError, PathSyntaxError, compile_path
from stepflow.data.scope import Scope
from stepflow.errors import StatesError, StatesErrorName

Evaluator = Callable[[Scope], Any]


class TemplateSyntaxError(ValueError):
    """A template whose ``.$`` field holds neither a path nor an intrinsic call.

    ``pointer`` is the JSON pointer of the offending key inside the template.
    """

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer = pointer


class Template:
    """A compiled payload template."""

    __slots__ = ("_evaluate", "_parts", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._evaluate = _compile(raw, "")
        # an object with a dynamic field: its parts, built here without the builder's call
        self._parts: tuple[tuple[str, Evaluator], ...] | None = getattr(
            self._evaluate, "parts", None
        )

    def evaluate(self, scope: Scope) -> Any:
        """Build the payload; raises :class:`StatesError` when a path or call fails."""
        scope.budget.start_expression()
        parts = self._parts
        if parts is None:
            return self._evaluate(scope)
        built = {}  # _compile's build, inline (the usual template: an object)
        for key, fn in parts:
            built[key] = fn(scope)
        return built

    def __repr__(self) -> str:
        return f"Template({self.raw!r})"


def compile_dynamic(text: str, field: str) -> Evaluator:
    """Compile the value of a ``.$`` field: a path or an intrinsic function call."""
    if text.startswith("States."):
        return compile_intrinsic(text)
    try:
        path = compile_path(text)
    except PathSyntaxError as exc:
        raise TemplateSyntaxError("", f"the value of {field!r} is not a valid path: {exc}") from exc

    def read(scope: Scope) -> Any:
        try:
            return scope.read(path)
        except PathNotFoundError:
            source = {"input": scope.input, "context": scope.context}.get(path.root)
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The JSONPath '{text}' specified for the field '{field}' could not be found "
                f"in the input '{json.dumps(source, separators=(',', ':'))}'",
            ) from None

    return read


def template_problems(raw: Any) -> list[TemplateSyntaxError]:
    """Every ``.$`` field of ``raw`` that is neither a path nor an intrinsic call (all of them)."""
    problems: list[TemplateSyntaxError] = []
    stack: list[tuple[Any, str]] = [(raw, "")]
    while stack:
        value, pointer = stack.pop()
        if isinstance(value, list):
            stack.extend((v, f"{pointer}/{i}") for i, v in reversed(list(enumerate(value))))
        if not isinstance(value, dict):
            continue
        nested = []
        for key, item in value.items():
            child = f"{pointer}/{_escape(key)}"
            if not key.endswith(".$"):
                nested.append((item, child))
                continue
            try:
                _compile({key: item}, pointer)
            except TemplateSyntaxError as exc:
                problems.append(exc)
        stack.extend(reversed(nested))
    return problems


def _compile(raw: Any, pointer: str) -> Evaluator:
    if isinstance(raw, dict):
        parts: list[tuple[str, Evaluator]] = []
        dynamic = False
        for key, value in raw.items():
            child = f"{pointer}/{_escape(key)}"
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise TemplateSyntaxError(child, f"the value of {key!r} must be a string")
                try:
                    parts.append((key[:-2], compile_dynamic(value, key)))
                except (TemplateSyntaxError, ValueError) as exc:
                    raise TemplateSyntaxError(child, str(exc)) from exc
                dynamic = True
            else:
                sub = _compile(value, child)
                dynamic = dynamic or not getattr(sub, "constant", False)
                parts.append((key, sub))
        if not dynamic:
            return _constant(raw)

        def build(scope: Scope) -> dict[str, Any]:
            built = {}
            for key, fn in parts:
                built[key] = fn(scope)
            return built

        build.parts = tuple(parts)  # type: ignore[attr-defined]
        return build
    if isinstance(raw, list):
        items = [_compile(v, f"{pointer}/{i}") for i, v in enumerate(raw)]
        if all(getattr(fn, "constant", False) for fn in items):
            return _constant(raw)
        return lambda scope: [fn(scope) for fn in items]
    return _constant(raw)


def _constant(raw: Any) -> Evaluator:
    # JSON values are never mutated in place anywhere in StepFlow, so sharing is safe.
    def value(_scope: Scope) -> Any:
        return raw

    value.constant = True  # type: ignore[attr-defined]
    return value


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
