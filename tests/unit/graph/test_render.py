"""Mermaid, DOT and SVG writers: structure, statuses and hostile state names."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from stepflow.graph import build_graph
from stepflow.graph.render import to_dot, to_mermaid
from stepflow.graph.svg import INSTALL_HINT, GraphvizError, to_svg

from tests.unit.graph.machines import fulfil_machine

HOSTILE = "Say \"hi\"] [x] --> end\n<script>alert(1)</script> {y} |z|; #1 \\N & 'q'"
NEEDS_DOT = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is absent")
MERMAID_LABEL = re.compile(r"(?:[A-Za-z0-9 _.,:/+*=()$@!?\-]|#\d+;)*")


def hostile_machine() -> dict[str, Any]:
    """A Choice and a Parallel whose names, rule and Catcher carry markup and delimiters."""
    return {
        "StartAt": HOSTILE,
        "States": {
            HOSTILE: {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "StringEquals": '"]-->x<b>', "Next": "P"}],
                "Default": "P",
            },
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "in</text>", "States": {"in</text>": {"Type": "Succeed"}}}
                ],
                "Catch": [{"ErrorEquals": ['E"}-->'], "Next": HOSTILE}],
                "End": True,
            },
        },
    }


def _mermaid_nodes(text: str) -> list[tuple[str, str]]:
    """(id, label) of each node definition: ``id<open>"label"<close>`` alone on a line."""
    return re.findall(r'^\s+(n\d+)[\[\(\{>/]+"([^"]*)"[\]\)\}/]+$', text, re.M)


def test_mermaid_structure() -> None:
    graph = build_graph(fulfil_machine())
    text = to_mermaid(graph)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = _mermaid_nodes(text)
    assert sorted(label for _, label in nodes) == sorted(n.name for n in graph.nodes)
    opened = [line.strip() for line in lines if line.strip().startswith("subgraph ")]
    closed = [line for line in lines if line.strip() == "end"]
    assert len(opened) == len(closed) == len(graph.groups) == 3
    # the Map iteration's subgraph sits inside the second branch's
    branch2 = lines.index('  subgraph g1["Branch 2 of Fulfil"]')
    iteration = lines.index('    subgraph g2["Map iteration of PackAll"]')
    assert branch2 < iteration
    edges = [line for line in lines if re.match(r"\s+n\d+ -", line)]
    assert len(edges) == len(graph.edges) + sum(1 for n in graph.nodes if n.end and not n.group)
    assert '  n0 -.->|"Boom, States.Timeout"| n4' in lines
    assert '  n5 -->|"$.n #62; 3"| n6' in lines
    assert '  n5 -->|"Default"| n8' in lines
    assert "classDef" not in text


def test_mermaid_shapes_by_type() -> None:
    text = to_mermaid(build_graph(fulfil_machine()))
    assert '  n0[/"Fulfil"/]' in text  # Parallel
    assert '    n1["Charge"]' in text  # Task
    assert '    n2[["PackAll"]]' in text  # Map
    assert '  n5{"Route"}' in text  # Choice
    assert '  n6>"Big"]' in text  # Fail
    assert '  n8(["Done"])' in text  # Succeed


def test_mermaid_statuses_are_classes() -> None:
    graph = build_graph(fulfil_machine())
    statuses: Any = {"Fulfil": "caught", "Charge": "timed-out", "Pack": "failed"}
    text = to_mermaid(graph, statuses)
    assert text.count("classDef ") == 7
    assert "  class n0 status_caught" in text
    assert "  class n1 status_timed_out" in text
    assert "  class n3 status_failed" in text
    classed = re.findall(r"^  class (\S+) ", text, re.M)
    ids = [i for group in classed for i in group.split(",")]
    assert sorted(ids) == sorted(f"n{i}" for i in range(len(graph.nodes)))


def test_mermaid_escapes_a_hostile_name() -> None:
    text = to_mermaid(build_graph(hostile_machine()))
    nodes = _mermaid_nodes(text)
    assert len(nodes) == 3
    for _, label in nodes:
        assert MERMAID_LABEL.fullmatch(label), label
    decoded = html.unescape(nodes[0][1].replace("#", "&#"))
    assert decoded == HOSTILE.replace("\n", " ")
    labels = re.findall(r'\|"([^"]*)"\|', text)
    assert len(labels) == 3 and all(MERMAID_LABEL.fullmatch(label) for label in labels)
    assert "<" not in text and "\n<" not in text and "script>" not in text


def _dot_tokens(text: str) -> list[str]:
    """A tolerant DOT tokenizer: quoted strings, ids, arrows and punctuation."""
    pattern = r'"(?:\\.|[^"\\])*"|->|[A-Za-z0-9_.#]+|[{}\[\];=,]|\S'
    return re.findall(pattern, text)


def _check_dot(text: str) -> tuple[set[str], list[tuple[str, str]], int]:
    """Node ids, edges and clusters of DOT ``text``, checking it is balanced and closed."""
    tokens = _dot_tokens(text)
    assert tokens[:3] == ["digraph", "stepflow", "{"] and tokens[-1] == "}"
    depth = 0
    for token in tokens:
        depth += {"{": 1, "}": -1}.get(token, 0)
        assert depth >= 0
    assert depth == 0
    assert all(t.startswith('"') and t.endswith('"') for t in tokens if '"' in t)
    nodes = set(re.findall(r"^\s+(n\d+) \[label=", text, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+)", text, re.M)
    clusters = len(re.findall(r"subgraph cluster_g\d+ \{", text))
    return nodes, edges, clusters


def test_dot_structure_and_statuses() -> None:
    graph = build_graph(fulfil_machine())
    text = to_dot(graph, {"Fulfil": "caught"})
    nodes, edges, clusters = _check_dot(text)
    assert len(nodes) == len(graph.nodes) and clusters == len(graph.groups)
    assert {s for s, _ in edges} | {t for _, t in edges} <= nodes | {"sf_start", "sf_end"}
    assert 'class="status-caught"' in text and text.count('class="status-not-run"') == 8
    assert 'n0 -> n4 [label="Boom, States.Timeout", style=dashed' in text


def test_dot_escapes_a_hostile_name() -> None:
    text = to_dot(build_graph(hostile_machine()))
    nodes, _, clusters = _check_dot(text)
    assert len(nodes) == 3 and clusters == 1
    assert '[label="Say \\"hi\\"] [x] --> end <script>' in text
    assert "\\\\N" in text  # a backslash is not a Graphviz escape


@NEEDS_DOT
def test_graphviz_reads_the_dot_of_a_hostile_name() -> None:
    done = subprocess.run(
        ["dot", "-Tcanon"], input=to_dot(build_graph(hostile_machine())).encode(), check=False,
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().count("label=") >= 6


@NEEDS_DOT
def test_svg_escapes_a_hostile_name() -> None:
    graph = build_graph(hostile_machine())
    svg = to_svg(graph, {HOSTILE: "failed"})
    root = ET.fromstring(svg.encode())
    ns = "{http://www.w3.org/2000/svg}"
    assert not list(root.iter(f"{ns}script"))
    texts = [t.text or "" for t in root.iter(f"{ns}text")]
    assert texts.count(HOSTILE.replace("\n", " ")) == 1
    assert "in</text>" in texts
    nodes = [g for g in root.iter(f"{ns}g") if (g.get("class") or "").startswith("node")]
    assert len(nodes) == len(graph.nodes) + 2  # the start and end markers
    assert sum("status-failed" in (g.get("class") or "") for g in nodes) == 1


def test_svg_without_graphviz_says_how_to_get_it() -> None:
    with pytest.raises(GraphvizError) as raised:
        to_svg(build_graph(fulfil_machine()), dot="/nonexistent/dot")
    assert str(raised.value) == INSTALL_HINT and "apt-get install graphviz" in INSTALL_HINT


LONE = {
    "StartAt": "A\ud800",
    "States": {
        "A\ud800": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.x", "StringEquals": "\udfff", "Next": "B"}],
            "Default": "B",
        },
        "B": {"Type": "Succeed"},
    },
}


def test_a_lone_surrogate_in_a_name_or_label_is_written_as_a_replacement_character() -> None:
    graph = build_graph(LONE)
    for text in (to_dot(graph, {"A\ud800": "succeeded"}), to_mermaid(graph)):
        assert text.encode("utf-8").decode("utf-8") == text  # no UnicodeEncodeError
    assert '"A\ufffd"' in to_dot(graph)
    assert "A#65533;" in to_mermaid(graph)


@NEEDS_DOT
def test_svg_of_a_lone_surrogate_name() -> None:
    svg = to_svg(build_graph(LONE))
    assert "A\ufffd" in svg
