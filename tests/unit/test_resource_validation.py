"""Task resources at validation: AWS's refusals are errors, what StepFlow cannot run a warning.

The check runs at the edge (:mod:`stepflow.integrations.validation`): the
engine's ``stepflow.asl`` never sees botocore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stepflow.asl import DefinitionError, validate
from stepflow.cli import main
from stepflow.integrations import aws_resources, default_registry
from stepflow.integrations.registry import Registry
from stepflow.integrations.validation import (
    UNSUPPORTED,
    check_definition,
    resource_diagnostics,
    validate_definition,
)

SDK = "arn:aws:states:::aws-sdk"
NOT_RECOGNIZED = "is not recognized. The value is not a valid resource ARN"


def machine(resource: str, **extra: Any) -> dict[str, Any]:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True}}}


@pytest.mark.parametrize(
    "resource",
    [
        f"{SDK}:nosuch:thing",
        f"{SDK}:s3:noSuchAction",
        f"{SDK}:s3:GetObject",  # actions are camelCase
        f"{SDK}:s3:getObject.sync",  # AWS runs SDK calls request-response or with a token
        f"{SDK}:stepfunctions:startExecution",  # boto3's name, not Step Functions' (sfn)
        f"{SDK}:s3",
        "arn:aws:states:::dynamodb:query",  # not an optimized action, as on AWS
        "arn:aws:states:::dynamodb:putItem.waitForTaskToken",
        "arn:aws:states:::lambda:invoke.sync",
        "arn:aws:states:::nosuch:thing",
    ],
)
def test_a_resource_aws_refuses_is_an_error_with_awss_message(resource: str) -> None:
    (diagnostic,) = resource_diagnostics(machine(resource))
    assert diagnostic.severity == "ERROR"
    assert diagnostic.code == "SCHEMA_VALIDATION_FAILED"
    assert diagnostic.location == "/States/T/Resource"
    assert diagnostic.message == (
        f"The resource provided {resource} is not recognized. The value is not a valid "
        "resource ARN, or the resource is not available in this region."
    )
    with pytest.raises(DefinitionError):
        check_definition(json.dumps(machine(resource)))


@pytest.mark.parametrize(
    "resource",
    [
        f"{SDK}:s3:getObject",
        f"{SDK}:s3:listBuckets.waitForTaskToken",
        f"{SDK}:sfn:sendTaskFailure",
        f"{SDK}:eventbridge:putEvents",  # Step Functions' name for boto3's "events"
        f"{SDK}:cloudwatchlogs:describeLogGroups",
        f"{SDK}:rdsdata:executeStatement",
        f"{SDK}:secretsmanager:listSecrets",
        f"{SDK}:dynamodb:query",  # the SDK integration has every action
    ],
)
def test_an_sdk_resource_botocore_knows_is_accepted_and_runnable(resource: str) -> None:
    assert resource_diagnostics(machine(resource)) == []
    check_definition(machine(resource))


def test_a_resource_aws_accepts_but_stepflow_cannot_run_is_a_warning() -> None:
    resource = "arn:aws:states:::sagemaker:createTrainingJob.sync"
    (diagnostic,) = resource_diagnostics(machine(resource))
    assert diagnostic.severity == "WARNING"
    assert diagnostic.code == UNSUPPORTED == "UNSUPPORTED_INTEGRATION"
    assert resource in diagnostic.message
    assert "README.md#supported-integrations" in diagnostic.message
    check_definition(machine(resource))  # a warning does not refuse the definition


def test_an_empty_registry_warns_about_every_runnable_resource() -> None:
    definition = machine(f"{SDK}:s3:getObject")
    (diagnostic,) = resource_diagnostics(definition, Registry())
    assert diagnostic.code == UNSUPPORTED


def test_resources_inside_parallel_branches_and_maps_are_checked() -> None:
    bad = f"{SDK}:nosuch:thing"
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [machine(f"{SDK}:s3:getObject"), machine(bad)],
                "Next": "M",
            },
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    **machine("arn:aws:states:::dynamodb:query"),
                },
                "Next": "I",
            },
            "I": {"Type": "Map", "Iterator": machine(bad), "End": True},
        },
    }
    locations = [d.location for d in resource_diagnostics(definition)]
    assert locations == [
        "/States/P/Branches/1/States/T/Resource",
        "/States/M/ItemProcessor/States/T/Resource",
        "/States/I/Iterator/States/T/Resource",
    ]


def test_function_arns_activities_and_plain_names_are_not_judged_as_aws_resources() -> None:
    for resource in (
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "arn:aws:states:us-east-1:123456789012:activity:a",
        "my-handler",
    ):
        assert aws_resources.aws_problem(resource) is None


def test_the_engines_own_validation_stays_boto_free() -> None:
    # The asl validator says nothing about resources; the edge adds it.
    assert validate(machine(f"{SDK}:nosuch:thing")) == []
    assert len(validate_definition(machine(f"{SDK}:nosuch:thing"))) == 1


def test_invalid_json_and_hostile_shapes_give_no_resource_diagnostics() -> None:
    for definition in ("{not json", "[]", '{"States": 3}', '{"States": {"A": 1}}'):
        assert resource_diagnostics(definition) == []
    deep: dict[str, Any] = machine(f"{SDK}:s3:getObject")
    for _ in range(2000):
        deep = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [deep]}}}
    assert isinstance(resource_diagnostics(deep), list)


def test_every_optimized_service_is_listed_with_actions() -> None:
    assert "query" not in aws_resources.OPTIMIZED["dynamodb"]
    assert all(actions for actions in aws_resources.OPTIMIZED.values())
    assert default_registry().problem(f"{SDK}:s3:getObject") is None


def test_stepflow_validate_prints_the_warning_and_refuses_an_unknown_sdk_call(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(machine("arn:aws:states:::sagemaker:createTrainingJob.sync")))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("warning: /States/T/Resource: StepFlow cannot run the Task resource")
    assert out.strip().endswith("OK")
    path.write_text(json.dumps(machine(f"{SDK}:nosuch:thing")))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert NOT_RECOGNIZED in out and "OK" not in out


def test_hostile_resource_strings_are_refused_without_being_cached() -> None:
    from stepflow.integrations import aws_sdk

    before = aws_sdk._resolve.cache_info().currsize
    for index in range(50):
        resource = f"{SDK}:s3:get{'O' * 100_000}{index}"
        (diagnostic,) = resource_diagnostics(machine(resource))
        assert diagnostic.code == "SCHEMA_VALIDATION_FAILED"
    (diagnostic,) = resource_diagnostics(machine(f"{SDK}:{'s' * 100_000}:getObject"))
    assert diagnostic.code == "SCHEMA_VALIDATION_FAILED"
    assert aws_sdk._resolve.cache_info().currsize == before
