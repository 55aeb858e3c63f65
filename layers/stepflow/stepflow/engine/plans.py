"""Each state's handler, resolved once per state: the usual Pass and Choice specialized.

The run loop calls ``node.runner`` (set on a state's first run by :func:`runner_of`).
For most states that is the handler of its type. A JSONPath Pass or Choice of the usual
shape (an InputPath and an OutputPath of ``$``, no Assign) gets a closure that has
resolved, once, what :func:`~stepflow.engine.simple.run_pass` and
:func:`~stepflow.engine.simple.run_choice` look up on every run: which of the state's
fields are set, how its ResultPath places the result, and which Choice rules and
Parameters read ``$`` alone (they run without a scope; see
:func:`~stepflow.engine.choice_compiled.input_test` and
:attr:`~stepflow.data.template.Template.input_form`). The closures take the same steps
as the general handlers, in the same order, and call the same code for anything else.

A closure leaves the state's exit to its caller: it returns the output and the state to
go to (``None``: the frame ends), which the run loop records as
:meth:`~stepflow.engine.transitions.Transitions.exit_state` does, or exits the state
itself and returns ``None`` (as every general handler does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING
from stepflow.asl.states.choice import ChoiceState, JSONataCondition
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.asl.states.simple import FailState, PassState, SucceedState
from stepflow.asl.states.task import TaskState
from stepflow.asl.states.wait import WaitState
from stepflow.data.jsonpath import Path
from stepflow.engine import fanout, tasks, waits
from stepflow.engine.choice_compiled import input_test, rule_test
from stepflow.engine.dataflow import state_scope
from stepflow.engine.model import Frame
from stepflow.engine.pipeline import place
from stepflow.engine.simple import (
    choose_default,
    chosen,
    run_choice,
    run_fail,
    run_pass,
    run_succeed,
)
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext

Exit = tuple[Any, str | None]
"""A state's output and the state to go to, for the caller to exit the state with."""
Runner = Callable[[Any, Frame, Any], Exit | None]


def _whole(path: Path | None) -> bool:
    """Whether ``path`` is ``$`` (the state's input itself)."""
    return path is not None and path.steps == () and path.root == "input"


def pass_plan(node: PassState) -> Runner:
    """:func:`~stepflow.engine.simple.run_pass` for ``node``, its shape resolved once."""
    if (
        node.query_language == "JSONata"
        or node.assign is not None
        or not _whole(node.input_path)
        or not _whole(node.output_path)
    ):
        return run_pass
    template = node.parameters
    evaluate = None if template is None else template.evaluate
    on_input = None if template is None else template.input_form  # evaluate, without a scope
    fixed = node.result
    into = node.result_path
    whole = into is not None and into.root == "input" and into.steps == ()
    steps = None if into is None or into.root != "input" else into.steps
    key = steps[0] if steps is not None and len(steps) == 1 else None
    if not isinstance(key, str):
        key = None

    after = node.next

    def run(d: StepContext, frame: Frame, node: PassState) -> Exit:
        raw = frame.input
        if on_input is not None:
            result = on_input(raw, d.time_budget)
        elif evaluate is not None:
            result = evaluate(state_scope(d, frame, raw))
        else:
            result = raw
        if fixed is not MISSING:
            result = fixed
        if whole:
            output = result
        elif key is not None and type(raw) is dict:  # Path.put of a one-key path, inline
            output = dict(raw)
            output[key] = result
        else:
            output = place(into, raw, result)
        return output, after

    return run


def choice_plan(node: ChoiceState) -> Runner:
    """:func:`~stepflow.engine.simple.run_choice` for ``node``, its shape resolved once.

    A rule that compares ``$`` alone runs without a scope; the scope of the others is
    made when the first of them runs.
    """
    if node.query_language == "JSONata" or not _whole(node.input_path):
        return run_choice
    if any(isinstance(rule.condition, JSONataCondition) for rule in node.choices):
        return run_choice
    try:
        rules = tuple(
            (rule, test, input_test(test)) for rule in node.choices for test in [rule_test(rule)]
        )
    except Exception:  # a rule the compiler refuses: the general handler meets it in its turn
        return run_choice
    plain = node.assign is None and _whole(node.output_path)

    def run(d: StepContext, frame: Frame, node: ChoiceState) -> Exit | None:
        effective = frame.input
        budget = d.time_budget
        scope = None
        budget.start_expression()  # the rules share one expression
        for rule, test, on_input in rules:
            if on_input is not None:
                matched = on_input(effective, budget)
            else:
                if scope is None:
                    scope = state_scope(d, frame, effective)
                matched = test(scope)
            if matched:
                if plain and rule.assign is None:  # chosen's passthrough, inline
                    return effective, rule.next
                chosen(d, frame, node, effective, rule)
                return None
        choose_default(d, frame, node, effective)
        return None

    return run


def runner_of(node: Any, general: Runner) -> Runner:
    """The handler of ``node`` (``general``: its type's), kept on the node for its next runs."""
    kind = node.__class__
    runner = (
        pass_plan(node)
        if kind is PassState
        else choice_plan(node)
        if kind is ChoiceState
        else general
    )
    object.__setattr__(node, "runner", runner)  # a cache on the frozen state, not its value
    return runner


def handler_of(node: Any) -> Runner:
    """The handler of ``node``, resolved on its first run (:func:`runner_of`) and kept."""
    runner: Runner | None = node.runner
    if runner is None:
        runner = runner_of(node, GENERAL.get(node.__class__) or _general(node))
    return runner


def _general(node: Any) -> Runner:
    """The handler of a state whose class is not in the table (a subclass of one that is)."""
    for kind, run in GENERAL.items():
        if isinstance(node, kind):
            return run
    raise StatesError(  # pragma: no cover - the parser admits only the eight types
        StatesErrorName.RUNTIME, f"unknown state type {node.type}"
    )


GENERAL: dict[type, Runner] = {
    PassState: run_pass,
    ChoiceState: run_choice,
    TaskState: tasks.run_task,
    WaitState: waits.run_wait,
    SucceedState: run_succeed,
    FailState: run_fail,
    ParallelState: fanout.run_parallel,
    MapState: fanout.run_map,
}
"""Each state type's handler, by the node's exact class (the parser makes no subclasses)."""
