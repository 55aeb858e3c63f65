"""``stepflow graph`` through click's runner, and the history pager it uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from stepflow.graph import history
from stepflow.graph.command import fetch_history, graph_command

ROOT = Path(__file__).resolve().parents[3]
ORDER = str(ROOT / "examples" / "order.asl.json")


def test_mermaid_to_standard_output_by_default() -> None:
    result = CliRunner().invoke(graph_command, [ORDER])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD\n")
    assert result.output.count("subgraph g") == 3


def test_dot_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "order.dot"
    result = CliRunner().invoke(graph_command, [ORDER, "--format", "dot", "-o", str(out)])
    assert (result.exit_code, result.output) == (0, "")
    assert out.read_text().startswith("digraph stepflow {")


def test_standard_input() -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    result = CliRunner().invoke(
        graph_command, ["-", "--format", "dot"], input=json.dumps(definition)
    )
    assert result.exit_code == 0 and 'label="A"' in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is absent")
def test_svg() -> None:
    result = CliRunner().invoke(graph_command, [ORDER, "--format", "svg"])
    assert result.exit_code == 0
    assert "<svg" in result.output and result.output.count('class="node"') == 19


def test_svg_without_graphviz_fails_with_the_way_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stepflow.graph.svg.shutil.which", lambda _: None)
    result = CliRunner().invoke(graph_command, [ORDER, "--format", "svg"])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[" * 100_000, "cannot be read as JSON"),
        ('{"StartAt": "A"}', "/States: missing"),
        ('"a string"', "a definition is a JSON object"),
    ],
)
def test_bad_definitions_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = CliRunner().invoke(graph_command, [str(path)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_yaml_definition_is_drawn_from_a_file_and_from_standard_input(tmp_path: Path) -> None:
    text = "StartAt: A\nStates:\n  A: {Type: Pass, Next: B}\n  B: {Type: Succeed}\n"
    path = tmp_path / "m.asl.yaml"
    path.write_text(text)
    for args, given in (([str(path)], None), (["-"], text)):
        result = CliRunner().invoke(graph_command, args, input=given)
        assert result.exit_code == 0, result.output
        assert 'n0("A")' in result.output and "n0 --> n1" in result.output
    stdin = CliRunner().invoke(graph_command, ["-"], input="{not: [json")
    assert stdin.exit_code == 2 and "nor YAML" in stdin.output


def test_a_missing_file_and_a_bad_format_are_usage_errors(tmp_path: Path) -> None:
    missing = CliRunner().invoke(graph_command, [str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad = CliRunner().invoke(graph_command, [ORDER, "--format", "png"])
    assert bad.exit_code == 2


class Pages:
    """A GetExecutionHistory double answering in pages of ``size`` events, counting calls."""

    def __init__(self, total: int, size: int, repeat_token: bool = False) -> None:
        self.events = [{"id": i + 1, "type": "PassStateEntered"} for i in range(total)]
        self.size, self.repeat_token = size, repeat_token
        self.requests: list[dict[str, Any]] = []

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        start = 0 if self.repeat_token else int(request.get("nextToken", "0"))
        end = start + min(self.size, request["maxResults"])
        page: dict[str, Any] = {"events": self.events[start:end]}
        if end < len(self.events):
            page["nextToken"] = str(end)
        return page


def test_the_whole_history_is_read_page_by_page() -> None:
    pages = Pages(total=2501, size=1000)
    events = fetch_history(pages, "arn:x")
    assert [e["id"] for e in events] == list(range(1, 2502))
    assert [r.get("nextToken") for r in pages.requests] == [None, "1000", "2000"]
    assert all(r["includeExecutionData"] is False for r in pages.requests)


def test_a_server_repeating_its_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = Pages(total=50, size=10, repeat_token=True)
    with pytest.raises(click.ClickException, match="same nextToken"):
        fetch_history(pages, "arn:x")
    assert len(pages.requests) == 2
    monkeypatch.setattr(history, "MAX_HISTORY_PAGES", 3)
    with pytest.raises(click.ClickException, match="more than 3 pages"):
        fetch_history(Pages(total=50, size=10), "arn:x")


def test_an_unreachable_endpoint_fails_with_exit_1() -> None:
    result = CliRunner().invoke(
        graph_command,
        [ORDER, "--execution", "arn:aws:states:us-east-1:0:execution:m:e", "--endpoint-url",
         "http://127.0.0.1:9"],
        env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_MAX_ATTEMPTS": "1"},
    )  # fmt: skip
    assert result.exit_code == 1 and "cannot read execution" in result.output, result.output


def test_the_docs_example_is_what_the_command_prints() -> None:
    docs = (ROOT / "docs" / "graph.md").read_text()
    block = docs.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert CliRunner().invoke(graph_command, [ORDER]).output == block
