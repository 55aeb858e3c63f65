"""The local stack's DynamoDB (moto's server) under concurrent requests.

GIVEN the local stack on moto, WHEN several clients write transactions to one
table at the same time (as the API, the stepper pollers and the runners of a
300-item Map do), THEN no request fails with an internal error. moto copies
every table a transaction touches, without a lock, to roll it back; a write
landing during that copy made the copy raise, the request answered 500 and
the stepper's message came back only after its visibility timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from stepflow.local import LocalStack
from stepflow.local.stack import CREDENTIALS, REGION

WRITERS = 8
SEEDS = 1000
WRITES = 40


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}, pollers=0, runners=0) as running:
        yield running


def test_concurrent_transactions_from_separate_clients_never_fail(stack: LocalStack) -> None:
    def client() -> object:
        return boto3.client(
            "dynamodb",
            endpoint_url=stack.aws_endpoint,
            region_name=REGION,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            **CREDENTIALS,
        )

    seed: object = client()
    table = "concurrency"
    seed.create_table(  # type: ignore[attr-defined]
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(SEEDS):
        seed.put_item(  # type: ignore[attr-defined]
            TableName=table, Item={"pk": {"S": f"seed{i}"}, "v": {"S": "x" * 200}}
        )
    errors: list[str] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        own = client()
        for i in range(WRITES):
            put = {"Put": {"TableName": table, "Item": {"pk": {"S": f"w{n}-{i}"}}}}
            try:
                own.transact_write_items(TransactItems=[put])  # type: ignore[attr-defined]
            except Exception as exc:  # every failure counts
                with lock:
                    errors.append(str(exc)[:120])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    count = seed.scan(TableName=table, Select="COUNT")["Count"]  # type: ignore[attr-defined]
    assert count == SEEDS + WRITERS * WRITES
