"""The deployed key source on moto's Secrets Manager: versions as keys, rotation, startup errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.aws.settings import Settings
from stepflow.aws.signing_keys import (
    MAX_AGE_SECONDS,
    REFRESH_SECONDS,
    SecretsManagerKeys,
    SigningKeyError,
)
from stepflow.aws.wiring import build
from stepflow.runtime import Message
from stepflow.runtime.signing import ForgedMessageError, MessageSigner

from tests.moto_env import offline_aws

MESSAGE = Message("arn:aws:states:us-east-1:1:execution:M:e", "m-1", "event", {"type": "Continue"})


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        yield boto3.client("secretsmanager", region_name="us-east-1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_rotation_is_picked_up_and_the_previous_key_still_verifies(secrets: Any) -> None:
    arn = secrets.create_secret(Name="stepflow-key", SecretString="a" * 64)["ARN"]
    clock = Clock()
    # GIVEN two functions reading the secret at their cold start
    sender_keys = SecretsManagerKeys(arn, client=secrets, clock=clock)
    receiver_keys = SecretsManagerKeys(arn, client=secrets, clock=clock)
    sender, receiver = MessageSigner(sender_keys), MessageSigner(receiver_keys)
    before = sender.sign(MESSAGE)
    assert receiver.verify(before) == MESSAGE
    # WHEN the secret is rotated and a new function (cold start) signs with the new version
    secrets.put_secret_value(SecretId=arn, SecretString="b" * 64)
    fresh = MessageSigner(SecretsManagerKeys(arn, client=secrets, clock=clock))
    after = fresh.sign(MESSAGE)
    assert after["key_id"] != before["key_id"]
    # THEN the new function still accepts what was signed before the rotation
    assert fresh.verify(before) == MESSAGE
    # AND a warm function meeting the new key id reads the secret again, once, and accepts it
    clock.now += REFRESH_SECONDS
    assert receiver.verify(after) == MESSAGE and receiver_keys.reads == 2
    assert receiver.verify(after) == MESSAGE and receiver_keys.reads == 2
    # AND a function that only signs moves to the new key once its copy is old
    assert sender.sign(MESSAGE)["key_id"] == before["key_id"]
    clock.now += MAX_AGE_SECONDS
    assert sender.sign(MESSAGE)["key_id"] == after["key_id"]


def test_unknown_key_ids_cannot_flood_the_secret_with_reads(secrets: Any) -> None:
    arn = secrets.create_secret(Name="stepflow-key", SecretString="a" * 64)["ARN"]
    keys = SecretsManagerKeys(arn, client=secrets, clock=Clock())
    signer = MessageSigner(keys)
    forger = MessageSigner.random()
    for _ in range(50):
        with pytest.raises(ForgedMessageError, match="unknown key"):
            signer.verify(forger.sign(MESSAGE))
    assert keys.reads == 2  # the cold start's and one refresh: the next waits REFRESH_SECONDS


def test_a_missing_or_short_secret_is_a_startup_error(secrets: Any) -> None:
    with pytest.raises(SigningKeyError, match="ResourceNotFoundException"):
        SecretsManagerKeys("arn:aws:secretsmanager:us-east-1:1:secret:nope", client=secrets)
    short = secrets.create_secret(Name="short", SecretString="too-short")["ARN"]
    with pytest.raises(SigningKeyError, match="32 bytes"):
        SecretsManagerKeys(short, client=secrets)


def test_the_wiring_signs_with_the_secret_it_is_given(secrets: Any) -> None:
    arn = secrets.create_secret(Name="stepflow-key", SecretString="c" * 64)["ARN"]
    version = secrets.get_secret_value(SecretId=arn)["VersionId"]
    settings = Settings.from_environ(
        {"TABLE_NAME": "t", "QUEUE_URL": "https://q", "STEPFLOW_SIGNING_SECRET_ARN": arn}
    )
    wiring = build(settings, clients={"secretsmanager": secrets})
    assert wiring.signer.sign(MESSAGE)["key_id"] == version
    assert wiring.bus.signer is wiring.signer
    # the same key, read by another function, verifies it
    other = build(settings, clients={"secretsmanager": secrets})
    assert other.signer.verify(wiring.signer.sign(MESSAGE)) == MESSAGE


def test_a_staged_key_is_accepted_everywhere_before_anyone_signs_with_it(secrets: Any) -> None:
    arn = secrets.create_secret(Name="stepflow-key", SecretString="a" * 64)["ARN"]
    # GIVEN the next key staged as AWSPENDING (step 1 of a rotation)
    staged = secrets.put_secret_value(
        SecretId=arn, SecretString="p" * 64, VersionStages=["AWSPENDING"]
    )["VersionId"]
    warm = MessageSigner(SecretsManagerKeys(arn, client=secrets, clock=Clock()))
    # WHEN it is promoted (step 2) and a function signs with it
    current = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    (old,) = [v for v, stages in current.items() if "AWSCURRENT" in stages]
    secrets.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=staged, RemoveFromVersionId=old
    )
    fresh = MessageSigner(SecretsManagerKeys(arn, client=secrets, clock=Clock()))
    signed = fresh.sign(MESSAGE)
    assert signed["key_id"] == staged
    # THEN the function that read the secret before the promotion accepts it already
    assert warm.verify(signed) == MESSAGE
    assert warm.source.keys().current.key_id == old
