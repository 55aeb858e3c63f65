"""The graph model: nodes, groups and edges of a definition, and hostile definitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stepflow.graph import GraphError, build_graph
from stepflow.graph.model import MAX_DEPTH, MAX_NODES

from tests.unit.graph.machines import LAMBDA, fulfil_machine, task

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_json_has_the_console_shape() -> None:
    graph = build_graph(fulfil_machine()).to_json()
    assert set(graph) == {"startAt", "nodes", "groups", "edges"}
    assert graph["startAt"] == "Fulfil"
    assert [n["id"] for n in graph["nodes"]] == [
        "Fulfil", "Charge", "PackAll", "Pack", "Recover", "Route", "Big", "Wrap", "Done"
    ]  # fmt: skip
    assert graph["nodes"][1] == {
        "id": "Charge",
        "name": "Charge",
        "type": "Task",
        "group": "Fulfil#branch1",
        "end": True,
        "resource": LAMBDA + "charge",
    }
    assert json.loads(json.dumps(graph)) == graph


def test_parallel_branches_and_a_nested_map_are_groups() -> None:
    graph = build_graph(fulfil_machine()).to_json()
    branch = {"kind": "branch", "state": "Fulfil", "parent": None}
    assert graph["groups"] == [
        {"id": "Fulfil#branch1", "label": "Branch 1", **branch},
        {"id": "Fulfil#branch2", "label": "Branch 2", **branch},
        {
            "id": "PackAll#iteration",
            "label": "Map iteration",
            "kind": "iteration",
            "state": "PackAll",
            "parent": "Fulfil#branch2",
        },
    ]
    groups = {n["id"]: n["group"] for n in graph["nodes"]}
    assert (groups["Fulfil"], groups["PackAll"], groups["Pack"]) == (
        None,
        "Fulfil#branch2",
        "PackAll#iteration",
    )


def test_edges_for_next_choice_rules_default_catch_and_group_starts() -> None:
    edges = [tuple(e.values()) for e in build_graph(fulfil_machine()).to_json()["edges"]]
    assert sorted(edges, key=str) == sorted(
        [
            ("Fulfil", "Route", "next", None),
            ("Fulfil", "Recover", "catch", "Boom, States.Timeout"),
            ("Fulfil", "Charge", "next", None),
            ("Fulfil", "PackAll", "next", None),
            ("PackAll", "Pack", "next", None),
            ("Recover", "Route", "next", None),
            ("Route", "Big", "choice", "$.n > 3"),
            ("Route", "Wrap", "choice", '$.kind == "gift" and not $.wrapped is p…'),
            ("Route", "Done", "default", "Default"),
            ("Wrap", "Done", "next", None),
        ],
        key=str,
    )


def test_end_marks_end_succeed_and_fail_states_only() -> None:
    ends = {n.id for n in build_graph(fulfil_machine()).nodes if n.end}
    assert ends == {"Charge", "PackAll", "Pack", "Big", "Done"}


def test_legacy_iterator_jsonata_condition_and_long_labels() -> None:
    long = "x" * 100
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Condition": "{% $states.input.n > 3 %}", "Next": "M"},
                    {"Condition": "{% $states.input." + long + " %}", "Next": "M"},
                ],
                "Default": "M",
            },
            "M": {
                "Type": "Map",
                "Iterator": {"StartAt": "T", "States": {"T": task("t", End=True)}},
                "End": True,
            },
        },
    }
    graph = build_graph(definition)
    labels = [e.label for e in graph.edges if e.kind == "choice"]
    assert labels[0] == "$states.input.n > 3"
    assert len(labels[1] or "") == 40 and (labels[1] or "").endswith("…")
    assert [g.id for g in graph.groups] == ["M#iteration"]


def test_example_order_machine() -> None:
    definition = json.loads((EXAMPLES / "order.asl.json").read_text())
    graph = build_graph(definition)
    assert len(graph.nodes) == 17
    assert [g.id for g in graph.groups] == [
        "Fulfil#branch1",
        "Fulfil#branch2",
        "PackItems#iteration",
    ]
    catches = [e for e in graph.edges if e.kind == "catch"]
    assert [(e.source, e.target, e.label) for e in catches] == [
        ("NotifyCustomer", "Summary", "EmailBounced")
    ]


def test_a_loop_is_an_ordinary_edge() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.again", "BooleanEquals": True, "Next": "A"}],
                "Default": "C",
            },
            "C": {"Type": "Succeed"},
        },
    }
    edges = [(e.source, e.target) for e in build_graph(definition).edges]
    assert ("B", "A") in edges and ("A", "B") in edges


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (["not", "a", "mapping"], "JSON object"),
        ({"StartAt": "A"}, "/States: missing"),
        ({"StartAt": "B", "States": {"A": {"Type": "Pass", "End": True}}}, "/StartAt"),
        ({"StartAt": "A", "States": {"A": {"Type": "Teleport"}}}, "unknown state type"),
        ({"StartAt": "A", "States": {"A": "Pass"}}, "a state is an object"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}, "no state"),
        ({"StartAt": "A", "States": {"A": {"Type": "Choice"}}}, "list of rules"),
        ({"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": []}}}, "branches"),
        ({"StartAt": "A", "States": {"A": {"Type": "Map", "End": True}}}, "StartAt and States"),
    ],
)
def test_hostile_definitions_give_a_clear_error(definition: Any, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        build_graph(definition)


def test_a_state_name_used_twice_is_refused() -> None:
    branch = {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
    }
    with pytest.raises(GraphError, match="used twice"):
        build_graph(definition)


def _chain(n: int) -> dict[str, Any]:
    states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(n - 1)}
    states[f"S{n - 1}"] = {"Type": "Succeed"}
    return {"StartAt": "S0", "States": states}


def test_ten_thousand_states_are_drawn_and_one_more_is_refused() -> None:
    graph = build_graph(_chain(MAX_NODES))
    assert (len(graph.nodes), len(graph.edges)) == (MAX_NODES, MAX_NODES - 1)
    with pytest.raises(GraphError, match="more than 10000 states"):
        build_graph(_chain(MAX_NODES + 1))


def _nested(depth: int) -> dict[str, Any]:
    body: dict[str, Any] = {"StartAt": "Leaf", "States": {"Leaf": {"Type": "Pass", "End": True}}}
    for level in range(depth):
        body = {
            "StartAt": f"P{level}",
            "States": {f"P{level}": {"Type": "Parallel", "Branches": [body], "End": True}},
        }
    return body


def test_deep_nesting_is_bounded() -> None:
    assert len(build_graph(_nested(MAX_DEPTH)).groups) == MAX_DEPTH
    with pytest.raises(GraphError, match="nested deeper"):
        build_graph(_nested(MAX_DEPTH + 1))
    with pytest.raises(GraphError, match="nested deeper"):
        build_graph(_nested(5000))  # far past Python's recursion limit if unchecked


def test_deeply_nested_choice_rules_give_a_bounded_label() -> None:
    rule: dict[str, Any] = {"Variable": "$.x", "IsNull": True}
    for _ in range(5000):
        rule = {"Not": rule}
    definition = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "D"}], "Default": "D"},
            "D": {"Type": "Succeed"},
        },
    }
    label = build_graph(definition).edges[0].label or ""
    assert label.startswith("not not") and len(label) <= 40


def test_the_graph_package_loads_no_aws_sdk() -> None:
    # the console and the Lambda layer import the model; the command imports boto3 only to read
    code = (
        "import sys, stepflow.graph, stepflow.graph.render, stepflow.graph.svg, "
        "stepflow.graph.command\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("branch_state", "top_next"),
    [
        ({"Type": "Pass", "Next": "After"}, None),  # a branch state leaving its branch
        ({"Type": "Pass", "End": True}, "Inner"),  # a top-level state into a branch
        (  # a Catch out of the branch
            {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f", "End": True,
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}]},
            None,
        ),
    ],
)  # fmt: skip
def test_a_transition_out_of_its_scope_is_refused(
    branch_state: dict[str, Any], top_next: str | None
) -> None:
    after: dict[str, Any] = {"Type": "Pass", "End": True}
    if top_next:
        after = {"Type": "Pass", "Next": top_next}
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Inner", "States": {"Inner": branch_state}}],
                "Next": "After",
            },
            "After": after,
        },
    }
    with pytest.raises(GraphError, match="not in its scope"):
        build_graph(definition)


def test_a_parallel_whose_own_next_names_its_branch_state_is_refused() -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}}
                ],
                "Next": "Inner",
            }
        },
    }
    with pytest.raises(GraphError, match="not in its scope"):
        build_graph(definition)
