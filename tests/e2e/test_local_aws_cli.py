"""End to end: the AWS CLI and plain boto3 clients against ``stepflow local`` (issue 17).

GIVEN the local stack, WHEN a user follows docs/local.md (a plain
``boto3.client`` with ``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` or
``Config(inject_host_prefix=False)``, the AWS CLI with the variable or a profile
setting), THEN StartSyncExecution and TestState reach the stack (without the
setting botocore calls ``sync-127.0.0.1`` and cannot connect), and tags go
through TagResource, UntagResource, ListTagsForResource and the create calls,
stored in the stack's DynamoDB table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from stepflow.local import LocalStack
from stepflow.local.banner import HOST_PREFIX_VARIABLE

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
ECHO = json.dumps({"StartAt": "E", "States": {"E": {"Type": "Pass", "End": True}}})
STATE = json.dumps({"Type": "Pass", "Result": {"ok": True}, "End": True})
MOCKED = json.dumps(
    {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"attempt.$": "$attempt"}},
        "Retry": [{"ErrorEquals": ["Throttled"], "MaxAttempts": 3}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failed", "Next": "Handle"}],
        "End": True,
    }
)
AWS = shutil.which("aws") or "/root/.pyenv/shims/aws"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def plain(url: str, **kwargs: Any) -> Any:
    """``boto3.client("stepfunctions", endpoint_url=url)``, as a user writes it."""
    return boto3.client(
        "stepfunctions", endpoint_url=url, region_name="us-east-1", **CREDENTIALS, **kwargs
    )


def express(sfn: Any, name: str) -> str:
    made = sfn.create_state_machine(name=name, definition=ECHO, roleArn=ROLE, type="EXPRESS")
    return str(made["stateMachineArn"])


def test_plain_boto3_reaches_sync_operations_as_the_banner_says(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HOST_PREFIX_VARIABLE, raising=False)
    arn = express(stack.stepfunctions(), "sync-plain")
    with pytest.raises(EndpointConnectionError, match=r"sync-127\.0\.0\.1"):
        plain(stack.url).start_sync_execution(stateMachineArn=arn, input='{"a": 1}')
    assert any(HOST_PREFIX_VARIABLE in line for line in stack.banner_lines())
    monkeypatch.setenv(HOST_PREFIX_VARIABLE, "true")
    for sfn in (
        plain(stack.url),
        plain(stack.url, config=Config(inject_host_prefix=False)),
        stack.stepfunctions(),
    ):
        done = sfn.start_sync_execution(stateMachineArn=arn, input='{"a": 1}')
        assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", {"a": 1})
        tested = sfn.test_state(definition=STATE, roleArn=ROLE, input="{}")
        assert (tested["status"], json.loads(tested["output"])) == ("SUCCEEDED", {"ok": True})
    mocked = stack.stepfunctions().test_state(
        definition=MOCKED,
        input='{"id": 7}',
        mock={"errorOutput": {"error": "Throttled", "cause": "slow down"}},
        variables='{"attempt": 1}',
        stateConfiguration={"retrierRetryCount": 3},
        inspectionLevel="DEBUG",
    )
    assert (mocked["status"], mocked["nextState"]) == ("CAUGHT_ERROR", "Handle")
    assert json.loads(mocked["output"]) == {
        "id": 7,
        "failed": {"Error": "Throttled", "Cause": "slow down"},
    }
    assert mocked["inspectionData"]["errorDetails"] == {"catchIndex": 0}


def test_tags_through_boto3(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    arn = sfn.create_state_machine(
        name="tagged", definition=ECHO, roleArn=ROLE, tags=[{"key": "team", "value": "core"}]
    )["stateMachineArn"]
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "équipe", "value": "café"}])
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "équipe", "value": "café"}
    ]
    too_many = [{"key": f"k{i}", "value": "v"} for i in range(50)]
    for tags, code in ((too_many, "TooManyTags"), ([{"key": "k" * 129}], "ValidationException")):
        with pytest.raises(ClientError) as caught:
            sfn.tag_resource(resourceArn=arn, tags=tags)
        assert caught.value.response["Error"]["Code"] == code
    activity = sfn.create_activity(name="tagged-jobs", tags=too_many)["activityArn"]
    assert len(sfn.list_tags_for_resource(resourceArn=activity)["tags"]) == 50
    for gone in (arn, activity):
        if gone == arn:
            sfn.delete_state_machine(stateMachineArn=gone)
        else:
            sfn.delete_activity(activityArn=gone)
        with pytest.raises(ClientError) as caught:
            sfn.tag_resource(resourceArn=gone, tags=[{"key": "a", "value": "b"}])
        assert caught.value.response["Error"]["Code"] == "ResourceNotFound"


def aws(stack: LocalStack, tmp: Path, *args: str, **env: str) -> Any:
    """One AWS CLI call against the stack, isolated from the machine's AWS settings."""
    config = tmp / "config"
    config.write_text("[profile stepflow-local]\ndisable_host_prefix_injection = true\n")
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "credentials"),
        **env,
    }
    done = subprocess.run(
        [AWS, "stepfunctions", *args, "--endpoint-url", stack.url, "--output", "json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.mark.skipif(not Path(AWS).exists(), reason="the AWS CLI is not installed")
def test_the_aws_cli_with_the_variable_or_a_profile(stack: LocalStack, tmp_path: Path) -> None:
    arn = express(stack.stepfunctions(), "cli-sync")
    flag = {HOST_PREFIX_VARIABLE: "true"}
    done = aws(stack, tmp_path, "start-sync-execution", "--state-machine-arn", arn, **flag)
    assert done["status"] == "SUCCEEDED"
    profile = {"AWS_PROFILE": "stepflow-local"}
    tested = aws(
        stack, tmp_path, "test-state", "--definition", STATE, "--role-arn", ROLE, **profile
    )
    assert json.loads(tested["output"]) == {"ok": True}
    aws(stack, tmp_path, "tag-resource", "--resource-arn", arn, "--tags", "key=env,value=dev")
    listed = aws(stack, tmp_path, "list-tags-for-resource", "--resource-arn", arn)
    assert listed == {"tags": [{"key": "env", "value": "dev"}]}
    aws(stack, tmp_path, "untag-resource", "--resource-arn", arn, "--tag-keys", "env")
    assert aws(stack, tmp_path, "list-tags-for-resource", "--resource-arn", arn) == {"tags": []}
    made = aws(stack, tmp_path, "create-activity", "--name", "cli-jobs", "--tags", "key=a,value=b")
    listed = aws(stack, tmp_path, "list-tags-for-resource", "--resource-arn", made["activityArn"])
    assert listed == {"tags": [{"key": "a", "value": "b"}]}
