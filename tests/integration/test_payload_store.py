"""The PayloadStore contract, run against the in-memory twin and S3PayloadStore on moto.

moto runs in-process (``mock_aws``): no network, no real credentials.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.aws.topology import PAYLOAD_BUCKET_ENV_VAR, PAYLOAD_PREFIX
from stepflow.runtime.payloads import (
    InMemoryPayloadStore,
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStore,
    PayloadStoreUnavailableError,
    content_key,
)

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

from stepflow.aws.s3_payloads import S3PayloadStore  # noqa: E402  (after the guards)

BUCKET = "stepflow-payloads-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's in-process S3 with one bucket, for the whole module."""
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> PayloadStore:
    if request.param == "memory":
        return InMemoryPayloadStore()
    return S3PayloadStore(BUCKET, client=request.getfixturevalue("s3"))


# -- contract ----------------------------------------------------------------------


def test_put_returns_the_sha256_and_get_returns_the_bytes(store: PayloadStore) -> None:
    # GIVEN binary, empty and large payloads
    payloads = [b"\x00\xff binary \xe2\x9c\x93", b"", os.urandom(600_000)]
    # WHEN each is stored THEN its key is its SHA-256, and it reads back byte for byte
    for data in payloads:
        key = store.put(data)
        assert key == hashlib.sha256(data).hexdigest() == content_key(data)
        assert store.get(key) == data


def test_putting_the_same_bytes_again_is_idempotent(store: PayloadStore) -> None:
    # GIVEN a stored payload
    first = store.put(b'{"big": "payload"}')
    # WHEN the same bytes are written again (a retried commit) and other bytes too
    again = store.put(b'{"big": "payload"}')
    other = store.put(b'{"big": "payload!"}')
    # THEN the retry yields the same key and content; other bytes get another key
    assert again == first != other
    assert store.get(first) == b'{"big": "payload"}'
    assert store.get(other) == b'{"big": "payload!"}'


@pytest.mark.parametrize("key", ["0" * 64, "not-a-key", "", "../" + "a" * 61, "A" * 64])
def test_a_missing_or_malformed_key_raises_not_found(store: PayloadStore, key: str) -> None:
    with pytest.raises(PayloadNotFoundError) as caught:
        store.get(key)
    assert caught.value.key == key and "no payload" in str(caught.value)


# -- S3 only -----------------------------------------------------------------------


def test_s3_objects_live_under_the_prefix_once_per_content(s3: Any) -> None:
    # GIVEN a store writing the same payload twice
    store = S3PayloadStore(BUCKET, client=s3, prefix="objects-once/")
    key = store.put(b"x" * 1000)
    store.put(b"x" * 1000)
    # THEN the bucket holds one object, under <prefix><sha256>
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="objects-once/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(f"objects-once/{key}", 1000)]
    assert S3PayloadStore(BUCKET, client=s3).prefix == PAYLOAD_PREFIX


def test_s3_a_tampered_object_is_detected(s3: Any) -> None:
    # GIVEN an object whose bytes were replaced behind the store's back
    store = S3PayloadStore(BUCKET, client=s3)
    key = store.put(b"original")
    s3.put_object(Bucket=BUCKET, Key=PAYLOAD_PREFIX + key, Body=b"tampered")
    # WHEN read THEN a clear error, not the wrong bytes
    with pytest.raises(PayloadCorruptError, match=key):
        store.get(key)


def test_s3_infrastructure_errors_are_wrapped(s3: Any) -> None:
    # GIVEN a client whose every call is throttled, and a bucket that does not exist
    class Throttled:
        def __getattr__(self, operation: str) -> Any:
            def fail(**_: Any) -> Any:
                error = {"Error": {"Code": "SlowDown", "Message": "slow down"}}
                raise botocore_exceptions.ClientError(error, operation)

            return fail

    for store in (
        S3PayloadStore(BUCKET, client=Throttled()),
        S3PayloadStore("no-such-bucket-here", client=s3),
    ):
        # WHEN it is used THEN PayloadStoreUnavailableError, chained to the client error
        with pytest.raises(PayloadStoreUnavailableError) as caught:
            store.put(b"data")
        assert isinstance(caught.value.__cause__, botocore_exceptions.ClientError)
    with pytest.raises(PayloadStoreUnavailableError):
        S3PayloadStore(BUCKET, client=Throttled()).get("0" * 64)


def test_s3_store_from_the_environment(s3: Any) -> None:
    # GIVEN no bucket variable THEN no store; GIVEN one THEN a store on that bucket
    assert S3PayloadStore.from_environment({}, client=s3) is None
    assert S3PayloadStore.from_environment({PAYLOAD_BUCKET_ENV_VAR: ""}, client=s3) is None
    store = S3PayloadStore.from_environment({PAYLOAD_BUCKET_ENV_VAR: BUCKET}, client=s3)
    assert store is not None and store.bucket == BUCKET
    assert store.get(store.put(b"env")) == b"env"
    # AND an empty bucket name given directly is refused clearly
    with pytest.raises(ValueError, match="bucket"):
        S3PayloadStore("", client=s3)


def test_s3_client_is_created_lazily_from_the_environment(s3: Any) -> None:
    store = S3PayloadStore(BUCKET)
    assert S3PayloadStore(BUCKET, client=s3).get(store.put(b"lazy")) == b"lazy"
