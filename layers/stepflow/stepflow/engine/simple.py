"""Pass, Choice, Succeed and Fail: the states decided without waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING
from stepflow.asl.states.choice import ChoiceRule, ChoiceState, JSONataCondition
from stepflow.asl.states.simple import FailState, PassState, SucceedState
from stepflow.data.template import compile_dynamic
from stepflow.engine import dataflow
from stepflow.engine.choice_compiled import rule_test
from stepflow.engine.model import Frame
from stepflow.engine.pipeline import place
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext


def run_pass(d: StepContext, frame: Frame, node: PassState) -> None:
    """Pass: its Result (or effective input) through the output pipeline."""
    if node.query_language == "JSONata":  # dataflow.is_jsonata, inline on the hot path
        output, assigned = dataflow.result_output(d, frame, node, frame.input)
        d.exit_state(frame, node, output, assigned=assigned)
        return
    path, template = node.input_path, node.parameters
    if path is not None and path.steps == () and path.root == "input":  # "$": effective_input
        result = frame.input  # of it, inline on the hot path
        if template is not None:
            result = template.evaluate(dataflow.state_scope(d, frame, result))
    else:
        result = dataflow.effective_input(d, frame, node, template=template)
    if node.result is not MISSING:
        result = node.result
    path = node.output_path
    if node.assign is None and path is not None and path.steps == () and path.root == "input":
        # dataflow.result_output of a Pass (no ResultSelector) with neither Assign nor an
        # OutputPath, inline on the hot path; a ResultPath of "$" places the result whole
        into = node.result_path
        if into is None or into.root != "input":
            d.exit_state(frame, node, place(into, frame.input, result))
            return
        steps, raw = into.steps, frame.input
        if steps == ():  # a ResultPath of "$" places the result whole
            output = result
        elif steps is not None and len(steps) == 1 and type(raw) is dict and type(steps[0]) is str:
            output = dict(raw)  # place of a one-key path into an object (Path.put's), inline
            output[steps[0]] = result
        else:
            output = place(into, raw, result)
        d.exit_state(frame, node, output)
        return
    output, assigned = dataflow.result_output(d, frame, node, result)
    d.exit_state(frame, node, output, assigned=assigned)


def run_succeed(d: StepContext, frame: Frame, node: SucceedState) -> None:
    """Succeed: end the frame with the (filtered) input."""
    effective = dataflow.effective_input(d, frame, node)
    output, _ = dataflow.passthrough_output(d, frame, node, effective, output=node.output)
    d.exit_state(frame, node, output)


def run_choice(d: StepContext, frame: Frame, node: ChoiceState) -> None:
    """Choice: the first rule that holds picks the next state, else Default."""
    jsonata = node.query_language == "JSONata"  # dataflow.is_jsonata, inline on the hot path
    path = node.input_path
    if not jsonata and path is not None and path.steps == () and path.root == "input":
        effective = frame.input  # dataflow.effective_input of "$", inline
    else:
        effective = dataflow.effective_input(d, frame, node)
    jsonpath_scope = None if jsonata else dataflow.state_scope(d, frame, effective)
    d.time_budget.start_expression()  # JSONPath rules share one; each JSONata Condition has its own
    for rule in node.choices:
        if isinstance(rule.condition, JSONataCondition):
            matched = _condition(d, frame, rule.condition.expression)
        else:
            assert jsonpath_scope is not None
            matched = (rule.test or rule_test(rule))(jsonpath_scope)
        if matched:
            chosen(d, frame, node, effective, rule)
            return
    choose_default(d, frame, node, effective)


def chosen(
    d: StepContext, frame: Frame, node: ChoiceState, effective: Any, rule: ChoiceRule
) -> None:
    """Leave a Choice by the rule that matched (``effective``: the state's effective input)."""
    path = node.output_path
    if (
        node.assign is None
        and rule.assign is None
        and node.query_language != "JSONata"
        and path is not None
        and path.steps == ()
        and path.root == "input"
    ):  # passthrough_output's result (no Assign, an OutputPath of "$"), inline
        d.exit_state(frame, node, effective, next_state=rule.next)
        return
    # The state-level Output applies unless the rule has its own; the
    # state-level Assign applies whichever rule matches (the rule's wins a clash).
    output = node.output if rule.output is MISSING else rule.output
    assign = dataflow.rule_assign(node.assign, rule)
    output, assigned = dataflow.passthrough_output(
        d, frame, node, effective, output=output, assign=assign
    )
    d.exit_state(frame, node, output, assigned=assigned, next_state=rule.next)


def choose_default(d: StepContext, frame: Frame, node: ChoiceState, effective: Any) -> None:
    """Leave a Choice whose rules all failed: by its Default, or fail with no match."""
    if node.default is None:
        d.fail_state(frame, node, StatesErrorName.NO_CHOICE_MATCHED, "No Matches!")
        return
    output, assigned = dataflow.passthrough_output(
        d, frame, node, effective, output=node.output, assign=node.assign
    )
    d.exit_state(frame, node, output, assigned=assigned, next_state=node.default)


def _condition(d: StepContext, frame: Frame, expression: str) -> bool:
    value = dataflow.evaluate(d, frame, expression, "Condition")
    if not isinstance(value, bool):
        raise StatesError(
            StatesErrorName.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{_strip(expression)}' specified for the field "
            f"'Condition' returned an unexpected data type: {d.encode(value)}",
        )
    return value


def _strip(expression: str) -> str:
    return expression.strip()[2:-2].strip()


def run_fail(d: StepContext, frame: Frame, node: FailState) -> None:
    """Fail: end the frame with the state's error and cause."""
    if dataflow.is_jsonata(node):
        error = dataflow.evaluate(d, frame, node.error, "Error") if node.error else None
        cause = dataflow.evaluate(d, frame, node.cause, "Cause") if node.cause else None
    else:
        error, cause = node.error, node.cause
        scope = dataflow.scope(d, frame, frame.input)
        if node.error_path is not None:
            error = compile_dynamic(node.error_path, "ErrorPath")(scope)
        if node.cause_path is not None:
            cause = compile_dynamic(node.cause_path, "CausePath")(scope)
    d.frame_failed(frame, _text(d, error), _text(d, cause))


def _text(d: StepContext, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return d.encode(value)
