"""Step Functions Local's MockConfigFile in ``execute`` and ``WorkflowEnvironment``.

The example (examples/mocks) has the shape of AWS's documented one: a Lambda state
retried on errors and an SQS state, test cases HappyPath, RetryPath (Throw at "0",
"1-2", Return at "3") and HybridPath (one state mocked, the other runs as usual).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stepflow.testing import NO_ANSWER, MockConfig, MockConfigError, WorkflowEnvironment, execute

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mocks"
CONFIG = EXAMPLES / "MockConfigFile.json"
DEFINITION = json.loads((EXAMPLES / "order_flow.asl.json").read_text())
SQS = "arn:aws:states:::sqs:sendMessage"
ORDER = {"orderId": 7}


class Counted:
    """A handler that counts its calls."""

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[Any] = []
        self.answer = answer

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        return self.answer


def handlers() -> tuple[dict[str, Any], Counted, Counted]:
    charge, notify = Counted({"charged": 1}), Counted({"MessageId": "from-handler"})
    return {"charge-order": charge, SQS: notify}, charge, notify


def test_happy_path_answers_both_states_from_the_file_and_never_calls_a_handler() -> None:
    bound, charge, notify = handlers()
    result = execute(
        DEFINITION, ORDER, mock_config=str(CONFIG), test_case="HappyPath", handlers=bound
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {
        "orderId": 7,
        "payment": {"charged": 42},
        "notification": {"messageId": "11111111-2222-3333-4444-555555555555"},
    }
    assert charge.calls == [] and notify.calls == []
    assert result.state("Notify").input == {"orderId": 7, "payment": {"charged": 42}}


def test_retry_path_answers_each_call_by_its_number() -> None:
    bound, charge, _ = handlers()
    result = execute(DEFINITION, ORDER, mock_config=CONFIG, test_case="RetryPath", handlers=bound)
    assert result.status == "SUCCEEDED", result.cause
    failures = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in result.history
        if e["type"] == "LambdaFunctionFailed"
    ] or [e["taskFailedEventDetails"]["error"] for e in result.history if e["type"] == "TaskFailed"]
    assert failures == [
        "Lambda.ServiceException",
        "Lambda.TooManyRequestsException",
        "Lambda.TooManyRequestsException",
    ]
    assert charge.calls == []
    assert result.state("Charge").output["payment"] == {"charged": 42}


def test_hybrid_path_runs_the_unmocked_state_on_its_handler_once() -> None:
    bound, charge, notify = handlers()
    result = execute(DEFINITION, ORDER, mock_config=CONFIG, test_case="HybridPath", handlers=bound)
    assert result.status == "SUCCEEDED", result.cause
    assert charge.calls == []
    assert notify.calls == [
        {
            "QueueUrl": notify.calls[0]["QueueUrl"],
            "MessageBody": {"orderId": 7, "payment": {"charged": 42}},
        }
    ]
    assert result.result["notification"] == {"messageId": "from-handler"}


def test_a_thrown_error_is_caught_by_name() -> None:
    result = execute(DEFINITION, ORDER, mock_config=CONFIG, test_case="DeclinedPath")
    assert (result.status, result.error) == ("FAILED", "OrderDeclined")
    assert result.state("Declined").input["error"] == {
        "Error": "PaymentDeclined",
        "Cause": "card expired",
    }


def test_a_call_past_the_last_number_fails_the_execution() -> None:
    config = {
        "StateMachines": {"Loop": {"TestCases": {"Short": {"Work": "Twice"}}}},
        "MockedResponses": {"Twice": {"0-1": {"Return": {"n": 1}}}},
    }
    looping = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "w"},
                "ResultPath": None,
                "Next": "Again",
            },
            "Again": {
                "Type": "Choice",
                "Default": "Work",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result = execute(looping, {}, mock_config=config, test_case="Short")
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "no entry for call 2" in str(result.cause)
    assert len(result.states("Work")) == 3


def map_of(inner: dict[str, Any], concurrency: int = 1) -> dict[str, Any]:
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "MaxConcurrency": concurrency,
                "ItemProcessor": {"StartAt": "Work", "States": {"Work": inner}},
                "End": True,
            },
        },
    }


WORK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke",
    "Parameters": {"FunctionName": "w", "Payload.$": "$"},
    "OutputPath": "$.Payload",
    "End": True,
}
COUNTING = {
    "StateMachines": {"Fan": {"TestCases": {"Numbers": {"Work": "Numbered"}}}},
    "MockedResponses": {
        "Numbered": {
            "0": {"Return": {"Payload": "first"}},
            "1-2": {"Return": {"Payload": "next"}},
            "3-99": {"Return": {"Payload": "rest"}},
        }
    },
}


def test_a_state_in_a_map_is_counted_across_iterations() -> None:
    result = execute(map_of(WORK), [1, 2, 3, 4], mock_config=COUNTING, test_case="Numbers")
    assert result.result == ["first", "next", "next", "rest"]


def test_a_map_run_as_child_executions_counts_across_the_children() -> None:
    worker = Counted()
    result = execute(
        map_of(WORK, 0),
        list(range(50)),
        mock_config=COUNTING,
        test_case="Numbers",
        handlers={"w": worker},
    )
    assert result.status == "SUCCEEDED", result.cause
    assert sorted(result.result) == sorted(["first"] + ["next"] * 2 + ["rest"] * 47)
    assert worker.calls == []


def test_a_state_in_a_parallel_branch_is_mocked() -> None:
    parallel = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "Work", "States": {"Work": WORK}},
                    {
                        "StartAt": "Other",
                        "States": {"Other": {"Type": "Pass", "Result": 2, "End": True}},
                    },
                ],
            }
        },
    }
    config = {
        "StateMachines": {"Fan": {"TestCases": {"Numbers": {"Work": "Numbered"}}}},
        "MockedResponses": COUNTING["MockedResponses"],
    }
    result = execute(parallel, {}, mock_config=config, test_case="Numbers")
    assert result.result == ["first", 2]


def test_a_callback_and_a_sync_job_are_answered_by_their_mock_without_waiting() -> None:
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": SQS + ".waitForTaskToken",
                "HeartbeatSeconds": 60,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "Next": "Job",
            },
            "Job": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:child",
                    "Input": {},
                },
                "End": True,
            },
        },
    }
    config = {
        "StateMachines": {"Flow": {"TestCases": {"T": {"Ask": "Approved", "Job": "Done"}}}},
        "MockedResponses": {
            "Approved": {"0": {"Return": {"approved": True}}},
            "Done": {"0": {"Return": {"Status": "SUCCEEDED", "Output": {"ok": 1}}}},
        },
    }
    asked = Counted(NO_ANSWER)
    env = WorkflowEnvironment(mock_config=config, test_case="T", handlers={SQS: asked})
    arn = env.start(definition, {}, state_machine="Flow")
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.state("Ask").output == {"approved": True}
    assert result.result == {"Status": "SUCCEEDED", "Output": {"ok": 1}}
    assert asked.calls == [] and env.open_tasks() == []
    assert env.mocks is not None
    assert env.mocks.calls == {(arn, "Ask"): 1, (arn, "Job"): 1}


def test_counts_are_per_execution_in_an_environment() -> None:
    env = WorkflowEnvironment(mock_config=CONFIG, test_case="RetryPath")
    machine = env.register(DEFINITION, "OrderFlow")
    first, second = env.start(machine, ORDER), env.start(machine, ORDER)
    env.run()
    assert env.result(first).succeeded and env.result(second).succeeded
    assert env.mocks is not None
    assert env.mocks.calls[(first, "Charge")] == 4 == env.mocks.calls[(second, "Charge")]


def test_a_machine_the_config_does_not_name_runs_unmocked() -> None:
    notify = Counted({"MessageId": "h"})
    env = WorkflowEnvironment(
        mock_config=CONFIG,
        test_case="HappyPath",
        handlers={SQS: notify, "charge-order": Counted({"charged": 3})},
    )
    arn = env.start(DEFINITION, ORDER, state_machine="SomethingElse")
    env.run(arn)
    assert env.result(arn).result["payment"] == {"charged": 3}
    assert len(notify.calls) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "the mock config: must be a JSON object"),
        ({"StateMachine": {}}, "StateMachine: unknown field"),
        ({"MockedResponses": {"R": {"3-1": {"Return": 1}}}}, 'MockedResponses.R."3-1": the range'),
        (
            {"MockedResponses": {"R": {"01": {"Return": 1}}}},
            'MockedResponses.R."01": a call number',
        ),
        ({"MockedResponses": {"R": {"x": {"Return": 1}}}}, 'MockedResponses.R."x": a call number'),
        (
            {"MockedResponses": {"R": {"-1": {"Return": 1}}}},
            'MockedResponses.R."-1": a call number',
        ),
        (
            {"MockedResponses": {"R": {"0-2": {"Return": 1}, "2": {"Return": 2}}}},
            'MockedResponses.R."2": overlaps calls 0-2',
        ),
        (
            {"MockedResponses": {"R": {"0": {"Return": 1, "Throw": {"Error": "E", "Cause": "C"}}}}},
            'MockedResponses.R."0": give exactly one of Return and Throw',
        ),
        ({"MockedResponses": {"R": {"0": {}}}}, 'MockedResponses.R."0": give exactly one'),
        (
            {"MockedResponses": {"R": {"0": {"Throw": {"Error": "E"}}}}},
            'MockedResponses.R."0".Throw.Cause: must be a string',
        ),
        (
            {"MockedResponses": {"R": {"0": {"Throw": {"Error": 5, "Cause": "c"}}}}},
            'MockedResponses.R."0".Throw.Error: must be a string',
        ),
        (
            {"MockedResponses": {"R": {"0": {"Returns": 1}}}},
            'MockedResponses.R."0".Returns: unknown',
        ),
        ({"MockedResponses": {"R": {}}}, "MockedResponses.R: give at least one response"),
        (
            {"StateMachines": {"M": {"TestCases": {"T": {"S": "Nowhere"}}}}},
            "StateMachines.M.TestCases.T.S: no mocked response 'Nowhere'",
        ),
        (
            {"StateMachines": {"M": {"TestCases": {"T": {"S": 3}}}}},
            "StateMachines.M.TestCases.T.S: must name a mocked response",
        ),
        ({"StateMachines": {"M": {"Cases": {}}}}, "StateMachines.M.Cases: unknown field"),
    ],
)
def test_a_bad_config_names_the_bad_field(config: Any, message: str) -> None:
    with pytest.raises(MockConfigError) as raised:
        MockConfig.load(config)
    assert message in str(raised.value)


def test_a_test_case_naming_a_state_the_definition_lacks_is_refused() -> None:
    config = json.loads(CONFIG.read_text())
    config["StateMachines"]["OrderFlow"]["TestCases"]["HappyPath"]["Chrage"] = "ChargeAccepted"
    with pytest.raises(MockConfigError, match=r"TestCases\.HappyPath\.Chrage: no Task state"):
        execute(DEFINITION, ORDER, mock_config=config, test_case="HappyPath")


def test_an_unknown_test_case_or_machine_is_refused_by_name() -> None:
    with pytest.raises(MockConfigError, match=r"no test case 'SadPath'.*HappyPath"):
        execute(DEFINITION, ORDER, mock_config=CONFIG, test_case="SadPath")
    with pytest.raises(MockConfigError, match="no state machine 'Other'"):
        execute(DEFINITION, ORDER, mock_config=CONFIG, test_case="HappyPath", state_machine="Other")
    with pytest.raises(MockConfigError, match="needs test_case"):
        execute(DEFINITION, ORDER, mock_config=CONFIG)


def test_a_missing_or_malformed_file_is_a_mock_config_error(tmp_path: Path) -> None:
    with pytest.raises(MockConfigError, match="cannot read"):
        MockConfig.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(MockConfigError, match="is not JSON"):
        MockConfig.load(broken)


def test_hostile_configs_are_refused_by_path(tmp_path: Path) -> None:
    with pytest.raises(MockConfigError, match="the key 0 is not a string"):
        MockConfig.load({"MockedResponses": {"R": {0: {"Return": 1}}}})
    with pytest.raises(MockConfigError, match="a call number"):
        MockConfig.load({"MockedResponses": {"R": {"1" * 12: {"Return": 1}}}})
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(MockConfigError):
        MockConfig.load(deep)
    with pytest.raises(MockConfigError, match="test_case needs a mock_config"):
        WorkflowEnvironment(test_case="HappyPath")


def test_a_huge_range_costs_nothing_and_answers_its_last_call() -> None:
    config = MockConfig.load({"MockedResponses": {"R": {"0-999999999": {"Return": 1}}}})
    response = config.responses["R"]
    assert response.at(999_999_999) is not None and response.at(1_000_000_000) is None


ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:review"
REVIEWED = {
    "StartAt": "Review",
    "States": {"Review": {"Type": "Task", "Resource": ACTIVITY, "End": True}},
}
MOCKED_REVIEW = {
    "StateMachines": {"Reviews": {"TestCases": {"T": {"Review": "Done"}}}},
    "MockedResponses": {"Done": {"0": {"Return": "mocked"}}},
}


def test_a_mocked_activity_task_is_refused_naming_its_path() -> None:
    review = Counted("from-worker")
    with pytest.raises(MockConfigError, match=r"TestCases\.T\.Review: .*activity") as raised:
        execute(REVIEWED, {}, mock_config=MOCKED_REVIEW, test_case="T", handlers={ACTIVITY: review})
    assert "service integrations only" in str(raised.value)
    env = WorkflowEnvironment(mock_config=MOCKED_REVIEW, test_case="T", handlers={ACTIVITY: review})
    with pytest.raises(MockConfigError, match=r"TestCases\.T\.Review: .*activity"):
        env.register(REVIEWED, "Reviews")
    assert review.calls == []
    unmocked = execute(REVIEWED, {}, handlers={ACTIVITY: review})  # its handler answers it
    assert unmocked.result == "from-worker" and len(review.calls) == 1


def test_only_the_started_execution_is_mocked_not_the_children_it_starts() -> None:
    child = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": SQS, "End": True}}}
    parent = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": SQS, "ResultPath": "$.mine", "Next": "Child"},
            "Child": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Child",
                    "Input": {},
                },
                "ResultSelector": {"child.$": "$.Output"},
                "ResultPath": "$.started",
                "End": True,
            },
        },
    }
    case = {"TestCases": {"T": {"Work": "Mocked"}}}  # the child's machine has the case too
    config = {
        "StateMachines": {"Parent": case, "Child": case},
        "MockedResponses": {"Mocked": {"0": {"Return": "mocked"}}},
    }
    called = Counted("from-handler")
    env = WorkflowEnvironment(mock_config=config, test_case="T", handlers={SQS: called})
    env.register(child, "Child")
    arn = env.start(parent, {}, state_machine="Parent")
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"mine": "mocked", "started": {"child": "from-handler"}}
    assert len(called.calls) == 1
    assert env.mocks is not None and env.mocks.calls == {(arn, "Work"): 1}
