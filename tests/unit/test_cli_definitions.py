"""``stepflow run``/``validate`` on definitions as people keep them, and ``validate --json``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from stepflow.cli import main

GREETING_YAML = """\
StartAt: Hello
States:
  Hello:
    Type: Pass
    Result:
      greeting: ${Greeting}
      to: ${Name}
    End: true
"""

WARNED = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Parameters": {"id": "$.id"}, "End": True}},
}
BROKEN = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}


def write(folder: Path, name: str, content: Any) -> str:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


class Terminal(io.StringIO):
    """Standard output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# --- run and validate read YAML, substitutions and templates -------------------------------------


def test_run_a_yaml_definition_with_subs(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "hello.asl.yaml", GREETING_YAML)
    code = main(["run", path, "--json", "--sub", "Greeting=hi", "--sub", "Name=Ada"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "SUCCEEDED"
    assert result["result"] == {"greeting": "hi", "to": "Ada"}


def test_a_missing_sub_is_left_as_written_with_a_note(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "hello.asl.yaml", GREETING_YAML)
    for command in ("run", "validate"):
        assert main([command, path, "--sub", "Greeting=hi"]) == 0
        err = capsys.readouterr().err
        assert err.startswith("stepflow: note: ") and "${Name}" in err
        assert "${Greeting}" not in err and err.count("\n") == 1
    assert main(["run", path, "--json", "--sub", "Greeting=hi"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"greeting": "hi", "to": "${Name}"}


PRICE = {
    "StartAt": "Quote",
    "States": {"Quote": {"Type": "Pass", "Result": {"text": "costs ${price}"}, "End": True}},
}


def test_a_literal_placeholder_runs_without_subs(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "price.asl.json", PRICE)
    assert main(["run", path, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["result"] == {"text": "costs ${price}"}
    assert captured.err == ""
    assert main(["validate", path]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "OK" and captured.err == ""


def test_run_and_validate_from_a_template(tmp_path: Path, capsys: Any) -> None:
    write(tmp_path, "hello.asl.yaml", GREETING_YAML)
    template = write(
        tmp_path,
        "template.yaml",
        """\
Parameters:
  Who: {Type: String, Default: Grace}
Resources:
  Hello:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: hello.asl.yaml
      DefinitionSubstitutions:
        Greeting: hello
        Name: !Ref Who
""",
    )
    assert main(["validate", "--template", template]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    assert main(["run", "--template", template, "--json", "--sub", "Greeting=hey"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"greeting": "hey", "to": "Grace"}
    assert main(["run", "--template", template, "--state-machine", "Nope"]) == 2
    assert "no state machine 'Nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a definition FILE or a --template"),
        (["x.json", "--state-machine", "M"], "--state-machine needs a --template"),
        (["x.json", "--sub", "novalue"], "must be KEY=VALUE"),
    ],
)
def test_bad_definition_arguments_exit_2(args: list[str], message: str, capsys: Any) -> None:
    for command in ("run", "validate"):
        assert main([command, *args]) == 2
        assert message in capsys.readouterr().err


def test_hostile_yaml_exits_2_in_one_line(tmp_path: Path, capsys: Any) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [
        f"{c}: &{c} [{','.join([f'*{p}'] * 10)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    for name, text in [
        ("bomb.asl.yaml", "\n".join(lines)),
        ("tag.asl.yaml", "StartAt: !!python/object/apply:os.getcwd []\n"),
        ("list.asl.yml", "- a\n- b\n"),
    ]:
        assert main(["validate", write(tmp_path, name, text)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("stepflow: error: ") and err.count("\n") == 1
        assert "Traceback" not in err


# --- validate --json and colours ------------------------------------------------------------------


def test_validate_json_lists_every_diagnostic(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", "--json", write(tmp_path, "w.json", WARNED)]) == 0
    warned = json.loads(capsys.readouterr().out)
    assert warned == [
        {
            "severity": "WARNING",
            "code": "NO_DOLLAR",
            "message": warned[0]["message"],
            "location": "/States/A/Parameters/id",
        }
    ]
    assert main(["validate", "--json", write(tmp_path, "b.json", BROKEN)]) == 1
    broken = json.loads(capsys.readouterr().out)
    assert [d["severity"] for d in broken] == ["ERROR"] and "Nowhere" in broken[0]["message"]
    assert (
        main(
            [
                "validate",
                "--json",
                write(tmp_path, "ok.json", {**WARNED, "States": {"A": {"Type": "Succeed"}}}),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []


def test_validate_prints_warnings_with_their_code(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", write(tmp_path, "w.json", WARNED)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("warning: /States/A/Parameters/id: ")
    assert out[0].endswith("(NO_DOLLAR)") and out[1] == "OK"
    assert "\x1b[" not in "".join(out)  # not a terminal: no colours


def test_colours_on_a_terminal_unless_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned, broken = write(tmp_path, "w.json", WARNED), write(tmp_path, "b.json", BROKEN)
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(["validate", warned]) == 0
    assert main(["validate", broken]) == 1
    coloured = terminal.getvalue()
    assert "\x1b[33m" in coloured  # the warning, yellow
    assert "\x1b[32m" in coloured  # OK, green
    assert "\x1b[31m" in coloured  # the error, red
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    monkeypatch.setattr("sys.stdout", plain)
    assert main(["validate", warned]) == 0
    assert "\x1b[" not in plain.getvalue() and plain.getvalue().endswith("OK\n")
    monkeypatch.delenv("NO_COLOR")
    as_json = Terminal()
    monkeypatch.setattr("sys.stdout", as_json)
    assert main(["validate", "--json", warned]) == 0
    assert json.loads(as_json.getvalue())[0]["code"] == "NO_DOLLAR"  # JSON is never coloured


# --- local --demo reads YAML too ------------------------------------------------------------


class FakeStepFunctions:
    """Counts create_state_machine calls and keeps what they sent."""

    def __init__(self) -> None:
        self.created: dict[str, str] = {}

    def create_state_machine(self, name: str, definition: str, **_: str) -> dict[str, str]:
        assert name not in self.created
        self.created[name] = definition
        return {"stateMachineArn": f"arn:aws:states:us-east-1:000000000000:stateMachine:{name}"}


def test_the_demo_registers_yaml_definitions_once_each(tmp_path: Path) -> None:
    from stepflow.local.demo import register

    write(
        tmp_path,
        "hello.asl.yaml",
        GREETING_YAML.replace("${Greeting}", "hi").replace("${Name}", "you"),
    )
    write(tmp_path, "plain.asl.json", '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}')
    write(tmp_path, "ignored.json", "{}")
    sfn = FakeStepFunctions()
    arns = register(sfn, tmp_path)
    assert sorted(arns) == ["hello", "plain"] and len(sfn.created) == 2
    assert json.loads(sfn.created["hello"])["States"]["Hello"]["Result"] == {
        "greeting": "hi",
        "to": "you",
    }
    assert sfn.created["plain"] == '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}'


def test_the_demo_registers_a_literal_placeholder_as_written(tmp_path: Path) -> None:
    from stepflow.local.demo import register

    write(tmp_path, "price.asl.yaml", json.dumps(PRICE))
    sfn = FakeStepFunctions()
    assert list(register(sfn, tmp_path)) == ["price"] and len(sfn.created) == 1
    assert json.loads(sfn.created["price"]) == PRICE


def test_local_demo_refuses_a_bad_yaml_before_starting(tmp_path: Path, capsys: Any) -> None:
    bad = write(tmp_path, "bad.asl.yaml", "StartAt: [unclosed\n")
    assert main(["local", "--port", "0", "--demo", bad]) == 2
    captured = capsys.readouterr()
    assert "invalid YAML" in captured.err and "StepFlow local stack" not in captured.out
