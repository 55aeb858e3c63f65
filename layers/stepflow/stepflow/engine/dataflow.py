"""A state's effective input, output and variable assignments, in either query language.

JSONPath: InputPath → Parameters → (work) → ResultSelector → ResultPath →
OutputPath, with ``Assign`` evaluated against the state's result.
JSONata: ``Arguments`` → (work) → ``Output``/``Assign`` evaluated against
``$states`` (``input``, ``result``, ``errorOutput``, ``context``).
In both, ``Assign`` and the output see the variables as they were before the
state ran; the new values are committed when the state exits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepflow.asl.catch import Catcher
from stepflow.asl.states.base import MISSING, State
from stepflow.asl.states.choice import ChoiceRule
from stepflow.data.budget import Budget
from stepflow.data.jsonata import JSONataTemplate, compile_template
from stepflow.data.jsonpath import Path
from stepflow.data.scope import Scope
from stepflow.data.serialize import dumps
from stepflow.data.template import Template
from stepflow.engine.model import Frame
from stepflow.engine.pipeline import place, select
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import EvalContext

ASSIGN_LIMIT = 256 * 1024
"""Bytes of JSON one ``Assign`` may write (Step Functions' per-state limit)."""

_CACHE_ENTRIES = 4096
"""Compiled templates kept per cache; a long-lived process sees many definitions."""

# Keyed by the id() of a definition's (immutable) value, which each entry keeps
# alive so the id cannot be reused while cached; bounded, oldest dropped first.
_jsonata_cache: dict[tuple[int, str], tuple[Any, JSONataTemplate]] = {}
_assign_cache: dict[tuple[int, str], tuple[Any, Template]] = {}
_merged_cache: dict[tuple[int, str], tuple[Any, ChoiceRule, dict[str, Any]]] = {}


def _bounded_put(cache: dict[tuple[int, str], Any], key: tuple[int, str], entry: Any) -> None:
    if len(cache) >= _CACHE_ENTRIES:
        del cache[next(iter(cache))]
    cache[key] = entry


def rule_assign(
    state_assign: Mapping[str, Any] | None, rule: ChoiceRule
) -> Mapping[str, Any] | None:
    """A matched Choice rule's Assign: the state's, then the rule's (the rule's wins a clash).

    The definition's own mapping where only one of them has an Assign, else the two merged
    once per rule: templates are cached by the value they were compiled from, so a mapping
    made anew on every Choice entered would never hit the cache (review 26).
    """
    if not rule.assign:
        return state_assign or None
    if not state_assign:
        return rule.assign
    key = (id(rule), "Assign")
    hit = _merged_cache.get(key)
    if hit is None or hit[0] is not state_assign or hit[1] is not rule:
        hit = (state_assign, rule, {**state_assign, **rule.assign})
        _bounded_put(_merged_cache, key, hit)
    return hit[2]


def jsonata(raw: Any, field: str) -> JSONataTemplate:
    """The compiled JSONata template of a definition value (compiled once per value)."""
    key = (id(raw), field)
    hit = _jsonata_cache.get(key)
    if hit is None or hit[0] is not raw:
        # keyed by the definition's own value: a copy made per call (as Assign's was) never hits
        value = dict(raw) if isinstance(raw, Mapping) and type(raw) is not dict else raw
        hit = (raw, compile_template(value, field))
        _bounded_put(_jsonata_cache, key, hit)
    return hit[1]


def _assign_template(raw: Mapping[str, Any]) -> Template:
    key = (id(raw), "Assign")
    hit = _assign_cache.get(key)
    if hit is None or hit[0] is not raw:
        hit = (raw, Template(dict(raw)))
        _bounded_put(_assign_cache, key, hit)
    return hit[1]


def is_jsonata(node: State) -> bool:
    """Whether the state evaluates its fields as JSONata."""
    return node.query_language == "JSONata"


def variables(d: EvalContext, frame: Frame) -> Mapping[str, Any]:
    """The variables ``frame`` can read: its own over its ancestors' (read-only)."""
    outer = d.state.outer_variables  # a child execution reads its parent's
    if frame.parent is None:
        return {**outer, **frame.variables} if outer else frame.variables
    chain = []
    current: Frame | None = frame
    while current is not None:
        chain.append(current.variables)
        current = d.state.frames.get(current.parent) if current.parent is not None else None
    merged: dict[str, Any] = dict(outer)
    for scope in reversed(chain):
        merged.update(scope)
    return merged


def scope(d: EvalContext, frame: Frame, value: Any, **context: Any) -> Scope:
    """A JSONPath scope: ``$`` is ``value``, with the context object and variables."""
    if not context:
        return state_scope(d, frame, value)
    if frame.parent is None and not d.state.outer_variables:  # variables(), the usual case
        visible: Mapping[str, Any] = frame.variables
    else:
        visible = variables(d, frame)
    return Scope(value, lambda: d.context(frame, **context), visible, d.time_budget)


def state_scope(d: EvalContext, frame: Frame, value: Any) -> Scope:
    """:func:`scope` with the state's own context object (no extra fields: the hot path)."""
    if frame.parent is None and not d.state.outer_variables:  # variables(), the usual case
        visible: Mapping[str, Any] = frame.variables
    else:
        visible = variables(d, frame)
    return _StateScope(value, d, frame, visible, d.time_budget)


class _StateScope(Scope):
    """A state's scope whose context object is ``d.context(frame)``, built on first read.

    The same as ``Scope(value, lambda: d.context(frame), ...)`` without the closure
    (a function and two cells per state on the hot path).
    """

    __slots__ = ("_decision", "_frame")

    def __init__(
        self,
        value: Any,
        decision: EvalContext,
        frame: Frame,
        variables: Mapping[str, Any],
        budget: Budget,
    ) -> None:
        self.input = value
        self._context = _UNBUILT
        self._decision = decision
        self._frame = frame
        self.variables = variables
        self.budget = budget

    @property
    def context(self) -> Any:
        """The context object (built now on the first read)."""
        if self._context is _UNBUILT:
            self._context = self._decision.context(self._frame)
        return self._context

    def with_input(self, value: Any) -> Scope:
        """The same scope with ``$`` bound to ``value`` (an unbuilt context built on its read)."""
        if self._context is _UNBUILT:
            return _StateScope(value, self._decision, self._frame, self.variables, self.budget)
        return Scope(value, self._context, self.variables, self.budget)


_UNBUILT: Any = object()


def states(d: EvalContext, frame: Frame, **extra: Any) -> dict[str, Any]:
    """The ``$states`` object of a JSONata state."""
    context = extra.pop("context", None) or d.context(frame)
    return {"input": frame.input, "context": context, **extra}


def evaluate(d: EvalContext, frame: Frame, raw: Any, field: str, **extra: Any) -> Any:
    """Evaluate a JSONata-mode field (literal JSON with ``{% %}`` expressions).

    ``$states`` has no context object when no expression of the field can read it
    (``JSONataTemplate.reads_context``): building it costs more than most reads.
    """
    template = jsonata(raw, field)
    if template.reads_context or "context" in extra:
        bound = states(d, frame, **extra)
    else:
        bound = {"input": frame.input, **extra}
    return template.evaluate(bound, variables(d, frame), d.time_budget)


def effective_input(
    d: EvalContext, frame: Frame, node: State, *, template: Template | None = None, **context: Any
) -> Any:
    """The input the state works on: after InputPath/Parameters, or its ``Arguments``."""
    if node.query_language == "JSONata":  # is_jsonata, inline on the hot path
        arguments = getattr(node, "arguments", MISSING)
        if arguments is MISSING:
            return frame.input
        return evaluate(d, frame, arguments, "Arguments", context=d.context(frame, **context))
    value = frame.input
    path = node.input_path
    if path is None or path.steps != () or path.root != "input":  # "$" is _select's identity
        value = select(path, scope(d, frame, value))
    if template is not None:
        value = template.evaluate(scope(d, frame, value, **context))
    return value


def result_output(
    d: EvalContext, frame: Frame, node: State, result: Any
) -> tuple[Any, dict[str, Any] | None]:
    """Output and assignments of a state that produced a result (Pass, Task, Parallel, Map)."""
    if node.query_language == "JSONata":  # is_jsonata, inline on the hot path
        return _jsonata_output(d, frame, node.output, node.assign, result=result)
    selector: Template | None = getattr(node, "result_selector", None)
    if selector is not None:
        result = selector.evaluate(scope(d, frame, result))
    assigned = None if node.assign is None else _jsonpath_assign(d, frame, node.assign, result)
    out = place(getattr(node, "result_path", None), frame.input, result)
    path = node.output_path
    if path is None or path.steps != () or path.root != "input":  # "$" is _select's identity
        out = select(path, scope(d, frame, out))
    return out, assigned


def passthrough_output(
    d: EvalContext,
    frame: Frame,
    node: State,
    effective: Any,
    *,
    output: Any = MISSING,
    assign: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """Output and assignments of a state without a result (Choice, Wait, Succeed)."""
    if node.query_language == "JSONata":  # is_jsonata, inline on the hot path
        return _jsonata_output(d, frame, output, assign)
    assigned = None if assign is None else _jsonpath_assign(d, frame, assign, effective)
    return _select(d, frame, node.output_path, effective), assigned


def catch_output(
    d: EvalContext, frame: Frame, node: State, catcher: Catcher, error_output: dict[str, Any]
) -> tuple[Any, dict[str, Any] | None]:
    """Output and assignments when ``catcher`` handles the state's error."""
    if is_jsonata(node):
        return _jsonata_output(d, frame, catcher.output, catcher.assign, errorOutput=error_output)
    assigned = _jsonpath_assign(d, frame, catcher.assign, error_output)
    return place(catcher.result_path, frame.input, error_output), assigned


def _select(d: EvalContext, frame: Frame, path: Path | None, value: Any) -> Any:
    if path is not None and path.steps == () and path.root == "input":
        return value  # "$": no need to build a scope
    return select(path, scope(d, frame, value))


def error_output(error: str | None, cause: str | None) -> dict[str, Any]:
    """The ``{"Error", "Cause"}`` object of a failure (keys only when set)."""
    output: dict[str, Any] = {}
    if error is not None:
        output["Error"] = error
    if cause is not None:
        output["Cause"] = cause
    return output


def _jsonata_output(
    d: EvalContext, frame: Frame, output: Any, assign: Mapping[str, Any] | None, **extra: Any
) -> tuple[Any, dict[str, Any] | None]:
    assigned = None
    if assign is not None:
        assigned = evaluate(d, frame, assign, "Assign", **extra)
        _check_size(assigned)
    if output is not MISSING:
        return evaluate(d, frame, output, "Output", **extra), assigned
    if "result" in extra:
        return extra["result"], assigned
    if "errorOutput" in extra:
        return extra["errorOutput"], assigned
    return frame.input, assigned


def _jsonpath_assign(
    d: EvalContext, frame: Frame, assign: Mapping[str, Any] | None, value: Any
) -> dict[str, Any] | None:
    if assign is None:
        return None
    assigned = _assign_template(assign).evaluate(scope(d, frame, value))
    _check_size(assigned)
    return dict(assigned)


def _check_size(assigned: Any) -> None:
    size = len(dumps(assigned).encode())
    if size > ASSIGN_LIMIT:
        raise StatesError(
            StatesErrorName.DATA_LIMIT_EXCEEDED,
            f"The variables assigned by this state total {size} bytes, more than the "
            f"{ASSIGN_LIMIT} bytes one state may assign.",
        )
