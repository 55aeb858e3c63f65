"""GetExecutionHistory through the real boto3 client: what it shows of the effect events.

boto3 parses a response by its service model: an event keeps its ``type`` (an
enum it does not check), ``id`` and ``previousEventId``, but a details key it does
not model (``stepFlowEffectEventDetails``) is dropped. The raw HTTP response holds
them whole; ``includeExecutionData=false`` leaves their output out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.cells import CellRuntime, CellTasks, LogJournal

from tests.api.conftest import ROLE, Api, boto3_stack, invoke
from tests.unit.cells.test_history import Handlers, definition


@pytest.fixture
def cells_stack() -> Iterator[tuple[Any, Api, Handlers]]:
    handlers = Handlers()
    with boto3_stack() as (sfn, api):
        modules = handlers.modules()
        runtime = CellRuntime(modules.cells, modules.handlers, LogJournal(api.log))
        api.service.stepper.invoker = CellTasks(runtime, invoke)
        yield sfn, api, handlers


def raw_history(sfn: Any, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events boto3 returns and the events of the HTTP response it parsed them from."""
    raw: list[bytes] = []

    def keep(http_response: Any, **_: Any) -> None:
        raw.append(http_response.content)

    sfn.meta.events.register("after-call.sfn.GetExecutionHistory", keep)
    try:
        parsed = sfn.get_execution_history(**params)["events"]
    finally:
        sfn.meta.events.unregister("after-call.sfn.GetExecutionHistory", keep)
    return parsed, json.loads(raw[-1])["events"]


def test_boto3_keeps_the_effect_event_types_and_raw_http_their_details(
    cells_stack: tuple[Any, Api, Handlers],
) -> None:
    sfn, api, handlers = cells_stack
    arn = sfn.create_state_machine(name="Cells", definition=json.dumps(definition()), roleArn=ROLE)[
        "stateMachineArn"
    ]
    run = sfn.start_execution(stateMachineArn=arn, name="r1", input='{"count": 2, "charge": 9}')
    api.drain()
    assert handlers.calls == [("step", 0), ("step", 1), ("charge", 9)]
    parsed, raw = raw_history(sfn, executionArn=run["executionArn"])
    kinds = [e["type"] for e in parsed]
    assert kinds[3:7] == [
        "TaskStarted",
        "StepFlowEffectSucceeded",
        "StepFlowEffectSucceeded",
        "StepFlowEffectFailed",
    ]
    assert kinds[7] == "TaskFailed"
    effect = parsed[4]
    # boto3: type, ids and timestamp only; the details key is not in its model
    assert set(effect) == {"timestamp", "type", "id", "previousEventId"}
    assert (effect["id"], effect["previousEventId"]) == (5, 4)
    assert [e["id"] for e in parsed] == list(range(1, len(parsed) + 1))
    # raw HTTP: the details whole
    details = [e["stepFlowEffectEventDetails"] for e in raw if e["type"].startswith("StepFlow")]
    assert [d["index"] for d in details] == [0, 1, 2]
    assert details[0]["output"] == '{"n":0,"text":""}'
    assert (details[2]["error"], details[2]["cause"]) == ("Card.Declined", "9 cents refused")

    _, hidden = raw_history(sfn, executionArn=run["executionArn"], includeExecutionData=False)
    hidden_details = [
        e["stepFlowEffectEventDetails"] for e in hidden if e["type"].startswith("StepFlow")
    ]
    assert all("output" not in d for d in hidden_details)
    assert hidden_details[0]["effect"] == "Step"  # what happened stays; the data goes

    newest_first = sfn.get_execution_history(executionArn=run["executionArn"], reverseOrder=True)
    assert [e["type"] for e in newest_first["events"]][::-1] == kinds
