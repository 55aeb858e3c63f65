"""``stepflow graph --execution`` against ``stepflow local``: statuses read through boto3."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from stepflow.graph import build_graph, command, node_statuses
from stepflow.graph.command import graph_command
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class Damaged(Exception):
    """An item that cannot be packed: the Parallel catches it."""


def charge(payload: Any) -> Any:
    return {"charged": True}


def pack(item: Any) -> Any:
    if item == "broken vase":
        raise Damaged("cannot pack a broken vase")
    return {"packed": item}


def task(name: str) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN + name, "End": True}


MACHINE = {
    "StartAt": "Fulfil",
    "States": {
        "Fulfil": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Charge", "States": {"Charge": task("charge")}},
                {
                    "StartAt": "PackAll",
                    "States": {
                        "PackAll": {
                            "Type": "Map",
                            "ItemsPath": "$.items",
                            "ItemProcessor": {
                                "StartAt": "Pack",
                                "States": {"Pack": task("pack")},
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["Damaged"], "ResultPath": "$.damage", "Next": "Route"}],
            "ResultPath": "$.fulfilment",
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.damage", "IsPresent": True, "Next": "Refund"}],
            "Default": "Ship",
        },
        "Refund": {"Type": "Pass", "Next": "Done"},
        "Ship": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
EXPECTED = {
    "Fulfil": "caught",
    "Charge": "succeeded",  # or aborted, when the Map fails first: see expected()
    "PackAll": "failed",
    "Pack": "failed",
    "Route": "succeeded",
    "Refund": "succeeded",
    "Ship": "not-run",
    "Done": "succeeded",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"charge": charge, "pack": pack}) as running:
        yield running


@pytest.fixture(scope="module")
def execution(stack: LocalStack) -> str:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(name="graphed", definition=json.dumps(MACHINE), roleArn=ROLE)
    items = {"items": ["cup", "broken vase", "plate"]}
    arn = str(
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(items))[
            "executionArn"
        ]
    )
    assert wait_for(sfn, arn)["status"] == "SUCCEEDED"
    return arn


def history_of(stack: LocalStack, arn: str) -> list[dict[str, Any]]:
    """The whole history through boto3's own paginator."""
    pages = stack.stepfunctions().get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def expected(history: list[dict[str, Any]]) -> dict[str, str]:
    """EXPECTED, with Charge aborted when the Parallel failed before Charge exited (a race)."""
    exits = [e for e in history if e.get("stateExitedEventDetails", {}).get("name") == "Charge"]
    return {**EXPECTED, "Charge": "succeeded" if exits else "aborted"}


def _graph(stack: LocalStack, arn: str, source: str, fmt: str = "mermaid") -> str:
    args = [source, "--execution", arn, "--endpoint-url", stack.url, "--format", fmt]
    result = CliRunner().invoke(graph_command, args, env=CREDENTIALS)
    assert result.exit_code == 0, result.output
    return result.output


def _mermaid_statuses(text: str) -> dict[str, str]:
    names = dict(re.findall(r'^\s+(n\d+)[\[\(\{>/]+"([^"]*)"[\]\)\}/]+$', text, re.M))
    statuses: dict[str, str] = {}
    for ids, status in re.findall(r"^  class (\S+) status_(\w+)$", text, re.M):
        for node_id in ids.split(","):
            assert names[node_id] not in statuses
            statuses[names[node_id]] = status.replace("_", "-")
    return statuses


def test_mermaid_of_an_execution_has_each_state_once_with_its_status(
    stack: LocalStack, execution: str, tmp_path: Any
) -> None:
    path = tmp_path / "machine.json"
    path.write_text(json.dumps(MACHINE))
    text = _graph(stack, execution, str(path))
    nodes = re.findall(r'^\s+n\d+[\[\(\{>/]+"([^"]*)"', text, re.M)
    assert sorted(nodes) == sorted(MACHINE_STATES)
    assert _mermaid_statuses(text) == expected(history_of(stack, execution))
    assert text.count("subgraph ") == 3


def test_the_definition_comes_from_the_execution_and_the_history_is_paged(
    stack: LocalStack, execution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = history_of(stack, execution)
    assert node_statuses(MACHINE, history) == expected(history)
    requests: list[dict[str, Any]] = []
    real = command.fetch_history

    def counted(client: Any, arn: str, page_size: int) -> list[dict[str, Any]]:
        original = client.get_execution_history

        def page(**request: Any) -> Any:
            requests.append(request)
            return original(**request)

        client.get_execution_history = page
        events = real(client, arn, page_size)
        assert [e["id"] for e in events] == [e["id"] for e in history]
        return events

    monkeypatch.setattr(command, "fetch_history", counted)
    monkeypatch.setattr(command, "_PAGE_SIZE", 10)
    dot = _graph(stack, execution, "-", "dot")
    assert len(requests) == -(-len(history) // 10)
    labels = re.findall(r'^\s+n\d+ \[label="([^"]*)"', dot, re.M)
    assert sorted(labels) == sorted(MACHINE_STATES)
    for name, status in expected(history).items():
        assert re.search(rf'label="{name}".*class="status-{status}"', dot), name


MACHINE_STATES = [node.id for node in build_graph(MACHINE).nodes]
