"""The CDK stack: its template, the topology it shares with the local stack, cdk-nag, cfn-lint."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from aws_cdk.assertions import Match, Template  # noqa: E402
from stepflow.aws import topology  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cdk"))
from stepflow_cdk.app import build_app  # noqa: E402


@pytest.fixture(scope="module")
def synthesized() -> tuple[Template, Any, Any]:
    app = build_app({"stepflow:bundle": "false"})
    assembly = app.synth()
    stack = app.node.find_child("StepFlow")
    return Template.from_stack(stack), assembly.get_stack_by_name("StepFlow"), assembly


def resources(template: Template, kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template.find_resources(kind).values()]


def test_the_table_is_the_topology_table(synthesized: tuple[Template, Any, Any]) -> None:
    template = synthesized[0]
    (table,) = resources(template, "AWS::DynamoDB::Table")
    expected = topology.table_definition("x")
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    indexes = sorted(table["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"])
    wanted = sorted(expected["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"])
    assert len(indexes) == len(wanted) == 2  # the listing index and the running index
    for index, want in zip(indexes, wanted, strict=True):
        assert index["IndexName"] == want["IndexName"] and index["KeySchema"] == want["KeySchema"]
        assert index["Projection"] == want["Projection"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": topology.TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["DeletionProtectionEnabled"] is True


def test_each_topology_queue_has_its_dead_letter_queue(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    queues = resources(template, "AWS::SQS::Queue")
    for spec in topology.QUEUES:
        (main,) = [q for q in queues if q.get("VisibilityTimeout") == spec.visibility_timeout]
        assert main["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count
        assert main["SqsManagedSseEnabled"] is True
    dead = [q for q in queues if "RedrivePolicy" not in q]
    # and the sweeper's on-failure queue, the activity task queues' shared DLQ, and the
    # hooks dispatcher's on-failure queue (tests/cdk/test_hooks_function.py)
    assert len(dead) == len(topology.QUEUES) + 3
    assert all(q["MessageRetentionPeriod"] == spec.dlq_retention_seconds for q in dead)


def test_functions_share_the_layer_on_a_current_python(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    functions = [f for f in resources(template, "AWS::Lambda::Function") if "Layers" in f]
    assert len(functions) == 6  # stepper, runner, api, sweeper, outbox repair, hooks
    for function in functions:
        major, minor = function["Runtime"].removeprefix("python").split(".")
        assert (int(major), int(minor)) >= (3, 12)
        assert function["Handler"] == "handler.handler"
        assert function["TracingConfig"] == {"Mode": "Active"}
        variables = function["Environment"]["Variables"]
        if variables["POWERTOOLS_SERVICE_NAME"] in ("stepflow-sweeper", "stepflow-hooks"):
            assert "TABLE_NAME" in variables
        elif variables["POWERTOOLS_SERVICE_NAME"] == "stepflow-outbox-repair":
            assert {"TABLE_NAME", "QUEUE_URL"} <= set(variables)
            assert "PAYLOAD_BUCKET" not in variables  # it sends only small repair messages
        else:
            assert {"TABLE_NAME", "QUEUE_URL", "PAYLOAD_BUCKET"} <= set(variables)
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
    )


def function_named(template: Template, service: str) -> dict[str, Any]:
    (function,) = [
        f
        for f in resources(template, "AWS::Lambda::Function")
        if f.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME") == service
    ]
    return function


def test_tasks_run_on_a_runner_with_a_long_timeout_the_stepper_has_a_short_one(
    synthesized: tuple[Template, Any, Any],
) -> None:
    from stepflow.aws.sqs_bus import RUNNER_FUNCTION_TIMEOUT, STEPPER_FUNCTION_TIMEOUT

    template = synthesized[0]
    stepper = function_named(template, "stepflow-stepper")
    runner = function_named(template, "stepflow-runner")
    assert stepper["Timeout"] == STEPPER_FUNCTION_TIMEOUT <= 30
    assert runner["Timeout"] == RUNNER_FUNCTION_TIMEOUT == 900
    # the stepper's queue comes back within about a minute after a crash;
    # the tasks queue only after its runner surely ended
    assert topology.TRANSITIONS_QUEUE.visibility_timeout <= 6 * 30
    assert topology.TASKS_QUEUE.visibility_timeout > RUNNER_FUNCTION_TIMEOUT
    for function in (stepper, runner):
        assert topology.TASKS_QUEUE.env_var in function["Environment"]["Variables"]
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    sqs_mappings = sorted(m.get("BatchSize") for m in mappings if "FilterCriteria" not in m)
    # both take ten messages: the runner runs its ten tasks side by side
    assert sqs_mappings == [10, 10]


def test_the_outbox_repair_job_runs_on_a_schedule(synthesized: tuple[Template, Any, Any]) -> None:
    template = synthesized[0]
    (rule,) = resources(template, "AWS::Events::Rule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    repair = function_named(template, "stepflow-outbox-repair")
    assert repair["Handler"] == "handler.handler"


def test_the_sweeper_sees_only_ttl_deletions_of_heads(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    sweeper = {"Ref": _logical_id(template, "AWS::Lambda::Function", "ComputeSweeper")}
    (mapping,) = [
        m
        for m in resources(template, "AWS::Lambda::EventSourceMapping")
        if m["FunctionName"] == sweeper
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in mapping["DestinationConfig"]
    (pattern,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
        "dynamodb": {"Keys": {"sk": {"S": ["HEAD"]}}},
    }
    sweeper_policies = [
        p for p in resources(template, "AWS::IAM::Policy") if "Sweeper" in json.dumps(p["Roles"])
    ]
    actions = {
        action
        for policy in sweeper_policies
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"} <= actions
    assert not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}
    assert not any(a.startswith(("s3:", "lambda:")) for a in actions)
    # SQS only to report failed stream records to its on-failure queue
    assert {a for a in actions if a.startswith("sqs:")} <= {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }


def test_the_layer_carries_the_package(synthesized: tuple[Template, Any, Any]) -> None:
    assembly = synthesized[2]
    layer_dirs = [p for p in Path(assembly.directory).glob("asset.*") if (p / "python").is_dir()]
    assert layer_dirs and all((p / "python/stepflow/engine/decide.py").exists() for p in layer_dirs)


def test_the_api_is_post_slash_with_iam_auth_and_throttling(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    template.has_resource_properties(
        "AWS::ApiGateway::Method", {"HttpMethod": "POST", "AuthorizationType": "AWS_IAM"}
    )
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "TracingEnabled": True,
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 200, "ThrottlingBurstLimit": 400})]
            ),
            "AccessLogSetting": Match.any_value(),
        },
    )


def test_grants_name_actions_not_wildcards(synthesized: tuple[Template, Any, Any]) -> None:
    template = synthesized[0]
    for policy in resources(template, "AWS::IAM::Policy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement


def test_alarms_and_dashboard(synthesized: tuple[Template, Any, Any]) -> None:
    template = synthesized[0]
    # a dead-letter alarm per queue, for the sweeper's and the hooks' failures and for the
    # activity task queues' shared DLQ; errors and throttles per function (hooks included),
    # and the hooks' lag
    template.resource_count_is("AWS::CloudWatch::Alarm", len(topology.QUEUES) + 3 + 2 * 6 + 1)
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_cdk_nag_aws_solutions_reports_nothing_unsuppressed(
    synthesized: tuple[Template, Any, Any],
) -> None:
    artifact = synthesized[1]
    findings = [
        f"{m.level} {m.id} {m.entry.data}"
        for m in artifact.messages
        if "AwsSolutions" in str(m.entry.data)
    ]
    assert findings == []


def test_cfn_lint_finds_no_errors(synthesized: tuple[Template, Any, Any]) -> None:
    from cfnlint.api import lint_all

    template = synthesized[0].to_json()
    matches = lint_all(json.dumps(template))
    errors = [str(m) for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def _statements_of(template: Template, function: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline policy statements attached to ``function``'s role."""
    role = function["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy"):
        if {"Ref": role} in policy["Roles"]:
            statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def test_task_calls_assume_roles_under_the_stepflow_path_and_invoke_nothing_directly(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    for policy in resources(template, "AWS::IAM::Policy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert not any(a.startswith("lambda:") for a in _actions(statement)), statement
    assume = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": {
            "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::*:role/stepflow/*"]]
        },
    }
    for service in ("stepflow-stepper", "stepflow-runner"):
        statements = _statements_of(template, function_named(template, service))
        assert [s for s in statements if "sts:AssumeRole" in _actions(s)] == [assume]
        variables = function_named(template, service)["Environment"]["Variables"]
        assert variables["STEPFLOW_ASSUME_ROLES"] == "true"
    for service in ("stepflow-api", "stepflow-sweeper", "stepflow-outbox-repair"):
        statements = _statements_of(template, function_named(template, service))
        assert not [s for s in statements if any(a.startswith("sts:") for a in _actions(s))]


def test_the_functions_know_their_own_names_and_dead_letter_queues(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    names = sorted(
        f["FunctionName"] for f in resources(template, "AWS::Lambda::Function") if "Layers" in f
    )
    assert names == sorted(
        f"StepFlow-{f}" for f in ("stepper", "runner", "api", "sweeper", "repair", "hooks")
    )
    for service in ("stepflow-stepper", "stepflow-runner"):
        variables = function_named(template, service)["Environment"]["Variables"]
        assert sorted(variables["STEPFLOW_OWN_FUNCTIONS"].split(",")) == names
        own_queues = json.dumps(variables["STEPFLOW_OWN_QUEUES"])
        for logical in [f"{spec.logical_name}Dlq" for spec in topology.QUEUES] + [
            "SweeperFailures",
            "HookQueuesFailures",
        ]:
            assert logical in own_queues


def test_the_roles_workflow_roles_must_trust_are_exported(
    synthesized: tuple[Template, Any, Any],
) -> None:
    outputs = synthesized[0].to_json()["Outputs"]
    for name in ("StepperRoleArn", "RunnerRoleArn"):
        assert outputs[name]["Export"] == {"Name": f"StepFlow-{name}"}


def test_the_api_checks_pass_role_with_scoped_iam_grants(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    api = function_named(template, "stepflow-api")
    variables = api["Environment"]["Variables"]
    assert variables["STEPFLOW_PASS_ROLE_CHECK"] == "iam"
    assert "STEPFLOW_ACCESS_POLICY" not in variables  # no policy: IAM decides alone
    for other in ("stepflow-stepper", "stepflow-runner"):
        assert (
            "STEPFLOW_PASS_ROLE_CHECK"
            not in function_named(template, other)["Environment"]["Variables"]
        )
    statements = [s for s in _statements_of(template, api) if str(s["Action"]).startswith("iam:")]
    actions = sorted(str(s["Action"]) for s in statements)
    assert actions == ["iam:GetRole", "iam:SimulatePrincipalPolicy"]
    for statement in statements:
        text = json.dumps(statement["Resource"])
        assert ":user/*" in text or ":role/*" in text
        assert '"*"' not in text  # never every resource


def test_the_access_policy_is_a_stack_property() -> None:
    rules = [
        {"principals": ["arn:aws:iam::*:user/ops"], "actions": ["states:*"], "stateMachines": ["*"]}
    ]
    app = build_app(
        {
            "stepflow:bundle": "false",
            "stepflow:nag": "false",
            "stepflow:accessPolicy": json.dumps(rules),
        }
    )
    template = Template.from_stack(app.node.find_child("StepFlow"))
    variables = function_named(template, "stepflow-api")["Environment"]["Variables"]
    assert json.loads(variables["STEPFLOW_ACCESS_POLICY"]) == rules
    with pytest.raises(ValueError):
        build_app(
            {"stepflow:bundle": "false", "stepflow:nag": "false", "stepflow:accessPolicy": "[1]"}
        )


def test_claims_in_events_can_be_turned_off_for_the_first_deploy_of_an_upgrade(
    synthesized: tuple[Template, Any, Any],
) -> None:
    # by default no function names the setting (the code's default: on)
    template = synthesized[0]
    for service in ("stepflow-api", "stepflow-stepper", "stepflow-runner"):
        variables = function_named(template, service)["Environment"]["Variables"]
        assert "STEPFLOW_CLAIMS_IN_EVENTS" not in variables
    # -c stepflow:claimsInEvents=false turns it off on every function that claims or copies
    app = build_app(
        {"stepflow:bundle": "false", "stepflow:nag": "false", "stepflow:claimsInEvents": "false"}
    )
    off = Template.from_stack(app.node.find_child("StepFlow"))
    for service in ("stepflow-api", "stepflow-stepper", "stepflow-runner"):
        variables = function_named(off, service)["Environment"]["Variables"]
        assert variables["STEPFLOW_CLAIMS_IN_EVENTS"] == "false"


def test_an_access_policy_too_large_for_the_environment_fails_synth() -> None:
    from stepflow_cdk.stack import MAX_POLICY_BYTES, policy_json

    rule = {"principals": ["arn:aws:iam::1:user/u"], "actions": ["states:*"], "stateMachines": []}
    rules = [{**rule, "stateMachines": [f"machine-{i}" for i in range(400)]}]
    with pytest.raises(ValueError, match="4 KB"):
        policy_json(rules)
    assert len(policy_json([rule]).encode()) < MAX_POLICY_BYTES


def test_the_signing_key_is_a_generated_secret_read_only_by_the_functions_that_message(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    (secret_id,) = template.find_resources("AWS::SecretsManager::Secret")
    (secret,) = resources(template, "AWS::SecretsManager::Secret")
    # the value is generated by CloudFormation: it is not in the template
    assert secret["GenerateSecretString"]["PasswordLength"] >= 64
    assert "SecretString" not in secret
    readers = set()
    for policy in resources(template, "AWS::IAM::Policy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            if secret_id in json.dumps(statement["Resource"]):
                actions = statement["Action"]
                assert set(actions if isinstance(actions, list) else [actions]) <= {
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                }
                readers.add(json.dumps(policy["Roles"]))
    assert len(readers) == 4 and not any("Sweeper" in r for r in readers)
    for service in ("stepper", "runner", "api", "outbox-repair"):
        variables = function_named(template, f"stepflow-{service}")["Environment"]["Variables"]
        assert secret_id in json.dumps(variables["STEPFLOW_SIGNING_SECRET_ARN"])
    sweeper = function_named(template, "stepflow-sweeper")["Environment"]["Variables"]
    assert "STEPFLOW_SIGNING_SECRET_ARN" not in sweeper


def test_activity_task_queues_dead_letter_into_one_alarmed_tls_only_queue(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    (logical_id,) = [
        key
        for key in template.find_resources("AWS::SQS::Queue")
        if key.startswith("QueuesActivityTasksDlq")
    ]
    dlq = template.find_resources("AWS::SQS::Queue")[logical_id]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    # TLS only: its queue policy denies aws:SecureTransport false
    policies = [
        p
        for p in resources(template, "AWS::SQS::QueuePolicy")
        if {"Ref": logical_id} in p["Queues"]
    ]
    (statement,) = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # alarmed on visible messages
    alarms = [
        a
        for a in resources(template, "AWS::CloudWatch::Alarm")
        if a.get("Dimensions")
        and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": [logical_id, "QueueName"]}
    ]
    assert len(alarms) == 1
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    # the functions that create activity queues are told its ARN
    for service in ("stepflow-api", "stepflow-stepper", "stepflow-runner"):
        variables = function_named(template, service)["Environment"]["Variables"]
        assert variables["ACTIVITY_DLQ_ARN"] == {"Fn::GetAtt": [logical_id, "Arn"]}


def test_payload_objects_never_expire_while_something_may_reference_them(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    buckets = [
        b
        for b in resources(template, "AWS::S3::Bucket")
        if "LoggingConfiguration" in b  # the payload bucket logs to the access-log bucket
    ]
    (payloads,) = buckets
    rules = payloads.get("LifecycleConfiguration", {}).get("Rules", [])
    assert rules, "the payload bucket keeps a rule for incomplete uploads"
    for rule in rules:
        if rule.get("Prefix") == topology.MESSAGE_PREFIX:
            continue  # queue bodies over SQS's limit: see the test below
        assert "ExpirationInDays" not in rule and "ExpirationDate" not in rule, rule
        assert "NoncurrentVersionExpiration" not in rule, rule


def test_stored_queue_bodies_expire_only_after_sqs_can_no_longer_deliver_them(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """A body over SQS's limit is referenced by a queue message only: SQS keeps one (its DLQ
    copy included) 14 days at most, so messages/ expires after that and only that prefix."""
    template = synthesized[0]
    (payloads,) = [b for b in resources(template, "AWS::S3::Bucket") if "LoggingConfiguration" in b]
    rules = payloads["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "ExpirationInDays" in r]
    assert expiring == [
        {
            "Prefix": topology.MESSAGE_PREFIX,
            "ExpirationInDays": topology.MESSAGE_EXPIRY_DAYS,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "Status": "Enabled",
        }
    ]
    assert topology.MESSAGE_EXPIRY_DAYS * 86_400 > 14 * 86_400  # SQS's longest retention


def _s3_grants(template: Template, service: str) -> dict[str, set[str]]:
    """The S3 actions ``service``'s role holds, per resource (an ARN pattern, as text)."""
    grants: dict[str, set[str]] = {}
    for statement in _statements_of(template, function_named(template, service)):
        actions = {a for a in _actions(statement) if a.startswith("s3:")}
        if not actions:
            continue
        found = statement["Resource"]
        for resource in found if isinstance(found, list) else [found]:
            grants.setdefault(json.dumps(resource), set()).update(actions)
    return grants


def test_the_functions_read_and_write_only_their_prefixes_of_the_payload_bucket(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """Least privilege: the stepper, runner and API read and write payloads/, definitions/
    and messages/ (queue bodies over SQS's limit), never delete; the outbox repair has no
    S3 right (it sends only a small ``repair`` message; the stepper re-sends the outbox)."""
    template = synthesized[0]
    bucket = {"Fn::GetAtt": [_logical_id(template, "AWS::S3::Bucket", "StoragePayloads"), "Arn"]}

    def objects(prefix: str) -> str:
        return json.dumps({"Fn::Join": ["", [bucket, f"/{prefix}*"]]})

    for service in ("stepflow-stepper", "stepflow-runner", "stepflow-api"):
        grants = _s3_grants(template, service)
        assert set(grants) == {
            json.dumps(bucket),
            objects(topology.PAYLOAD_PREFIX),
            objects(topology.DEFINITION_PREFIX),
            objects(topology.MESSAGE_PREFIX),
        }, service
        for prefix in (
            topology.PAYLOAD_PREFIX,
            topology.DEFINITION_PREFIX,
            topology.MESSAGE_PREFIX,
        ):
            assert {"s3:GetObject*", "s3:PutObject"} <= grants[objects(prefix)], service
        assert not any("s3:DeleteObject" in a for g in grants.values() for a in g), service
    assert _s3_grants(template, "stepflow-outbox-repair") == {}


def test_the_functions_hand_out_arns_in_the_deployment_account(
    synthesized: tuple[Template, Any, Any],
) -> None:
    template = synthesized[0]
    for service in ("stepflow-api", "stepflow-stepper", "stepflow-runner"):
        variables = function_named(template, service)["Environment"]["Variables"]
        assert variables["STEPFLOW_ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}


def _logical_id(template: Template, kind: str, prefix: str) -> str:
    (found,) = [
        key
        for key in template.find_resources(kind)
        if key.startswith(prefix) and "Dlq" not in key and "Policy" not in key
    ]
    return found


WORKFLOW_SERVICES = ("states:", "events:", "ecs:", "glue:", "athena:", "batch:", "lambda:")
"""Actions a workflow's own tasks need: held by the execution role, never by StepFlow."""


def test_the_stepper_and_runner_touch_user_resources_only_through_the_execution_role(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """Nested starts, map runs, .sync polls, ItemReader/ResultWriter run in these two.

    Nested StartExecution is in process (the table and payload bucket they hold),
    ItemReader and ResultWriter read and write the user's S3 with the execution's
    role (sts:AssumeRole), polls call ECS/Glue/Athena/Batch with it: so neither
    function holds any S3 right beyond the payload bucket nor any workflow service.
    """
    template = synthesized[0]
    payloads = _logical_id(template, "AWS::S3::Bucket", "StoragePayloads")
    for service in ("stepflow-stepper", "stepflow-runner"):
        statements = _statements_of(template, function_named(template, service))
        actions = {a for s in statements for a in _actions(s)}
        assert {a.split(":")[0] for a in actions} == {
            "xray",
            "secretsmanager",
            "sqs",
            "dynamodb",
            "s3",
            "sts",
            "iam",
        }, service
        assert not any(a.startswith(WORKFLOW_SERVICES) for a in actions), service
        assert {a for a in actions if a.startswith("iam:")} == {"iam:SimulatePrincipalPolicy"}
        for statement in statements:
            if statement["Resource"] == "*":
                assert all(a.startswith("xray:") for a in _actions(statement)), statement
            if any(a.startswith("s3:") for a in _actions(statement)):
                found = statement["Resource"]
                for resource in found if isinstance(found, list) else [found]:
                    assert payloads in json.dumps(resource), statement


def _sends_to(statements: list[dict[str, Any]], queue: str) -> bool:
    return any(
        "sqs:SendMessage" in _actions(s) and s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        for s in statements
    )


def test_the_runner_sends_task_messages_and_hands_activity_tasks_on_without_managing_queues(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """The runner's nested starts commit the child's first decision (its task messages go to
    the tasks queue or an activity's queue); an EXPRESS map batch re-sends its waiting items."""
    template = synthesized[0]
    tasks = _logical_id(template, "AWS::SQS::Queue", "QueuesTasks")
    transitions = _logical_id(template, "AWS::SQS::Queue", "QueuesTransitions")
    for service in ("stepflow-stepper", "stepflow-runner", "stepflow-api"):
        statements = _statements_of(template, function_named(template, service))
        assert _sends_to(statements, tasks) and _sends_to(statements, transitions), service
    runner = _statements_of(template, function_named(template, "stepflow-runner"))
    activity = [s for s in runner if "stepflow-tq*" in json.dumps(s["Resource"])]
    assert [sorted(_actions(s)) for s in activity] == [["sqs:GetQueueUrl", "sqs:SendMessage"]]
    for service in ("stepflow-outbox-repair", "stepflow-sweeper"):
        statements = _statements_of(template, function_named(template, service))
        assert not _sends_to(statements, tasks), service


def test_nested_starts_are_checked_against_the_tasks_role_through_iam(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """The stepper and runner ask IAM whether a task's role may StartExecution on its target
    (SimulatePrincipalPolicy on the account's roles only); the API, repair and sweeper never
    run tasks and are not told to."""
    template = synthesized[0]
    for service in ("stepflow-stepper", "stepflow-runner"):
        function = function_named(template, service)
        assert function["Environment"]["Variables"]["STEPFLOW_NESTED_START_CHECK"] == "iam"
        iam = [s for s in _statements_of(template, function) if str(s["Action"]).startswith("iam:")]
        assert iam == [
            {
                "Effect": "Allow",
                "Action": "iam:SimulatePrincipalPolicy",
                "Resource": {
                    "Fn::Join": [
                        "",
                        [
                            "arn:",
                            {"Ref": "AWS::Partition"},
                            ":iam::",
                            {"Ref": "AWS::AccountId"},
                            ":role/*",
                        ],
                    ]
                },
            }
        ], service
    for service in ("stepflow-api", "stepflow-sweeper", "stepflow-outbox-repair"):
        variables = function_named(template, service)["Environment"]["Variables"]
        assert "STEPFLOW_NESTED_START_CHECK" not in variables, service


def test_without_a_cells_module_the_stack_ships_no_cells(
    synthesized: tuple[Template, Any, Any],
) -> None:
    """``-c stepflow:cells=...`` adds StepFlowCells; the default synth has none of it."""
    template = synthesized[0].to_json()
    assert not [k for k in template["Resources"] if k.startswith("Cells")]
    assert "STEPFLOW_CELL" not in json.dumps(template)
