"""``stepflow local --mock-config``: Step Functions Local's mocks, through boto3.

The example MockConfigFile (examples/mocks, the shape of AWS's documented one) runs
as Step Functions Local runs it: StartExecution on ``<state machine ARN>#<TestCase>``.
Every test counts the handler calls the mocks must replace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from stepflow.cli import main
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

pytest.importorskip("moto")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mocks"
CONFIG = json.loads((EXAMPLES / "MockConfigFile.json").read_text())
DEFINITION = json.loads((EXAMPLES / "order_flow.asl.json").read_text())
ROLE = "arn:aws:iam::123456789012:role/OrderFlow"
SQS = "arn:aws:states:::sqs:sendMessage"
ORDER = {"orderId": 7}
CHARGE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:charge-order"


class Counted:
    def __init__(self, answer: Any) -> None:
        self.calls: list[Any] = []
        self.answer = answer

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        return self.answer


CHARGE = Counted({"charged": 1})
NOTIFY = Counted({"MessageId": "from-handler"})


def quick(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with 1-second retries (the example's back-off takes 14 real seconds)."""
    copy = json.loads(json.dumps(definition))
    copy["States"]["Charge"]["Retry"][0].update(IntervalSeconds=1, BackoffRate=1.0)
    return copy


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    config = json.loads(json.dumps(CONFIG))
    for other in ("QuickOrderFlow", "ExpressFlow", "Renamed"):
        config["StateMachines"][other] = config["StateMachines"]["OrderFlow"]
    config["StateMachines"]["Fan"] = {"TestCases": {"Numbered": {"Work": "Numbered"}}}
    config["MockedResponses"]["Numbered"] = {
        "0": {"Return": "first"},
        "1-44": {"Return": "next"},
    }
    with LocalStack(
        port=0, handlers={"charge-order": CHARGE, SQS: NOTIFY}, mock_config=config
    ) as s:
        yield s


@pytest.fixture(scope="module")
def sfn(stack: LocalStack) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=stack.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(inject_host_prefix=False),
    )


@pytest.fixture(scope="module")
def machine(sfn: Any) -> str:
    created = sfn.create_state_machine(
        name="OrderFlow", definition=json.dumps(DEFINITION), roleArn=ROLE
    )
    return str(created["stateMachineArn"])


def run(sfn: Any, arn: str, name: str) -> dict[str, Any]:
    started = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(ORDER))
    assert started["executionArn"].endswith(f":execution:{arn.split(':')[6].split('#')[0]}:{name}")
    return wait_for(sfn, started["executionArn"])


def test_happy_path_is_answered_from_the_file(sfn: Any, machine: str) -> None:
    before = len(CHARGE.calls), len(NOTIFY.calls)
    done = run(sfn, machine + "#HappyPath", "happy")
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {
        "orderId": 7,
        "payment": {"charged": 42},
        "notification": {"messageId": "11111111-2222-3333-4444-555555555555"},
    }
    assert (len(CHARGE.calls), len(NOTIFY.calls)) == before


def test_hybrid_path_calls_the_unmocked_state_once_and_no_suffix_runs_unmocked(
    sfn: Any, machine: str
) -> None:
    charges, notes = len(CHARGE.calls), len(NOTIFY.calls)
    done = run(sfn, machine + "#HybridPath", "hybrid")
    assert json.loads(done["output"])["notification"] == {"messageId": "from-handler"}
    assert (len(CHARGE.calls), len(NOTIFY.calls)) == (charges, notes + 1)
    plain = run(sfn, machine, "plain")
    assert json.loads(plain["output"])["payment"] == {"charged": 1}
    assert (len(CHARGE.calls), len(NOTIFY.calls)) == (charges + 1, notes + 2)


def test_a_refused_start_leaves_no_test_case_behind(
    sfn: Any, machine: str, stack: LocalStack
) -> None:
    charges, notes = len(CHARGE.calls), len(NOTIFY.calls)
    with pytest.raises(ClientError) as raised:  # the API refuses the input: nothing starts
        sfn.start_execution(stateMachineArn=machine + "#HappyPath", name="twice", input="{")
    assert raised.value.response["Error"]["Code"] == "InvalidExecutionInput"
    plain = run(sfn, machine, "twice")
    assert json.loads(plain["output"])["payment"] == {"charged": 1}
    assert (len(CHARGE.calls), len(NOTIFY.calls)) == (charges + 1, notes + 1)
    with pytest.raises(ClientError) as raised:  # it exists: the case must not apply to it
        sfn.start_execution(stateMachineArn=machine + "#HappyPath", name="twice", input="{}")
    assert raised.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    mocked = run(sfn, machine + "#HappyPath", "then-mocked")
    assert json.loads(mocked["output"])["payment"] == {"charged": 42}
    run(sfn, machine + "#HybridPath", "last")  # a start drops the cases of ended executions
    assert stack.test_cases is not None
    assert [arn.rsplit(":", 1)[1] for arn in stack.test_cases.running()] == ["last"]
    counters = [n for m in stack.test_cases._mocked for n in m.calls]
    assert {key for key, _ in counters} <= set(stack.test_cases.running())


def test_retry_path_answers_calls_0_to_3_in_order(sfn: Any) -> None:
    arn = sfn.create_state_machine(
        name="QuickOrderFlow", definition=json.dumps(quick(DEFINITION)), roleArn=ROLE
    )["stateMachineArn"]
    done = run(sfn, arn + "#RetryPath", "retry")
    assert done["status"] == "SUCCEEDED", done
    events = sfn.get_execution_history(executionArn=done["executionArn"])["events"]
    failed = [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"]
    assert failed == [
        "Lambda.ServiceException",
        "Lambda.TooManyRequestsException",
        "Lambda.TooManyRequestsException",
    ]


def test_a_sync_execution_runs_its_test_case(sfn: Any) -> None:
    express = sfn.create_state_machine(
        name="ExpressFlow", definition=json.dumps(DEFINITION), roleArn=ROLE, type="EXPRESS"
    )["stateMachineArn"]
    charges, notes = len(CHARGE.calls), len(NOTIFY.calls)
    done = sfn.start_sync_execution(stateMachineArn=express + "#HappyPath", input=json.dumps(ORDER))
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"])["payment"] == {"charged": 42}
    assert (len(CHARGE.calls), len(NOTIFY.calls)) == (charges, notes)


def test_a_map_run_as_child_executions_counts_across_its_children(sfn: Any) -> None:
    fan = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {
                        "Work": {
                            "Type": "Task",
                            "End": True,
                            "Resource": CHARGE_ARN,
                        }
                    },
                },
            }
        },
    }
    arn = sfn.create_state_machine(name="Fan", definition=json.dumps(fan), roleArn=ROLE)[
        "stateMachineArn"
    ]
    charges = len(CHARGE.calls)
    started = sfn.start_execution(stateMachineArn=arn + "#Numbered", input=json.dumps([0] * 45))
    done = wait_for(sfn, started["executionArn"], timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert sorted(json.loads(done["output"])) == ["first"] + ["next"] * 44
    assert len(CHARGE.calls) == charges


def test_an_unknown_test_case_is_refused_and_nothing_starts(sfn: Any, machine: str) -> None:
    with pytest.raises(ClientError) as raised:
        sfn.start_execution(stateMachineArn=machine + "#SadPath", name="sad", input="{}")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException" and "SadPath" in error["Message"]
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert "sad" not in {e["name"] for e in listed}


def test_a_test_case_naming_a_state_the_machine_lacks_is_refused(sfn: Any) -> None:
    other = json.loads(json.dumps(DEFINITION))
    other["States"]["Pay"] = other["States"].pop("Charge")
    other["StartAt"] = "Pay"
    arn = sfn.create_state_machine(name="Renamed", definition=json.dumps(other), roleArn=ROLE)[
        "stateMachineArn"
    ]
    with pytest.raises(ClientError) as raised:
        sfn.start_execution(stateMachineArn=arn + "#HappyPath", name="renamed", input="{}")
    message = raised.value.response["Error"]["Message"]
    assert "StateMachines.Renamed.TestCases.HappyPath.Charge: no Task state" in message
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_the_cli_refuses_a_bad_mock_config_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "MockConfigFile.json"
    bad.write_text(json.dumps({"MockedResponses": {"R": {"3-1": {"Return": 1}}}}))
    assert main(["local", "--port", "0", "--mock-config", str(bad)]) == 2
    assert 'MockedResponses.R."3-1": the range ends before it starts' in capsys.readouterr().err


def test_the_cli_reads_sfn_mock_config_as_step_functions_local_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "EnvSpecifiedMockConfig.json"
    bad.write_text(json.dumps({"MockedResponses": {"R": {"0": {"Return": 1, "Throw": {}}}}}))
    monkeypatch.setenv("SFN_MOCK_CONFIG", str(bad))
    assert main(["local", "--port", "0"]) == 2
    assert "give exactly one of Return and Throw" in capsys.readouterr().err
