"""A worker's built-in effects never reach the stack's own resources nor its API.

``stepflow worker --cells`` reads the stack's own resources from the settings
environment, as a stepper does (``stepflow.aws.own_resources``): the CDK worker
service sets them. AWS effects run on moto and are counted with botocore's
``before-call`` events; HTTP effects against loopback servers count requests.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.testing import WorkflowEnvironment
from stepflow.worker import cli

from tests.unit.cells.queue_support import serving, until
from tests.unit.cells.test_cell_worker_review import Server, cli_worker

AWS_CELLS = "tests/worker/aws_cells_module.py"
HTTP_CELLS = "tests/worker/http_cells_module.py"
REGION = "us-east-1"


def machine(cell: str) -> dict[str, Any]:
    resource = f"arn:aws:states:::stepflow:cell:{cell}"
    return {"StartAt": "Go", "States": {"Go": {"Type": "Task", "Resource": resource, "End": True}}}


class Counted:
    """Calls of each operation a boto3 client makes (botocore ``before-call``)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: dict[str, int] = {}

        def count(model: Any, **kwargs: Any) -> None:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1

        client.meta.events.register("before-call", count)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the stack's queues and bucket, named in the settings a stepper reads."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "TASKS_QUEUE_URL", "STEPFLOW_OWN_FUNCTIONS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        urls = {
            name: sqs.create_queue(QueueName=name)["QueueUrl"]
            for name in ("sf-transitions", "sf-dlq", "user-orders")
        }
        for bucket in ("sf-payloads", "user-invoices"):
            s3.create_bucket(Bucket=bucket)
        monkeypatch.setenv("TABLE_NAME", "sf-table")
        monkeypatch.setenv("QUEUE_URL", urls["sf-transitions"])
        monkeypatch.setenv("STEPFLOW_OWN_QUEUES", "sf-dlq")
        monkeypatch.setenv("PAYLOAD_BUCKET", "sf-payloads")
        yield {"urls": urls, "sqs": Counted(sqs), "s3": Counted(s3)}


def run_on_worker(env: WorkflowEnvironment, stack: dict[str, Any], cell: str, target: str) -> Any:
    """One execution of ``cell`` on ``target``, served by a command-line worker; its description."""
    arn = env.start(machine(cell), {"target": target})
    env.run_until_idle()
    worker = cli_worker(env, "--cells", AWS_CELLS)
    worker.handler.clients.clients_given.update(sqs=stack["sqs"].client, s3=stack["s3"].client)
    with serving(worker) as running:
        until(lambda: running.counts["succeeded"] + running.counts["failed"] == 1)
    env.run_until_idle()
    return env.describe(arn)


def refused(description: dict[str, Any]) -> bool:
    return (
        description["status"] == "FAILED"
        and description.get("error") == "States.Runtime"
        and "target is a StepFlow resource" in description.get("cause", "")
    )


def test_an_sqs_effect_on_the_stack_s_queues_is_refused_and_a_user_queue_gets_one(
    stack: dict[str, Any],
) -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")
    urls, sqs = stack["urls"], stack["sqs"]
    for own in (urls["sf-transitions"], urls["sf-dlq"]):
        described = run_on_worker(env, stack, "send", own)
        assert refused(described), described
    assert sqs.calls.get("SendMessage", 0) == 0
    described = run_on_worker(env, stack, "send", urls["user-orders"])
    assert described["status"] == "SUCCEEDED", described
    assert sqs.calls["SendMessage"] == 1
    attributes = sqs.client.get_queue_attributes(
        QueueUrl=urls["user-orders"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"
    for own in ("sf-transitions", "sf-dlq"):
        attributes = sqs.client.get_queue_attributes(
            QueueUrl=urls[own], AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_an_s3_effect_on_the_payload_bucket_is_refused_and_a_user_bucket_gets_one(
    stack: dict[str, Any],
) -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")
    s3 = stack["s3"]
    described = run_on_worker(env, stack, "put", "sf-payloads")
    assert refused(described), described
    assert s3.calls.get("PutObject", 0) == 0
    assert "Contents" not in s3.client.list_objects_v2(Bucket="sf-payloads")
    described = run_on_worker(env, stack, "put", "user-invoices")
    assert described["status"] == "SUCCEEDED", described
    assert s3.calls["PutObject"] == 1
    assert s3.client.list_objects_v2(Bucket="user-invoices")["KeyCount"] == 1


def test_the_table_is_guarded_without_any_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TABLE_NAME", "QUEUE_URL", "PAYLOAD_BUCKET", "STEPFLOW_OWN_QUEUES"):
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(table="sf-table", own_resources=None)
    own = cli.own_resources_of(args)
    assert own.owns("table", "sf-table") and not own.buckets
    assert own.owns("queue", "stepflow-tq-orders")  # the activity queues' prefix
    monkeypatch.setenv("STEPFLOW_CELL_QUEUES", "no route")
    with pytest.raises(cli.WorkerUsageError, match="settings"):
        cli.own_resources_of(args)


def test_an_http_effect_to_the_worker_s_own_api_is_refused() -> None:
    api, user = Server(), Server()
    try:
        env = WorkflowEnvironment(cell_queues="*=orders")
        http = {
            "StartAt": "Fetch",
            "States": {
                "Fetch": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::stepflow:cell:fetch",
                    "End": True,
                }
            },
        }
        # The worker talks to the API at ``api``: a local stack, so loopback is allowed,
        # but not the API itself (under another spelling of this machine either).
        port = api.server.server_address[1]
        endpoint = f"http://127.0.0.1:{port}"
        worker = cli_worker(env, "--cells", HTTP_CELLS, "--endpoint-url", endpoint)
        arns = [
            env.start(http, {"url": url})
            for url in (api.url, f"http://localhost:{port}/x", f"http://[::ffff:127.0.0.1]:{port}/")
        ]
        env.run_until_idle()
        with serving(worker) as running:
            until(lambda: running.counts["failed"] == 3)
        env.run_until_idle()
        for arn in arns:
            described = env.describe(arn)
            assert described["status"] == "FAILED"
            assert described["error"] == "StepFlow.Effect.Http.Refused", described
        assert api.keys == []
        allowed = env.start(http, {"url": user.url})
        env.run_until_idle()
        again = cli_worker(env, "--cells", HTTP_CELLS, "--endpoint-url", endpoint)
        with serving(again) as running:
            until(lambda: running.counts["succeeded"] == 1)
        env.run_until_idle()
        assert env.describe(allowed)["status"] == "SUCCEEDED"
        assert len(user.keys) == 1 and api.keys == []
    finally:
        api.close()
        user.close()


def test_an_api_gateway_endpoint_is_denied_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every API Gateway host of a region resolves to the same front ends: another API is
    # not the stack's, so only the stack's API's name (any case, fully qualified) is denied.
    monkeypatch.setattr(cli, "resolve", lambda host, port: ["52.0.0.1"])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    args = argparse.Namespace(endpoint_url=f"https://{host}/prod/", dynamodb_endpoint=None)
    denied = cli.denied_endpoints_of(args)
    for spelling in (host, host.upper(), host + "."):
        assert denied.refusal(spelling, 443) is not None, spelling
    assert denied.refusal(host, 443, peer="52.0.0.1") is not None
    assert denied.refusal("other.execute-api.us-east-1.amazonaws.com", 443) is None
    assert denied.refusal(host, 8443) is None


def test_own_resources_given_on_the_command_line_add_to_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("STEPFLOW_OWN_QUEUES", "sf-dlq")
    given = '{"queues": ["https://sqs.us-east-1.amazonaws.com/1/sf-extra"], "buckets": ["sf-b"]}'
    args = argparse.Namespace(table="sf-table", own_resources=given)
    own = cli.own_resources_of(args)
    assert own.owns("queue", "sf-dlq") and own.owns("queue", "sf-extra")
    assert own.owns("bucket", "sf-b") and own.owns("table", "sf-table")
    assert own.owns("queue", "stepflow-tq-x")
    (tmp_path / "own.json").write_text('{"functions": ["arn:aws:lambda:us-east-1:1:function:f"]}')
    own = cli.own_resources_of(
        argparse.Namespace(table=None, own_resources=f"@{tmp_path}/own.json")
    )
    assert own.owns("function", "f") and own.owns("queue", "sf-dlq")
    for bad, why in (
        ("[1]", "must be a JSON object"),
        ("{", "is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "is not JSON"),  # nested too deeply: not a traceback
        ('{"queues": "q"}', "queues must be a list of strings"),
        ('{"topics": []}', "unknown keys"),
        ('{"queues": [1]}', "queues must be a list of strings"),
        ("@/nope", "cannot read /nope"),
    ):
        with pytest.raises(cli.WorkerUsageError, match=why):
            cli.own_resources_of(argparse.Namespace(table="t", own_resources=bad))
