"""The webhooks' settings and dead letters (aws/hooks_wiring.py): per-target secrets,
target parsing, dead-letter size and memory caps, no secrets in logs."""

from __future__ import annotations

import json

import pytest
from stepflow.aws.hooks_wiring import HookSettings, hooks_from_settings
from stepflow.integrations.webhooks import WebhookHook

from tests.moto_env import offline_aws


def test_a_json_target_names_its_own_secret_arn() -> None:
    boto3 = pytest.importorskip("boto3")
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="target-a", SecretString="secret-a")["ARN"]
        urls = [
            {"url": "https://a.example/h", "secretArn": arn},
            {"url": "https://b.example/h", "secret": "secret-b"},
        ]
        [hook] = hooks_from_settings(
            {"STEPFLOW_HOOKS": "webhooks", "STEPFLOW_WEBHOOK_URLS": json.dumps(urls)},
            {"secretsmanager": secrets},
        )
    assert isinstance(hook, WebhookHook)
    assert [t.secret for t in hook.targets] == [b"secret-a", b"secret-b"]
    assert hook.secret == b""  # no shared secret needed


def test_a_target_without_a_secret_needs_the_shared_one() -> None:
    urls = [{"url": "https://a.example/h", "secret": "x"}, {"url": "https://b.example/h"}]
    settings = HookSettings.model_validate(
        {"STEPFLOW_HOOKS": "webhooks", "STEPFLOW_WEBHOOK_URLS": json.dumps(urls)}
    )
    with pytest.raises(ValueError, match="SECRET"):
        hooks_from_settings(settings, {})


def test_a_huge_body_s_dead_letter_message_fits_sqs() -> None:
    boto3 = pytest.importorskip("boto3")
    from stepflow.aws.hooks_wiring import SqsDeadLetter
    from stepflow.integrations.webhooks import DEAD_LETTER_LIMIT

    output = json.dumps({"text": '"\\\u00e9' * 80_000})  # JSON in JSON: escapes multiply
    body = json.dumps({"id": "arn#9", "event": {"output": output}})
    record = {"url": "https://a.example/h", "deliveryId": "arn#9", "kind": "ExecutionSucceeded"}
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        SqsDeadLetter(queue, sqs).put({**record, "reason": "HTTP 500", "body": body})
        SqsDeadLetter(queue, sqs).put({**record, "reason": "HTTP 500", "body": "{}"})
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    big, small = sorted((json.loads(m["Body"]) for m in messages), key=len, reverse=True)
    assert all(len(m["Body"].encode()) <= DEAD_LETTER_LIMIT for m in messages)
    assert big["deliveryId"] == "arn#9" and big["truncated"] is True
    assert big["bodyBytes"] == len(body.encode()) and body.startswith(big["body"])
    assert len(big["body"]) > 50_000
    assert small["body"] == "{}" and "truncated" not in small


SLACK = "https://hooks.slack.example/services/T000/B000/TOPSECRET?token=QUERYSECRET"


def test_no_dead_letter_queue_logs_no_secret_and_keeps_a_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from stepflow.hooks import ExecutionInfo, HookEvent
    from stepflow.integrations.http_port import HttpProblem, HttpRequest, HttpResponse

    class Refusing:
        sent = 0

        def send(self, request: HttpRequest) -> HttpResponse:
            Refusing.sent += 1
            path = request.url.split("/", 3)[3]
            raise HttpProblem(
                "connection", f"Max retries exceeded with url: /{path} ({request.url})"
            )

    [hook] = hooks_from_settings(
        {
            "STEPFLOW_HOOKS": "webhooks",
            "STEPFLOW_WEBHOOK_URLS": SLACK,
            "STEPFLOW_WEBHOOK_SECRET": "s",
            "STEPFLOW_WEBHOOK_ATTEMPTS": "1",
        },
        {},
    )
    assert isinstance(hook, WebhookHook)
    hook.http = Refusing()
    info = ExecutionInfo(
        "arn:aws:states:us-east-1:1:execution:m:e", "arn:aws:states:us-east-1:1:stateMachine:m"
    )
    with caplog.at_level("ERROR"):
        for n in range(1000):
            hook.handle([HookEvent("ExecutionSucceeded", info, n, 0.0, {"id": n})])
    records = hook.dead_letter.records  # type: ignore[attr-defined]
    assert 0 < len(records) <= 100
    assert "TOPSECRET" not in caplog.text and "QUERYSECRET" not in caplog.text
    assert "https://hooks.slack.example" in caplog.text
    assert all("SECRET" not in r["reason"] for r in records)
    assert records[-1]["url"] == SLACK  # the record itself keeps the URL to redeliver to


def _targets(urls: str, **extra: str) -> list[tuple[str, frozenset[str] | None]]:
    settings = HookSettings.model_validate({"STEPFLOW_WEBHOOK_URLS": urls, **extra})
    return [(t.url, t.kinds) for t in settings.targets()]


def test_a_url_with_a_comma_is_given_in_the_json_list_form() -> None:
    url = "https://a.example/h?tags=a,b"
    got = _targets(
        json.dumps([url, "https://b.example/h"]), STEPFLOW_WEBHOOK_KINDS="ExecutionFailed"
    )
    assert got == [
        (url, frozenset({"ExecutionFailed"})),
        ("https://b.example/h", frozenset({"ExecutionFailed"})),
    ]


def test_a_kinds_string_is_a_list_of_kinds_not_of_characters() -> None:
    urls = [{"url": "https://a.example/h", "kinds": "ExecutionFailed, ExecutionTimedOut"}]
    assert _targets(json.dumps(urls)) == [
        ("https://a.example/h", frozenset({"ExecutionFailed", "ExecutionTimedOut"}))
    ]


@pytest.mark.parametrize(
    ("urls", "extra"),
    [
        (json.dumps([{"url": "https://a.example/h", "kinds": ["ExecutionFailled"]}]), {}),
        ("https://a.example/h", {"STEPFLOW_WEBHOOK_KINDS": "ExecutionSucceded"}),
        (json.dumps([{"url": "https://a.example/h", "kinds": 3}]), {}),
        (json.dumps([{"kinds": ["ExecutionFailed"]}]), {}),
        (json.dumps({"url": "https://a.example/h"}), {}),
        ("[not json", {}),
        ("ftp://a.example/h", {}),
        (json.dumps(["https://[::1/h"]), {}),
    ],
)
def test_malformed_targets_and_unknown_kinds_are_refused(urls: str, extra: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        _targets(urls, **extra)
