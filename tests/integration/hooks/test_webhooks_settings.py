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
