"""The Task-case harness itself: its stand-ins, workers and wiring do what the tests did.

Two minimal integrations here (SQS SendMessage and SNS Publish on moto, test doubles
of the real ones) let the callback cases run end to end before the real
integrations are merged: the harness's set-up, substitution and workers are proven
on them, and a case scored with them passes the oracle.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.engine.resources import Pattern
from stepflow.integrations import Registry, TaskRequest
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import WorkflowEnvironment

from tests.conformance.task_cases import SPECS, key, run_case
from tests.conformance.task_harness import (
    START,
    CaseContext,
    Spec,
    combined_invoker,
    moto_case,
    run_spec,
    score,
    substitute,
)
from tests.conformance.task_standins import RestApi, api_stand_in, sqs_success
from tests.conformance.test_conformance import ALL, ORACLE

WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


@dataclass
class _Double:
    """A minimal request-response / wait-for-token integration over one boto3 call."""

    service: str
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})
    sent: list[dict[str, Any]] = field(default_factory=list)

    def check(self, action: str, pattern: Pattern) -> str | None:
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        params = dict(request.parameters)
        self.sent.append(params)
        client = request.client(clients, self.service)
        if self.service == "sqs":
            body = params["MessageBody"]
            text = body if isinstance(body, str) else json.dumps(body)
            answer = client.send_message(QueueUrl=params["QueueUrl"], MessageBody=text)
        else:
            message = params["Message"]
            text = message if isinstance(message, str) else json.dumps(message)
            answer = client.publish(TopicArn=params["TopicArn"], Message=text)
        return TaskOutcome.succeeded({k: v for k, v in answer.items() if k != "ResponseMetadata"})


def _registry(*doubles: _Double) -> Registry:
    registry = Registry()
    for double in doubles:
        registry.register(double)
    return registry


def _case(fragment: str) -> dict[str, Any]:
    found = [c for c in ALL if c["needs"] and fragment in key(c)]
    if len(found) != 1:
        pytest.skip("../shared/conformance is absent (as in a user's clone)")
    return found[0]


def _chain(*states: str) -> dict[str, Any]:
    """A chain of SQS callback tasks, each sending the input's Message with its token."""
    body = {"Message.$": "$.Message", "TaskToken.$": "$$.Task.Token"}
    return {
        "StartAt": states[0],
        "States": {
            name: {
                "Type": "Task",
                "Resource": WAIT,
                "Parameters": {"QueueUrl.$": "$.QueueUrl", "MessageBody": body},
                "ResultPath": f"$.{name}",
                **({"Next": states[i + 1]} if i + 1 < len(states) else {"End": True}),
            }
            for i, name in enumerate(states)
        },
    }


def test_a_callback_chain_is_answered_by_the_worker_once_per_task() -> None:
    """Two callback tasks: two messages on the real (moto) queue, two SendTaskSuccess."""
    sqs = _Double("sqs")
    case = {"definition": _chain("A", "B"), "input": {"QueueUrl": "<q>", "Message": "hi"}}
    spec = Spec(setup=lambda c: _queue(c, "<q>"), worker=_counting(sqs_success))
    result = run_spec(spec, case, registry=_registry(sqs))
    assert result["status"] == "SUCCEEDED"
    output = json.loads(result["output"])
    assert (output["A"], output["B"]) == ("hi", "hi")
    assert output["QueueUrl"].endswith("/conform-test-queue")  # the placeholder was replaced
    assert len(sqs.sent) == 2 and _ANSWERED == [1, 1]
    types = [e["type"] for e in result["history"]]
    assert types.count("TaskSubmitted") == types.count("TaskSucceeded") == 2


_ANSWERED: list[int] = []


def _counting(worker: Any) -> Any:
    _ANSWERED.clear()

    def count(context: CaseContext) -> bool:
        before = {t.token for t in context.environment().open_tasks()}
        acted = bool(worker(context))
        after = {t.token for t in context.environment().open_tasks()}
        _ANSWERED.append(len(before - after))
        return acted

    return count


def _queue(context: CaseContext, placeholder: str) -> dict[str, str]:
    url = context.client("sqs").create_queue(QueueName="conform-test-queue")["QueueUrl"]
    context.values["queue_url"] = url
    return {placeholder: url}


@pytest.mark.parametrize(
    "fragment",
    [
        "test_callback.py::TestCallback::test_sqs_wait_for_task_token_call_chain",
        "test_callback.py::TestCallback::test_sqs_failure_in_wait_for_task_tok_no_error_field",
        "test_base_callbacks.py::TestBaseScenarios::test_sqs_wait_for_task_token_task_failure",
        "test_callback.py::TestCallback::test_sns_publish_wait_for_task_token",
        "test_sqs_task_service.py::TestTaskServiceSqs::test_send_message_attributes",
    ],
)
def test_with_a_working_integration_the_recorded_case_passes(fragment: str) -> None:
    """The harness's set-up and worker are right: only the integration is missing."""
    case = _case(fragment)
    sqs, sns = _Double("sqs"), _Double("sns")
    result = run_case(case, registry=_registry(sqs, sns))
    assert ORACLE is not None
    assert score(ORACLE, case, result) == (True, "ok (status/error only: placeholders)")
    assert len(sqs.sent) + len(sns.sent) == sum(t["Type"] == "Task" for t in _tasks(case))


def _tasks(case: dict[str, Any]) -> list[dict[str, Any]]:
    return list(case["definition"]["States"].values())


def test_a_slow_function_runs_past_its_timeout_on_the_virtual_clock() -> None:
    """The 60 s stand-in is called once; the 5 s TimeoutSeconds fails the task first."""
    calls: list[Any] = []
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "TimeoutSeconds": 5,
                "Parameters": {"FunctionName.$": "$.F", "Payload": {}},
                "End": True,
            }
        },
    }

    def slow(context: CaseContext) -> Any:
        def handler(event: Any) -> Any:
            calls.append(event)
            context.sleep(60)
            return event

        return handler

    spec = Spec(functions={"<f>": slow})
    result = run_spec(spec, {"definition": definition, "input": {"F": "<f>"}})
    assert (result["status"], result["error"]) == ("FAILED", "States.Timeout")
    assert calls == [{}]
    types = [e["type"] for e in result["history"]]
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskTimedOut",
        "ExecutionFailed",
    ]


def test_the_sfn_client_answers_task_tokens_through_the_environment() -> None:
    """SendTaskSuccess on the task's stepfunctions client completes the open task;
    an unknown token is refused as AWS refuses it (InvalidToken)."""
    with moto_case() as context:
        env = WorkflowEnvironment(start_time=START)
        context.env = env
        arn = env.start(_chain("A"), {"QueueUrl": "q", "Message": "m"})
        env.run(arn)
        [task] = env.open_tasks()
        sfn = context.client("stepfunctions")
        sfn.send_task_success(taskToken=task.token, output=json.dumps({"done": 1}))
        env.run(arn)
        assert json.loads(str(env.result(arn).output))["A"] == {"done": 1}
        with pytest.raises(ClientError) as refused:
            sfn.send_task_failure(taskToken="NoSuchTaskToken")
        assert refused.value.response["Error"]["Code"] == "InvalidToken"
        assert sfn.list_state_machines()["stateMachines"] == []  # the rest goes to moto


def test_the_api_stand_in_serves_the_deployed_route_only() -> None:
    """POST /<stage>/id_func echoes the body (an identity Lambda); anything else is 403."""
    with api_stand_in() as server:
        server.api = RestApi(query_template=True)
        url = f"{server.endpoint}/sfn-apigw-api/id_func?param1=Hello&param2=World"
        request = urllib.request.Request(url, data=b'{"m": [1]}', method="POST")
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
        query = "{param1=Hello, param2=World}"
        assert answer == {"body": {"m": [1]}, "queryStringParameters": query}
        assert len(server.api.requests) == 1
        bad = urllib.request.Request(f"{server.endpoint}/sfn-apigw-api/other", b"{}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad)
        assert refused.value.code == 403
        assert json.loads(refused.value.read()) == {"message": "Missing Authentication Token"}


def test_handlers_take_bound_functions_and_the_integrations_the_rest() -> None:
    """A bound function never reaches the integrations; an unbound one does, once."""
    sent: list[dict[str, Any]] = []

    def integrations(body: dict[str, Any]) -> TaskOutcome:
        sent.append(body)
        return TaskOutcome.succeeded("integration")

    invoke = combined_invoker({"bound": lambda e: "handler"}, integrations)
    bound = invoke(_body("t1", {"FunctionName": "bound"}))
    other = invoke(_body("t2", {"FunctionName": "other"}))
    assert bound.output["Payload"] == "handler" and other.output == "integration"
    assert [b["task_id"] for b in sent] == ["t2"]


def test_placeholders_are_replaced_whole_or_inside_strings() -> None:
    value = {"a": ["sqs_queue_url", "x-sqs_queue_url"], "b": "arn:<p>:<r>:<rr>", "c": 1}
    exact = {"sqs_queue_url": "URL"}
    assert substitute(value, exact, {"<p>": "aws", "<r>": "R", "<rr>": "RR"}) == {
        "a": ["URL", "x-sqs_queue_url"],
        "b": "arn:aws:R:RR",
        "c": 1,
    }


def test_every_spec_key_names_a_recorded_case() -> None:
    if not ALL:
        pytest.skip("../shared/conformance is absent (as in a user's clone)")
    assert set(SPECS) <= {key(c) for c in ALL}


def _body(task_id: str, parameters: Any) -> dict[str, Any]:
    resource = "arn:aws:states:::lambda:invoke"
    return {"task_id": task_id, "resource": resource, "input": parameters, "state_name": "T"}
