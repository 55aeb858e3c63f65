"""The hooks dispatcher in the CDK stack: its stream mapping, dead letters, grants and settings.

Two stacks, each synthesized once for the module: the default one (metrics only)
and one with every hook on, configured through the app's context as ``cdk -c``
passes it (text). Its grants are compared statement by statement: each names
one resource, the function never writes the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from aws_cdk.assertions import Template  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))
from stepflow_cdk.app import build_app  # noqa: E402
from stepflow_cdk.hooks_config import HooksConfig  # noqa: E402
from stepflow_cdk.stack import StepFlowStack  # noqa: E402

SERVICE = "stepflow-hooks"
URLS = ("https://hooks.example.com/stepflow", "https://ops.example.net/in?team=a")
FULL_CONTEXT = {
    "stepflow:bundle": "false",
    "stepflow:hooks": "metrics,eventbridge,webhooks",
    "stepflow:eventBus": "orders-bus",
    "stepflow:webhookUrls": ",".join(URLS),
    "stepflow:hooksStartingPosition": "trim_horizon",
    "stepflow:hooksSettings": '{"STEPFLOW_WEBHOOK_KINDS": "ExecutionFailed,ExecutionTimedOut"}',
}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hooks/key-AbC123"
BUS_ARN = "arn:aws:events:eu-west-1:210987654321:event-bus/central"

Synth = tuple[Template, dict[str, Any], list[str]]


def _synth(context: dict[str, str]) -> Synth:
    app = build_app(context)
    assembly = app.synth()
    template = Template.from_stack(app.node.find_child("StepFlow"))
    findings = [
        f"{m.level} {m.id} {m.entry.data}"
        for m in assembly.get_stack_by_name("StepFlow").messages
        if "AwsSolutions" in str(m.entry.data)
    ]
    return template, template.to_json()["Resources"], findings


@pytest.fixture(scope="module")
def default() -> Synth:
    return _synth({"stepflow:bundle": "false"})


@pytest.fixture(scope="module")
def full() -> Synth:
    return _synth(FULL_CONTEXT)


def _one(resources: dict[str, Any], kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, r["Properties"])
        for key, r in resources.items()
        if r["Type"] == kind and key.startswith(prefix)
    ]
    return found


def _function(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, r["Properties"])
        for key, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]
        .get("Environment", {})
        .get("Variables", {})
        .get("POWERTOOLS_SERVICE_NAME")
        == SERVICE
    ]
    return found


def _mapping(resources: dict[str, Any]) -> dict[str, Any]:
    key, _ = _function(resources)
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": key}
    ]
    return mapping


def _statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    _, function = _function(resources)
    role = function["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def _arn(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def _allow(actions: str | list[str], resource: Any) -> dict[str, Any]:
    return {"Action": actions, "Effect": "Allow", "Resource": resource}


def _base_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dispatcher's grants: tracing, its failure queue, the stream, heads, payloads."""
    table, _ = _one(resources, "AWS::DynamoDB::Table", "StorageLog")
    payloads, _ = _one(resources, "AWS::S3::Bucket", "StoragePayloads")
    failures, _ = _one(resources, "AWS::SQS::Queue", "HookQueuesFailures")
    return [
        _allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        # the mapping reports a record that failed every retry (shard and sequence numbers)
        _allow(["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], _arn(failures)),
        # ListStreams takes no resource (IAM's service reference); the reads name the stream
        _allow("dynamodb:ListStreams", "*"),
        _allow(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            _arn(table, "StreamArn"),
        ),
        _allow("dynamodb:GetItem", _arn(table)),
        _allow("s3:GetObject", {"Fn::Join": ["", [_arn(payloads), "/payloads/*"]]}),
    ]


def test_the_mapping_reads_the_table_stream_in_order_and_reports_partial_failures(
    default: Synth,
) -> None:
    resources = default[1]
    table, _ = _one(resources, "AWS::DynamoDB::Table", "StorageLog")
    failures, _ = _one(resources, "AWS::SQS::Queue", "HookQueuesFailures")
    mapping = _mapping(resources)
    assert mapping.pop("FunctionName")
    assert mapping == {
        "EventSourceArn": _arn(table, "StreamArn"),
        "StartingPosition": "LATEST",
        "BatchSize": 100,
        "ParallelizationFactor": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 6 * 3600,
        "DestinationConfig": {"OnFailure": {"Destination": _arn(failures)}},
        "FilterCriteria": {
            "Filters": [
                {"Pattern": json.dumps({"eventName": ["INSERT", "MODIFY"]}, separators=(",", ":"))}
            ]
        },
    }
    # below the stream's 24 hours: a record is reported before the stream trims it
    assert mapping["MaximumRecordAgeInSeconds"] < 24 * 3600


def test_the_starting_position_is_a_setting(full: Synth) -> None:
    assert _mapping(full[1])["StartingPosition"] == "TRIM_HORIZON"


def _check_dead_letter_queue(template: Template, resources: dict[str, Any], prefix: str) -> None:
    logical_id, queue = _one(resources, "AWS::SQS::Queue", prefix)
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in queue
    (statement,) = [
        s
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": logical_id} in r["Properties"]["Queues"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Dimensions")
        and r["Properties"]["Dimensions"][0]["Value"] == _arn(logical_id, "QueueName")
    ]
    assert [(a["MetricName"], a["Threshold"], a["ComparisonOperator"]) for a in alarms] == [
        ("ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
    ]


def test_the_failure_queue_is_encrypted_tls_only_and_alarmed(default: Synth) -> None:
    from stepflow.aws.sqs_bus import DLQ_RETENTION_SECONDS

    assert DLQ_RETENTION_SECONDS == 14 * 24 * 3600
    _check_dead_letter_queue(default[0], default[1], "HookQueuesFailures")
    assert not [k for k in default[1] if k.startswith("HookQueuesWebhook")]


def test_the_webhook_dead_letter_queue_is_encrypted_tls_only_and_alarmed(full: Synth) -> None:
    _check_dead_letter_queue(full[0], full[1], "HookQueuesFailures")
    _check_dead_letter_queue(full[0], full[1], "HookQueuesWebhookDeliveries")


def test_the_function_errors_throttles_and_lag_are_alarmed(default: Synth) -> None:
    key, _ = _function(default[1])
    metrics = sorted(
        r["Properties"]["MetricName"]
        for r in default[1].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": key}}]
    )
    assert metrics == ["Errors", "IteratorAge", "Throttles"]


def test_the_hooks_lag_behind_the_stream_is_alarmed(default: Synth) -> None:
    key, _ = _function(default[1])
    (alarm,) = [
        r["Properties"]
        for r in default[1].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "IteratorAge"
    ]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": key}}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Maximum", 300, 600_000)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_the_default_dispatcher_runs_metrics_only_with_exact_grants(default: Synth) -> None:
    resources = default[1]
    assert _statements(resources) == _base_statements(resources)
    _, function = _function(resources)
    table, _ = _one(resources, "AWS::DynamoDB::Table", "StorageLog")
    payloads, _ = _one(resources, "AWS::S3::Bucket", "StoragePayloads")
    assert function["Environment"]["Variables"] == {
        "TABLE_NAME": {"Ref": table},
        "PAYLOAD_BUCKET": {"Ref": payloads},
        "STEPFLOW_ACCOUNT_ID": {"Ref": "AWS::AccountId"},
        "STEPFLOW_HOOKS": "metrics",
        "POWERTOOLS_METRICS_NAMESPACE": "StepFlow",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
        "POWERTOOLS_SERVICE_NAME": SERVICE,
    }


def test_every_hook_on_adds_one_grant_on_one_resource_each(full: Synth) -> None:
    resources = full[1]
    secret, _ = _one(resources, "AWS::SecretsManager::Secret", "HookQueuesWebhookKey")
    webhooks, _ = _one(resources, "AWS::SQS::Queue", "HookQueuesWebhookDeliveries")
    bus = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":events:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":event-bus/orders-bus",
            ],
        ]
    }
    assert _statements(resources) == [
        *_base_statements(resources),
        {
            **_allow("events:PutEvents", bus),
            # only StepFlow's own source (the hook's default): it cannot pose as another
            "Condition": {"StringEquals": {"events:source": "stepflow.states"}},
        },
        _allow("secretsmanager:GetSecretValue", {"Ref": secret}),
        _allow("sqs:SendMessage", _arn(webhooks)),
    ]
    variables = _function(resources)[1]["Environment"]["Variables"]
    assert {
        k: v for k, v in variables.items() if k.startswith("STEPFLOW_") and "ACCOUNT" not in k
    } == {
        "STEPFLOW_HOOKS": "metrics,eventbridge,webhooks",
        "STEPFLOW_EVENT_BUS": "orders-bus",
        "STEPFLOW_EVENT_SOURCE": "stepflow.states",
        "STEPFLOW_WEBHOOK_KINDS": "ExecutionFailed,ExecutionTimedOut",
        "STEPFLOW_WEBHOOK_URLS": json.dumps(list(URLS)),
        "STEPFLOW_WEBHOOK_SECRET_ARN": {"Ref": secret},
        "STEPFLOW_WEBHOOK_DLQ_URL": {"Ref": webhooks},
    }
    # the generated secret's value is never in the template; its ARN is an output
    (generated,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::Secret"
        and "webhook" in r["Properties"].get("Description", "")
    ]
    assert (
        "SecretString" not in generated
        and generated["GenerateSecretString"]["PasswordLength"] >= 64
    )
    assert full[0].to_json()["Outputs"]["WebhookSecretArn"]["Value"] == {"Ref": secret}


def test_the_dispatcher_never_writes_the_table_nor_reads_other_secrets(full: Synth) -> None:
    actions = {
        a
        for s in _statements(full[1])
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:ListStreams",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:GetItem",
    }
    signing, _ = _one(full[1], "AWS::SecretsManager::Secret", "SigningMessageKey")
    assert signing not in json.dumps(_statements(full[1]))
    assert not any(a.startswith(("lambda:", "sts:", "iam:", "kms:")) for a in actions)


def test_the_function_is_traced_like_the_others_and_named_as_stepflows_own(default: Synth) -> None:
    resources = default[1]
    _, function = _function(resources)
    assert function["FunctionName"] == "StepFlow-hooks"
    assert function["Handler"] == "handler.handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] == 300
    (layer,) = function["Layers"]
    assert layer["Ref"].startswith("ComputeStepFlowLayer")
    (stepper,) = [
        r["Properties"]["Environment"]["Variables"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME")
        == "stepflow-stepper"
    ]
    # tasks may not target the dispatcher nor its queues
    assert "StepFlow-hooks" in stepper["STEPFLOW_OWN_FUNCTIONS"].split(",")
    assert "HookQueuesFailures" in json.dumps(stepper["STEPFLOW_OWN_QUEUES"])


def test_cdk_nag_reports_nothing_unsuppressed(default: Synth, full: Synth) -> None:
    assert default[2] == []
    assert full[2] == []


def test_a_configured_secret_and_bus_arn_are_granted_as_named() -> None:
    app = cdk.App()
    config = HooksConfig(
        hooks=("eventbridge", "webhooks"),
        event_bus=BUS_ARN,
        webhook_urls=URLS[:1],
        webhook_secret_arn=SECRET_ARN,
        event_source="com.example.orders",
    )
    stack = StepFlowStack(app, "StepFlow", bundle=False, hooks=config)
    resources = Template.from_stack(stack).to_json()["Resources"]
    statements = _statements(resources)
    assert {
        **_allow("events:PutEvents", BUS_ARN),
        "Condition": {"StringEquals": {"events:source": "com.example.orders"}},
    } in statements
    assert _allow("secretsmanager:GetSecretValue", SECRET_ARN) in statements
    assert not [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::Secret"
        and "webhook" in r["Properties"].get("Description", "")
    ]
    variables = _function(resources)[1]["Environment"]["Variables"]
    assert variables["STEPFLOW_EVENT_BUS"] == BUS_ARN
    assert variables["STEPFLOW_WEBHOOK_SECRET_ARN"] == SECRET_ARN


def test_no_hooks_deploys_no_dispatcher() -> None:
    app = build_app({"stepflow:bundle": "false", "stepflow:nag": "false", "stepflow:hooks": "none"})
    resources = Template.from_stack(app.node.find_child("StepFlow")).to_json()["Resources"]
    assert not [k for k in resources if "Hook" in k]
    text = json.dumps(resources)
    assert "StepFlow-hooks" not in text and "STEPFLOW_HOOKS" not in text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hooks": ("metrics", "slack")}, "distinct names"),
        ({"hooks": ("metrics", "metrics")}, "distinct names"),
        ({"hooks": ("webhooks",)}, "at least one URL"),
        ({"hooks": ("webhooks",), "webhook_urls": ("http://plain.example.com/",)}, "https"),
        ({"hooks": ("webhooks",), "webhook_urls": ("https://",)}, "https"),
        (
            {"hooks": ("webhooks",), "webhook_urls": ("https://a.example.com/" + "x" * 2100,)},
            "4 KB",
        ),
        (
            {"hooks": ("webhooks",), "webhook_urls": URLS, "webhook_secret_arn": "hooks/key"},
            "secret ARN",
        ),
        ({"webhook_urls": URLS}, "webhooks hook is off"),
        ({"event_bus": "orders"}, "eventbridge hook is off"),
        ({"hooks": ("eventbridge",), "event_bus": "bad bus"}, "bus name or ARN"),
        ({"hooks": ("eventbridge",), "event_bus": "arn:aws:sqs:eu-west-1:1:q"}, "bus name or ARN"),
        ({"starting_position": "AT_TIMESTAMP"}, "LATEST or TRIM_HORIZON"),
        ({"hooks": ("eventbridge",), "event_source": "aws.states"}, "never aws"),
        ({"event_source": "com.example"}, "eventbridge hook is off"),
        ({"settings": {"STEPFLOW_WEBHOOK_SECRET": "plain"}}, "hooks settings"),
        ({"settings": {"STEPFLOW_WEBHOOK_ATTEMPTS": 3}}, "hooks settings"),
    ],
)
def test_a_bad_setting_fails_synth(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HooksConfig(**settings)


def test_context_lists_arrive_as_text_or_json() -> None:
    app = cdk.App(
        context={
            "stepflow:hooks": '["metrics", "webhooks"]',
            "stepflow:webhookUrls": f" {URLS[0]} , {URLS[1]} ",
            "stepflow:webhookSecretArn": SECRET_ARN,
            "stepflow:hooksSettings": {"STEPFLOW_WEBHOOK_ATTEMPTS": "3"},
        }
    )
    assert HooksConfig.from_context(app.node) == HooksConfig(
        hooks=("metrics", "webhooks"),
        webhook_urls=URLS,
        webhook_secret_arn=SECRET_ARN,
        settings={"STEPFLOW_WEBHOOK_ATTEMPTS": "3"},
    )
    assert HooksConfig.from_context(cdk.App().node) == HooksConfig()


def test_the_app_synthesizes_as_the_cdk_cli_runs_it(tmp_path: Path) -> None:
    """``npx cdk synth`` (``make synth``) runs cdk.json's app with the context as text."""
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({**FULL_CONTEXT, "stepflow:nag": "false"}),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    command = json.loads((ROOT / "cdk.json").read_text())["app"].split()
    assert command[1:] == ["cdk/app.py"]
    subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    template = json.loads((tmp_path / "StepFlow.template.json").read_text())
    mapping = _mapping(template["Resources"])
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert (tmp_path / "manifest.json").exists()


def test_cfn_lint_finds_no_errors_with_every_hook_on(full: Synth) -> None:
    from cfnlint.api import lint_all

    matches = lint_all(json.dumps(full[0].to_json()))
    assert [str(m) for m in matches if m.rule.id.startswith("E")] == []
