"""Payload templates: ``Parameters``, ``ResultSelector`` and ``ItemSelector``.

A template is JSON in which a key ending in ``.$`` takes its value from a path
(``$.x``, ``$$.Execution.Id``, ``$var``) or an intrinsic function call
(``States.Format(...)``). Templates are compiled once into closures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stepflow.data.budget import Budget
from stepflow.data.intrinsics import compile_intrinsic
from stepflow.data.jsonpath import PathNotFoundError, PathSyntaxError, compile_path
from stepflow.data.scope import Scope
from stepflow.errors import StatesError, StatesErrorName

Evaluator = Callable[[Scope], Any]
InputEvaluator = Callable[[Any, Budget], Any]
"""An evaluator of ``$`` alone: the value and the budget (see :attr:`Template.input_form`)."""


class TemplateSyntaxError(ValueError):
    """A template whose ``.$`` field holds neither a path nor an intrinsic call.

    ``pointer`` is the JSON pointer of the offending key inside the template.
    """

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer = pointer


class Template:
    """A compiled payload template."""

    __slots__ = ("_evaluate", "_input_parts", "_parts", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._evaluate = _compile(raw, "")
        # an object with a dynamic field: its parts, built here without the builder's call
        self._parts: tuple[tuple[str, Evaluator], ...] | None = getattr(
            self._evaluate, "parts", None
        )
        inputs: list[tuple[str, InputEvaluator]] = []
        for key, fn in self._parts or ():
            on_input: InputEvaluator | None = getattr(fn, "on_input", None)
            if on_input is None:
                inputs.clear()
                break
            inputs.append((key, on_input))
        self._input_parts = tuple(inputs) if inputs else None

    @property
    def input_form(self) -> Callable[[Any, Budget], Any] | None:
        """:meth:`evaluate` of ``$`` and the budget alone (no scope), if that is all it reads.

        That is an object whose fields are constants, paths into ``$`` and intrinsic
        calls of a literal and a one-key path into ``$``; None for any other template.
        """
        return None if self._input_parts is None else self.evaluate_input

    def evaluate_input(self, value: Any, budget: Budget) -> Any:
        """:meth:`evaluate` with ``$`` bound to ``value`` (see :attr:`input_form`)."""
        budget.start_expression()
        built = {}
        for key, fn in self._input_parts or ():
            built[key] = fn(value, budget)
        return built

    def evaluate(self, scope: Scope) -> Any:
        """Build the payload; raises :class:`StatesError` when a path or call fails."""
        if self._input_parts is not None:
            return self.evaluate_input(scope.input, scope.budget)
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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its raw JSON, compiled again when loaded (closures do not pickle)."""
        return Template, (self.raw,)


def compile_dynamic(text: str, field: str) -> Evaluator:
    """Compile the value of a ``.$`` field: a path or an intrinsic function call."""
    if text.startswith("States."):
        return compile_intrinsic(text)
    try:
        path = compile_path(text)
    except PathSyntaxError as exc:
        raise TemplateSyntaxError("", f"the value of {field!r} is not a valid path: {exc}") from exc

    def not_found(source: Any) -> StatesError:
        return StatesError(
            StatesErrorName.RUNTIME,
            f"The JSONPath '{text}' specified for the field '{field}' could not be found "
            f"in the input '{json.dumps(source, separators=(',', ':'))}'",
        )

    def read(scope: Scope) -> Any:
        try:
            return scope.read(path)
        except PathNotFoundError:
            raise not_found(
                {"input": scope.input, "context": scope.context}.get(path.root)
            ) from None

    if path.root == "input":  # scope.read of a path into $, without the scope

        def read_input(value: Any, budget: Budget) -> Any:
            budget.check()
            try:
                return path.find(value)
            except PathNotFoundError:
                raise not_found(value) from None

        read.on_input = read_input  # type: ignore[attr-defined]
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
    value.on_input = lambda _value, _budget: raw  # type: ignore[attr-defined]
    return value


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
