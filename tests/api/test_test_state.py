"""TestState's mock, inspectionLevel, variables, context and stateConfiguration (issue 17).

GIVEN the API service, WHEN TestState is called with a mocked result or
error, inspection levels, variables, a context object and state
configurations (and with the combinations AWS refuses), THEN the answers have
AWS's shape and status (SUCCEEDED, CAUGHT_ERROR, RETRIABLE, FAILED), a mocked
state runs no task (counted), and every refusal is AWS's error.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from stepflow.api import ApiError, StepFunctionsService
from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.registry import InMemoryRegistry

from tests.api.conftest import FN, ROLE, SCOPE, Api, invoke

CALLS: Counter[str] = Counter()
SENT: list[Any] = []  # the input (effective parameters) each task call received


HTTP_RESULT = {
    "Headers": {"content-type": ["application/json"]},
    "ResponseBody": {"id": 7},
    "StatusCode": "201",
    "StatusText": "Created",
}


def counting(body: dict[str, Any]) -> TaskOutcome:
    CALLS[body["resource"]] += 1
    SENT.append(body.get("input"))
    if body["resource"] == "arn:aws:states:::http:invoke":
        return TaskOutcome.succeeded(HTTP_RESULT)
    return invoke(body)


@pytest.fixture
def api() -> Api:
    CALLS.clear()
    log, registry, bus = InMemoryLog(), InMemoryRegistry(), InMemoryBus(1_700_000_000.0)
    service = StepFunctionsService(
        log=log, bus=bus, registry=registry, invoker=counting, scope=SCOPE, clock=lambda: bus.now
    )
    return Api(service, log, bus, registry)


TASK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke",
    "InputPath": "$.order",
    "Parameters": {"FunctionName": FN + "double", "Payload.$": "$", "Who.$": "$$.Execution.Name"},
    "ResultSelector": {"n.$": "$.Payload.n", "who.$": "$$.Execution.Name"},
    "ResultPath": "$.doubled",
    "OutputPath": "$.doubled",
    "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 2, "IntervalSeconds": 3}],
    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handle"}],
    "Next": "After",
}
INPUT = json.dumps({"order": {"n": 2}})


def test(api: Api, state: dict[str, Any] = TASK, **params: Any) -> dict[str, Any]:
    return api("TestState", definition=json.dumps(state), input=INPUT, **params)


def refused(api: Api, state: dict[str, Any] = TASK, **params: Any) -> tuple[str, str]:
    with pytest.raises(ApiError) as caught:
        test(api, state, **params)
    return caught.value.code, caught.value.message


def test_a_mocked_result_runs_the_data_flow_and_no_task(api: Api) -> None:
    mock = {"result": json.dumps({"Payload": {"n": 40}, "StatusCode": 200})}
    context = json.dumps({"Execution": {"Name": "from-context"}})
    done = test(api, mock=mock, context=context, inspectionLevel="DEBUG")
    assert sum(CALLS.values()) == 0
    assert done["status"] == "SUCCEEDED" and done["nextState"] == "After"
    assert json.loads(done["output"]) == {"n": 40, "who": "from-context"}
    data = {k: json.loads(v) for k, v in done["inspectionData"].items()}
    assert data == {
        "input": {"order": {"n": 2}},
        "afterInputPath": {"n": 2},
        "afterParameters": {
            "FunctionName": FN + "double",
            "Payload": {"n": 2},
            "Who": "from-context",
        },
        "result": {"Payload": {"n": 40}, "StatusCode": 200},
        "afterResultSelector": {"n": 40, "who": "from-context"},
        "afterResultPath": {"order": {"n": 2}, "doubled": {"n": 40, "who": "from-context"}},
    }
    assert "inspectionData" not in test(api, mock=mock)  # INFO: the outcome only


def test_a_mocked_error_is_retriable_then_caught_or_failed(api: Api) -> None:
    busy = {"errorOutput": {"error": "Busy", "cause": "try later"}}
    first = test(api, mock=busy, inspectionLevel="DEBUG")
    assert (first["status"], first["error"], first["cause"]) == ("RETRIABLE", "Busy", "try later")
    assert first["inspectionData"]["errorDetails"] == {
        "retryIndex": 0,
        "retryBackoffIntervalSeconds": 3,
    }
    second = test(
        api, mock=busy, stateConfiguration={"retrierRetryCount": 1}, inspectionLevel="DEBUG"
    )
    assert second["inspectionData"]["errorDetails"]["retryBackoffIntervalSeconds"] == 6
    caught = test(
        api, mock=busy, stateConfiguration={"retrierRetryCount": 2}, inspectionLevel="DEBUG"
    )
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "Handle")
    assert json.loads(caught["output"])["error"] == {"Error": "Busy", "Cause": "try later"}
    assert caught["inspectionData"]["errorDetails"] == {"catchIndex": 0}
    bare = {k: v for k, v in TASK.items() if k not in ("Retry", "Catch")}
    failed = test(api, bare, mock={"errorOutput": {"error": "Boom"}})
    assert failed == {"status": "FAILED", "error": "Boom"}
    assert sum(CALLS.values()) == 0


def test_map_and_parallel_mocks(api: Api) -> None:
    inner = {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}}
    mapped = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": inner,
        "ToleratedFailureCount": 1,
        "MaxConcurrency": 2,
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Many"}],
        "End": True,
    }
    items = json.dumps({"items": [1, 2, 3]})
    mock = {"result": "[1, 4, 9]"}
    done = api(
        "TestState", definition=json.dumps(mapped), input=items, mock=mock, inspectionLevel="DEBUG"
    )
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", [1, 4, 9])
    assert done["inspectionData"]["maxConcurrency"] == 2
    assert done["inspectionData"]["toleratedFailureCount"] == 1
    assert json.loads(done["inspectionData"]["afterItemsPath"]) == [1, 2, 3]
    for failures, status in ((1, "SUCCEEDED"), (2, "CAUGHT_ERROR")):
        config = {"mapIterationFailureCount": failures}
        run = api(
            "TestState",
            definition=json.dumps(mapped),
            input=items,
            mock=mock,
            stateConfiguration=config,
        )
        assert run["status"] == status
    assert run["error"] == "States.ExceedToleratedFailureThreshold"
    parallel = {"Type": "Parallel", "Branches": [inner, inner], "End": True}
    done = api("TestState", definition=json.dumps(parallel), mock={"result": "[1, 2]"})
    assert json.loads(done["output"]) == [1, 2]
    assert refused(api, parallel, mock={"result": "[1]"}) == (
        "ValidationException",
        "Mocked result must contain the same number of items as number of Parallel branches.",
    )
    assert refused(api, parallel, mock={"result": "{}"})[1] == "Mocked result must be an array."
    assert refused(api, mapped, mock={"result": "{}"})[1] == "Mocked result must be an array."
    writer = {
        **mapped,
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "b", "Prefix": "p"},
        },
    }
    assert refused(api, writer, mock={"result": "[]"})[1] == "Mocked result must be a JSON object."
    error = {"errorOutput": {"error": "E"}}
    assert refused(api, mapped, mock=error, stateConfiguration={"errorCausedByState": "Nope"})[
        0
    ] == ("ValidationException")
    caused = api(
        "TestState",
        definition=json.dumps(mapped),
        input=items,
        mock=error,
        stateConfiguration={"errorCausedByState": "I"},
    )
    assert (caused["status"], caused["error"]) == ("FAILED", "E")


def test_variables_reach_the_state_mocked_or_run(api: Api) -> None:
    state = {
        "Type": "Pass",
        "Parameters": {"greeting.$": "States.Format('hi {}', $who)", "raw.$": "$odd"},
        "Assign": {"seen.$": "$.greeting"},
        "End": True,
    }
    odd = {"a.$": "$.not-a-path", "s": "{% 1 + 1 %} 😀 %}", "big": [1, {"x": None}]}
    variables = json.dumps({"who": "ada", "odd": odd})
    done = api(
        "TestState", definition=json.dumps(state), variables=variables, inspectionLevel="DEBUG"
    )
    assert json.loads(done["output"]) == {"greeting": "hi ada", "raw": odd}  # values as given
    assert json.loads(done["inspectionData"]["variables"]) == {
        "who": "ada",
        "odd": odd,
        "seen": "hi ada",
    }
    jsonata = {
        "Type": "Task",
        "QueryLanguage": "JSONata",
        "Resource": FN + "double",
        "Arguments": {"n": "{% $n %}"},
        "Output": "{% $states.result.n + $n %}",
        "End": True,
    }
    done = api(
        "TestState", definition=json.dumps(jsonata), variables='{"n": 5}', inspectionLevel="DEBUG"
    )
    assert json.loads(done["output"]) == 15 and CALLS[FN + "double"] == 1  # run: 5 * 2 + 5
    assert json.loads(done["inspectionData"]["afterArguments"]) == {"n": 5}
    mocked = api(
        "TestState",
        definition=json.dumps(jsonata),
        variables='{"n": 5}',
        mock={"result": '{"n": 1}'},
    )
    assert json.loads(mocked["output"]) == 6 and CALLS[FN + "double"] == 1


def test_hostile_variable_values_arrive_exactly(api: Api) -> None:
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Output": "{% $v %}", "End": True}},
    }
    for value in ({"k.$": 12345678901234567}, {"s": "{% 1 %}"}, ["{% 1 %}", {"k.$": 1.5}]):
        done = api(
            "TestState",
            definition=json.dumps(machine),
            stateName="A",
            variables=json.dumps({"v": value}),
        )
        assert json.loads(done["output"]) == value, value
    state = {"Type": "Pass", "Parameters": {"v.$": "$v"}, "End": True}
    for value in (
        "a %} b {% c",
        '" \\ \n',
        12345678901234567,
        "チーム 😀",
        "\u0000",
        {"k": [None]},
    ):
        done = api("TestState", definition=json.dumps(state), variables=json.dumps({"v": value}))
        assert json.loads(done["output"]) == {"v": value}, value


def test_the_combinations_aws_refuses(api: Api) -> None:
    result = {"result": "{}"}
    passing = {"Type": "Pass", "End": True}
    for kind in ("Pass", "Succeed", "Fail", "Wait", "Choice"):
        state = {"Pass": passing, "Succeed": {"Type": "Succeed"}, "Fail": {"Type": "Fail"}}.get(
            kind
        ) or (
            {"Type": "Wait", "Seconds": 1, "End": True}
            if kind == "Wait"
            else {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "X"}],
            }
        )
        assert refused(api, state, mock=result) == (
            "ValidationException",
            f"State type '{kind}' is not supported when a mock is specified",
        )
    both = {"result": "{}", "errorOutput": {"error": "E"}}
    assert refused(api, mock=both)[1] == (
        "A test mock should have only one of the following fields: [result, errorOutput]."
    )
    assert refused(api, mock={})[0] == "ValidationException"
    assert refused(api, mock=result, revealSecrets=True, inspectionLevel="TRACE")[1] == (
        "TestState does not support RevealSecrets when a mock is specified."
    )
    assert refused(api, context="{}")[0] == "ValidationException"  # context needs a mock
    assert refused(api, mock=result, context="[1]")[0] == "ValidationException"
    assert refused(api, mock=result, context="{")[0] == "InvalidExecutionInput"
    assert refused(api, variables="[1]")[0] == "ValidationException"
    for name in ("a b", "$x", "1a", "states", "é", "x" * 81, ""):
        assert refused(api, variables=json.dumps({name: 1}))[0] == "ValidationException", name
    assert refused(api, mock={"result": "not json"})[0] == "InvalidExecutionInput"
    assert refused(api, mock={"errorOutput": {"cause": "no error"}})[0] == "ValidationException"
    assert refused(api, mock=result, stateConfiguration={"retrierRetryCount": 1})[0] == (
        "ValidationException"
    )
    assert refused(api, mock=result, stateConfiguration={"mapIterationFailureCount": 1})[0] == (
        "ValidationException"
    )
    assert refused(api, mock=result, stateConfiguration={"mapItemReaderData": "[]"})[0] == (
        "ValidationException"
    )
    assert refused(api, mock={"result": "{}", "fieldValidationMode": "LOOSE"})[0] == (
        "ValidationException"
    )
    assert refused(api, inspectionLevel="VERBOSE")[0] == "ValidationException"
    assert refused(api, mock=result, stateConfiguration={"retrierRetryCount": -1})[0] == (
        "ValidationException"
    )
    state = json.dumps(TASK)
    for params in (
        {"mock": "x"},
        {"mock": {"errorOutput": "x"}},
        {"mock": {"errorOutput": {"error": 5}}},
        {"mock": result, "stateConfiguration": [1]},
    ):
        with pytest.raises(ApiError) as caught:  # in process, past botocore's type checks
            api.service.call("TestState", {"definition": state, **params})
        assert caught.value.code == "ValidationException", params
    assert sum(CALLS.values()) == 0  # nothing ran for any refusal


def test_without_a_mock_the_state_runs_with_inspection(api: Api) -> None:
    state = {
        "Type": "Task",
        "Resource": FN + "double",
        "InputPath": "$.order",
        "ResultPath": "$.out",
        "End": True,
    }
    done = api(
        "TestState",
        definition=json.dumps(state),
        input=INPUT,
        roleArn=ROLE,
        inspectionLevel="TRACE",
    )
    assert CALLS[FN + "double"] == 1
    assert json.loads(done["output"]) == {"order": {"n": 2}, "out": {"n": 4}}
    data = {k: json.loads(v) for k, v in done["inspectionData"].items()}
    assert data["result"] == {"n": 4} and data["afterResultPath"] == {
        "order": {"n": 2},
        "out": {"n": 4},
    }
    assert data["afterInputPath"] == {"n": 2}


def test_a_bare_service_without_activities_answers_test_state() -> None:
    bus = InMemoryBus(0.0)
    service = StepFunctionsService(
        log=InMemoryLog(), bus=bus, registry=InMemoryRegistry(), invoker=counting, scope=SCOPE
    )
    answer = service.call(
        "TestState",
        {
            "definition": json.dumps(
                {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "End": True,
                }
            ),
            "mock": {"result": '{"ok": 1}'},
        },
    )
    assert answer == {"status": "SUCCEEDED", "output": '{"ok":1}'}


def test_trace_shows_an_http_tasks_request_and_response(api: Api) -> None:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {
            "ApiEndpoint": "https://api.example/orders",
            "Method": "post",
            "Headers": {"x-trace": "1"},
            "QueryParameters": {"dry run": "yes", "tag": ["a", "b"]},
            "RequestBody.$": "$.order",
            "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:1:connection/c/x"},
        },
        "End": True,
    }
    done = api("TestState", definition=json.dumps(state), input=INPUT, inspectionLevel="TRACE")
    assert CALLS["arn:aws:states:::http:invoke"] == 1
    data = done["inspectionData"]
    # As the HTTP integration builds it: arrays repeated, Content-Type and User-Agent added.
    assert data["request"] == {
        "protocol": "https",
        "method": "POST",
        "url": "https://api.example/orders?dry+run=yes&tag=a&tag=b",
        "headers": json.dumps(
            {
                "x-trace": "1",
                "Content-Type": "application/json",
                "User-Agent": "Amazon|StepFunctions|HttpInvoke|eu-west-1",
            },
            separators=(",", ":"),
        ),
        "body": '{"n": 2}',  # the integration's own encoding of the body it sent
    }
    assert data["response"] == {
        "protocol": "https",
        "statusCode": "201",
        "statusMessage": "Created",
        "headers": '{"content-type":["application/json"]}',
        "body": '{"id":7}',
    }
    debug = api("TestState", definition=json.dumps(state), input=INPUT, inspectionLevel="DEBUG")
    assert "request" not in debug["inspectionData"]


def test_debug_shows_the_parameters_the_run_sent_not_a_second_evaluation(api: Api) -> None:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {
            "ApiEndpoint": "https://api.example/orders",
            "Method": "POST",
            "RequestBody": {"id.$": "States.UUID()"},
            "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:1:connection/c/x"},
        },
        "End": True,
    }
    done = api("TestState", definition=json.dumps(state), input=INPUT, inspectionLevel="TRACE")
    data = done["inspectionData"]
    sent = SENT[-1]["RequestBody"]["id"]  # the UUID the task call received
    assert json.loads(data["afterParameters"])["RequestBody"] == {"id": sent}
    assert json.loads(data["request"]["body"]) == {"id": sent}


@pytest.mark.parametrize("result_path", [None, "$.made"])
def test_debug_of_a_pass_shows_what_the_run_computed_not_a_second_evaluation(
    api: Api, result_path: str | None
) -> None:
    """A Pass's Parameters with States.UUID(): afterParameters, result and output agree."""
    state: dict[str, Any] = {
        "Type": "Pass",
        "Parameters": {"id.$": "States.UUID()", "n.$": "$.n"},
        "End": True,
    }
    if result_path is not None:
        state["ResultPath"] = result_path
    done = api("TestState", definition=json.dumps(state), input='{"n": 3}', inspectionLevel="DEBUG")
    data = {k: json.loads(v) for k, v in done["inspectionData"].items()}
    output = json.loads(done["output"])
    made = output if result_path is None else output["made"]
    assert made["n"] == 3
    assert data["afterParameters"] == made
    assert data["result"] == made
    assert data["afterResultPath"] == output


def test_debug_of_a_pass_with_parameters_and_a_result_shows_its_parameters(api: Api) -> None:
    """With ``Result`` the result is the literal, and afterParameters still the template's."""
    state = {"Type": "Pass", "Parameters": {"p.$": "$.n"}, "Result": {"r": 2}, "End": True}
    done = api("TestState", definition=json.dumps(state), input='{"n": 3}', inspectionLevel="DEBUG")
    data = {k: json.loads(v) for k, v in done["inspectionData"].items()}
    assert data["afterParameters"] == {"p": 3}
    assert data["result"] == {"r": 2}
    assert json.loads(done["output"]) == {"r": 2}
