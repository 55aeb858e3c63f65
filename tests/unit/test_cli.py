"""The ``stepflow`` command line: run and validate, their output and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from stepflow.cli import Progress, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PASS_ONLY = {
    "StartAt": "Hello",
    "States": {
        "Hello": {"Type": "Pass", "Result": {"greeting": "hi"}, "ResultPath": "$.r", "End": True}
    },
}


def write(tmp_path: Path, content: Any, name: str = "machine.asl.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# --- validate ---------------------------------------------------------------------------


def test_validate_a_valid_definition_prints_ok(tmp_path: Path, capsys: Any) -> None:
    code = main(["validate", write(tmp_path, PASS_ONLY)])
    assert code == 0
    assert capsys.readouterr().out.strip() == "OK"


def test_validate_lists_each_problem_and_exits_1(tmp_path: Path, capsys: Any) -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    code = main(["validate", write(tmp_path, broken)])
    out = capsys.readouterr().out
    assert code == 1
    assert "OK" not in out
    lines = out.strip().splitlines()
    assert lines and all(": " in line for line in lines)
    assert "Nowhere" in out


def test_validate_a_file_that_is_not_json_exits_2(tmp_path: Path, capsys: Any) -> None:
    code = main(["validate", write(tmp_path, "{not json")])
    captured = capsys.readouterr()
    assert code == 2
    assert "is not valid JSON" in captured.err
    assert "Traceback" not in captured.err


def test_validate_a_missing_file_exits_2(tmp_path: Path, capsys: Any) -> None:
    code = main(["validate", str(tmp_path / "absent.json")])
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_plain_stepflow_prints_help(capsys: Any) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: stepflow")
    for command in ("run", "validate", "local", "worker", "cells"):
        assert f"  {command} " in out


def test_version_names_the_installed_package(capsys: Any) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stepflow, version {version('stepflow')}\n"


def test_an_unknown_command_or_option_is_a_usage_error(capsys: Any) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err
    assert main(["run", "x.json", "--nope"]) == 2
    assert "No such option '--nope'" in capsys.readouterr().err


# --- run --------------------------------------------------------------------------------


def test_run_json_prints_only_the_result(tmp_path: Path, capsys: Any) -> None:
    code = main(["run", write(tmp_path, PASS_ONLY), "--input", '{"n": 1}', "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "SUCCEEDED"
    assert result["result"] == {"n": 1, "r": {"greeting": "hi"}}
    assert result["history"][0]["type"] == "ExecutionStarted"


def test_run_shows_progress_then_status_and_output(tmp_path: Path, capsys: Any) -> None:
    code = main(["run", write(tmp_path, PASS_ONLY)])
    out = capsys.readouterr().out
    assert code == 0
    assert "▶ Hello (Pass)" in out
    assert "SUCCEEDED" in out
    assert '"greeting": "hi"' in out


def test_run_a_failing_execution_exits_1_with_error_and_cause(tmp_path: Path, capsys: Any) -> None:
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Oops", "Cause": "why"}}}
    code = main(["run", write(tmp_path, failing)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out
    assert "Oops" in out
    assert "why" in out


def test_run_a_callback_nobody_answers_exits_1_as_running(tmp_path: Path, capsys: Any) -> None:
    resource = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    params = {"QueueUrl": "q", "MessageBody": {"t.$": "$$.Task.Token"}}
    task = {"Type": "Task", "Resource": resource, "Parameters": params, "End": True}
    code = main(["run", write(tmp_path, {"StartAt": "Ask", "States": {"Ask": task}})])
    out = capsys.readouterr().out
    assert code == 1
    assert "RUNNING" in out
    assert "waiting for a callback" in out


def test_run_input_from_a_file(tmp_path: Path, capsys: Any) -> None:
    payload = write(tmp_path, {"from": "file"}, "input.json")
    code = main(["run", write(tmp_path, PASS_ONLY), "--input", f"@{payload}", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["result"]["from"] == "file"


@pytest.mark.parametrize("bad", ["{oops", "", "@/no/such/input.json"])
def test_run_bad_input_exits_2_without_a_traceback(tmp_path: Path, capsys: Any, bad: str) -> None:
    code = main(["run", write(tmp_path, PASS_ONLY), "--input", bad])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "stepflow: error:" in captured.err
    assert "Traceback" not in captured.err


def test_run_an_invalid_definition_exits_2(tmp_path: Path, capsys: Any) -> None:
    broken = {"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": True}}}
    code = main(["run", write(tmp_path, broken)])
    captured = capsys.readouterr()
    assert code == 2
    assert "not a valid state machine" in captured.err


def test_run_with_handlers_from_a_python_file(tmp_path: Path, capsys: Any) -> None:
    module = tmp_path / "my_handlers.py"
    module.write_text("HANDLERS = {'double': lambda event: {'v': event['v'] * 2}}\n")
    task = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double",
                "End": True,
            }
        },
    }
    argv = ["run", write(tmp_path, task), "--input", '{"v": 21}', "--json"]
    code = main([*argv, "--handlers", str(module)])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"v": 42}


def test_run_with_a_handlers_module_lacking_handlers_exits_2(tmp_path: Path, capsys: Any) -> None:
    module = tmp_path / "empty_handlers.py"
    module.write_text("X = 1\n")
    code = main(["run", write(tmp_path, PASS_ONLY), "--handlers", str(module)])
    assert code == 2
    assert "HANDLERS" in capsys.readouterr().err


# --- the examples -----------------------------------------------------------------------


def test_the_order_example_succeeds_and_shows_retry_map_and_catch(capsys: Any) -> None:
    code = main(
        [
            "run",
            str(EXAMPLES / "order.asl.json"),
            "--input",
            f"@{EXAMPLES / 'order.input.json'}",
            "--handlers",
            str(EXAMPLES / "order_handlers.py"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "↻ retry" in out
    assert "▶ PackItem (Task)  [iteration 2 of PackItems]" in out
    assert "branch 2/2 of Fulfil" in out
    assert "↪ NotifyCustomer caught the error" in out
    assert "+1:00:" in out  # the hour-long Wait, on the virtual clock
    assert "SUCCEEDED" in out


def test_the_order_example_output(capsys: Any) -> None:
    code = main(
        [
            "run",
            str(EXAMPLES / "order.asl.json"),
            "--input",
            f"@{EXAMPLES / 'order.input.json'}",
            "--handlers",
            str(EXAMPLES / "order_handlers.py"),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    output = result["result"]
    assert output["orderId"] == "ord-1001"
    assert output["reference"] == "cust-42/ord-1001"
    assert output["chargedCents"] == 2 * 1250 + 800 + 5 * 120 + 499
    assert output["parcelCount"] == 3
    assert output["notification"]["Error"] == "EmailBounced"


def test_the_hello_example_needs_no_handlers(capsys: Any) -> None:
    code = main(["run", str(EXAMPLES / "hello.asl.json"), "--input", '{"name": "Ada"}', "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["result"]["greeting"] == "Hello, Ada!"


# --- the progress display (independent of the engine) -------------------------------------


def event(id_: int, prev: int, type_: str, at: float = 0.0, **details: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": id_, "previousEventId": prev, "timestamp": at, "type": type_}
    if details:
        key = type_[0].lower() + type_[1:] + "EventDetails"
        record[key] = details
    return record


def test_progress_lines_for_tasks_retries_maps_and_waits() -> None:
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": "r", "Next": "Items"},
            "Items": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Each", "States": {"Each": {"Type": "Pass"}}},
                "Next": "Hold",
            },
            "Hold": {"Type": "Wait", "Seconds": 3600, "End": True},
        },
    }
    fn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    out = io.StringIO()
    progress = Progress(definition, out)
    for record in [
        event(1, 0, "ExecutionStarted", 100.0, input="{}"),
        event(2, 1, "TaskStateEntered", 100.0, name="Call", input="{}"),
        event(3, 2, "LambdaFunctionScheduled", 100.0, resource=fn, input="{}"),
        event(4, 3, "LambdaFunctionStarted", 100.0),
        event(5, 4, "LambdaFunctionFailed", 100.0, error="Flaky", cause="try again"),
        event(6, 5, "LambdaFunctionScheduled", 102.0, resource=fn, input="{}"),
        event(7, 6, "LambdaFunctionSucceeded", 102.0, output="{}"),
        event(8, 7, "TaskStateExited", 102.0, name="Call", output="{}"),
        event(9, 8, "MapStateEntered", 102.0, name="Items", input="[]"),
        event(10, 9, "MapStateStarted", 102.0, length=1),
        event(11, 10, "MapIterationStarted", 102.0, name="Items", index=0),
        event(12, 11, "PassStateEntered", 102.0, name="Each", input="1"),
        event(13, 12, "PassStateExited", 102.0, name="Each", output="1"),
        event(14, 13, "MapIterationSucceeded", 102.0, name="Items", index=0),
        event(15, 14, "MapStateSucceeded", 102.0),
        event(16, 15, "MapStateExited", 102.0, name="Items", output="[1]"),
        event(17, 16, "WaitStateEntered", 102.0, name="Hold", input="[1]"),
        event(18, 17, "WaitStateExited", 3702.0, name="Hold", output="[1]"),
    ]:
        progress(record)
    lines = out.getvalue().splitlines()
    assert lines == [
        "+0:00:00.000  ▶ Call (Task)",
        "+0:00:00.000    ⚙ call lambda:f",
        "+0:00:00.000    ✗ Flaky: try again",
        "+0:00:02.000    ↻ retry lambda:f",
        "+0:00:02.000  ▶ Items (Map)",
        "+0:00:02.000    ↳ 1 iteration(s)",
        "+0:00:02.000    ▶ Each (Pass)  [iteration 0 of Items]",
        "+0:00:02.000  ▶ Hold (Wait)",
        "+1:00:02.000    Hold done waiting",
    ]
    assert progress.entered == 4
    assert progress.elapsed == 3602.0


def test_progress_marks_parallel_branches_and_caught_errors() -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                    {"StartAt": "Right", "States": {"Right": {"Type": "Fail"}}},
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
                "Next": "After",
            },
            "After": {"Type": "Succeed"},
        },
    }
    out = io.StringIO()
    progress = Progress(definition, out)
    for record in [
        event(1, 0, "ExecutionStarted"),
        event(2, 1, "ParallelStateEntered", name="Both", input="{}"),
        event(3, 2, "ParallelStateStarted"),
        event(4, 3, "PassStateEntered", name="Left", input="{}"),
        event(5, 4, "PassStateExited", name="Left", output="{}"),
        event(6, 3, "FailStateEntered", name="Right", input="{}"),
        event(7, 6, "ParallelStateFailed"),
        event(8, 7, "ParallelStateExited", name="Both", output="{}"),
        event(9, 8, "SucceedStateEntered", name="After", input="{}"),
    ]:
        progress(record)
    text = [line.split("  ", 1)[1] for line in out.getvalue().splitlines()]
    assert text == [
        "▶ Both (Parallel)",
        "  ▶ Left (Pass)  [branch 1/2 of Both]",
        "  ▶ Right (Fail)  [branch 2/2 of Both]",
        "  ↪ Both caught the error",
        "▶ After (Succeed)",
    ]


@pytest.mark.parametrize(
    "flags",
    [
        ["--access-policy", "[1]"],
        ["--access-policy", "{oops"],
        ["--check-roles", "yes"],
        ["--check-roles", '{"*": "not a list"}'],
        ["--access-policy", "@/no/such/policy.json"],
    ],
)
def test_local_bad_access_settings_exit_2_before_anything_starts(
    capsys: Any, flags: list[str]
) -> None:
    code = main(["local", "--port", "0", *flags])
    captured = capsys.readouterr()
    assert code == 2
    assert "stepflow: error:" in captured.err
    assert "StepFlow local stack" not in captured.out  # nothing was started
    assert "Traceback" not in captured.err


def test_local_access_settings_inline_or_from_a_file(tmp_path: Path) -> None:
    from stepflow.cli.inputs import setting as _setting

    rules = [{"principals": ["*"], "actions": ["states:Describe*"], "stateMachines": ["*"]}]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(rules))
    assert json.loads(_setting(f"@{path}")) == rules
    assert json.loads(_setting(json.dumps(rules))) == rules
    assert _setting("iam") == "iam"
    assert _setting(None) == ""


def test_graph_is_a_stepflow_command(tmp_path: Path, capsys: Any) -> None:
    assert main(["graph", write(tmp_path, PASS_ONLY), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")


MOCKS = Path(__file__).resolve().parents[2] / "examples" / "mocks"


def test_run_answers_tasks_from_a_mock_config_test_case(capsys: Any) -> None:
    flow, config = str(MOCKS / "order_flow.asl.json"), str(MOCKS / "MockConfigFile.json")
    argv = ["run", flow, "--mock-config", config, "--json"]
    assert main([*argv, "--test-case", "RetryPath"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "SUCCEEDED"
    # The mock fails Charge three times, then answers: four calls of Charge, one of Notify.
    kinds = [e["type"] for e in result["history"]]
    assert kinds.count("TaskScheduled") == 5
    assert main([*argv, "--test-case", "OrderFlow#HappyPath"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SUCCEEDED"


def test_run_ignores_step_functions_locals_variable(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SFN_MOCK_CONFIG is stepflow local's (as Step Functions Local's); a plain run ignores it.
    monkeypatch.setenv("SFN_MOCK_CONFIG", str(MOCKS / "MockConfigFile.json"))
    assert main(["run", write(tmp_path, PASS_ONLY), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--test-case", "HappyPath"], "--test-case needs a --mock-config"),
        (["--mock-config", "@"], "--mock-config needs --test-case"),
        (["--mock-config", "@", "--test-case", "Nope"], "has no test case 'Nope'"),
        (["--mock-config", "@", "--test-case", "Other#HappyPath"], "Other"),
    ],
)
def test_run_refuses_bad_mock_flags_before_running(
    flags: list[str], message: str, capsys: Any
) -> None:
    config = str(MOCKS / "MockConfigFile.json")
    flags = [config if flag == "@" else flag for flag in flags]
    assert main(["run", str(MOCKS / "order_flow.asl.json"), *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "in_child"), [([], True), (["--moto-in-process"], False)])
def test_local_runs_moto_in_a_child_process_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, flags: list[str], in_child: bool
) -> None:
    import stepflow.local

    built: list[dict[str, Any]] = []

    class Recorded:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(kwargs)

        def start(self) -> None:
            raise OSError("not started: recorded")

    monkeypatch.setattr(stepflow.local, "LocalStack", Recorded)
    assert main(["local", "--port", "0", *flags]) == 2
    assert "not started: recorded" in capsys.readouterr().err
    assert [kwargs["moto_process"] for kwargs in built] == [in_child]
