"""One contract for every StateMachineRegistry, and for the logs' execution listing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws
from stepflow.aws import DynamoDBLog, create_table
from stepflow.aws.dynamodb_registry import DynamoDBRegistry
from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryLog
from stepflow.runtime.registry import (
    HEAD,
    InMemoryRegistry,
    RegistryConflictError,
    StateMachineRegistry,
    unqualified,
)

ENV = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:"


@pytest.fixture(params=["memory", "dynamodb"])
def ports(request: pytest.FixtureRequest) -> Iterator[tuple[StateMachineRegistry, CoordinationLog]]:
    if request.param == "memory":
        yield InMemoryRegistry(), InMemoryLog()
        return
    with mock.patch.dict(os.environ, ENV), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "t")
        yield DynamoDBRegistry("t", client=client), DynamoDBLog("t", client=client)


def test_conditional_writes(ports: tuple[StateMachineRegistry, Any]) -> None:
    registry, _ = ports
    assert registry.get("M", HEAD) is None
    registry.put("M", HEAD, {"rev": 1, "x": "a"}, expected_rev=None)
    with pytest.raises(RegistryConflictError):
        registry.put("M", HEAD, {"rev": 1, "x": "b"}, expected_rev=None)
    with pytest.raises(RegistryConflictError):
        registry.put("M", HEAD, {"rev": 3, "x": "b"}, expected_rev=2)
    with pytest.raises(RegistryConflictError):
        registry.put("M", "V#00000001", {"rev": 2}, expected_rev=1)  # absent
    registry.put("M", HEAD, {"rev": 2, "x": "b"}, expected_rev=1)
    assert registry.get("M", HEAD) == {"rev": 2, "x": "b"}
    registry.delete("M", HEAD)
    registry.delete("M", HEAD)
    assert registry.get("M", HEAD) is None


def test_query_and_heads_page_in_key_order(ports: tuple[StateMachineRegistry, Any]) -> None:
    registry, _ = ports
    for n in (3, 1, 2, 4):
        registry.put("M", f"V#{n:08d}", {"rev": 1, "n": n}, expected_rev=None)
    registry.put("M", "A#live", {"rev": 1}, expected_rev=None)
    page, after = registry.query("M", "V#", limit=3)
    assert [doc["n"] for _, doc in page] == [1, 2, 3] and after == "V#00000003"
    page, after = registry.query("M", "V#", after=after, limit=3)
    assert [doc["n"] for _, doc in page] == [4] and after is None
    for name in ("c", "a", "b"):
        registry.put(name, HEAD, {"rev": 1, "name": name}, expected_rev=None)
    registry.put("M", HEAD, {"rev": 1, "name": "M"}, expected_rev=None)
    heads, after = registry.heads(limit=2)
    assert [h["name"] for h in heads] == ["M", "a"]
    heads, after = registry.heads(after=after, limit=2)
    assert [h["name"] for h in heads] == ["b", "c"] and after is None


def test_definitions_by_exact_arn(ports: tuple[StateMachineRegistry, Any]) -> None:
    registry, _ = ports
    registry.put_definition(SM + "M:1", '{"v": 1}')
    assert registry.definition(SM + "M:1") == '{"v": 1}'
    assert registry.definition(SM + "M") is None


def record(name: str, machine: str, start: float, status: str = "RUNNING") -> ExecutionRecord:
    return ExecutionRecord(
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:{name}",
        state_machine_arn=machine,
        name=name,
        input={},
        status=status,
        seq=1,
        state={},
        start_date=start,
    )


def test_list_executions(ports: tuple[Any, CoordinationLog]) -> None:
    _, log = ports
    log.create(record("a", SM + "M:r1", 10.0, "SUCCEEDED"), [])
    log.create(record("b", SM + "M:2", 30.0), [])
    log.create(record("c", SM + "M", 20.0), [])
    log.create(record("d", SM + "Other", 40.0), [])
    log.create(record("b#child", SM + "M:2", 50.0), [])  # a child partition: never listed
    page, token = log.list_executions(SM + "M", limit=2)
    assert [r.name for r in page] == ["b", "c"] and token
    page, token = log.list_executions(SM + "M", next_token=token, limit=2)
    assert [r.name for r in page] == ["a"] and token is None
    running, _ = log.list_executions(SM + "M", status="RUNNING")
    assert [r.name for r in running] == ["b", "c"]
    with pytest.raises(ValueError):
        log.list_executions(SM + "M", next_token="not a token!")


def test_unqualified() -> None:
    assert unqualified(SM + "M:3") == SM + "M" == unqualified(SM + "M")


def test_the_stepper_lambda_reads_what_the_registry_stores() -> None:
    from stepflow.aws.stepper_lambda import table_definitions

    with mock.patch.dict(os.environ, ENV), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "t")
        definition = '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'
        DynamoDBRegistry("t", client=client).put_definition(SM + "M:1", definition)
        assert table_definitions(client, "t")(SM + "M:1").root.start_at == "P"
        with pytest.raises(LookupError):
            table_definitions(client, "t")(SM + "M:2")


def test_a_definition_too_large_for_an_item_goes_to_s3_once_and_reads_back_exactly() -> None:
    from stepflow.aws.dynamodb_registry import DefinitionTooLargeError
    from stepflow.aws.s3_payloads import S3PayloadStore
    from stepflow.aws.stepper_lambda import table_definitions
    from stepflow.aws.topology import DEFINITION_PREFIX

    comment = "é" * 300_000  # 600,000 bytes as UTF-8: over DynamoDB's 400 KB item
    state = {"Type": "Pass", "Comment": comment, "End": True}
    definition = json.dumps({"StartAt": "P", "States": {"P": state}}, ensure_ascii=False)
    with mock.patch.dict(os.environ, ENV), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(client, "t")
        s3.create_bucket(Bucket="defs")
        store = S3PayloadStore("defs", client=s3, prefix=DEFINITION_PREFIX)
        puts: list[int] = []
        counting = mock.Mock(wraps=store)
        counting.put.side_effect = lambda data: puts.append(len(data)) or store.put(data)
        registry = DynamoDBRegistry("t", client=client, definitions=counting)
        registry.put("M", HEAD, {"rev": 1, "definition": definition}, expected_rev=None)
        registry.put_definition(SM + "M:1", definition)
        registry.put("M", HEAD, {"rev": 2, "definition": definition}, expected_rev=1)
        assert puts == [len(definition.encode())]  # written once; the same bytes known since
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="defs")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith(DEFINITION_PREFIX)
        item = client.get_item(TableName="t", Key={"pk": {"S": "SM#M"}, "sk": {"S": HEAD}})
        assert comment not in item["Item"]["doc"]["S"]
        # a fresh registry (another process) reads it back from S3
        fresh = DynamoDBRegistry("t", client=client, definitions=store)
        assert fresh.get("M", HEAD) == {"rev": 2, "definition": definition}
        assert fresh.heads()[0] == [{"rev": 2, "definition": definition}]
        assert fresh.definition(SM + "M:1") == definition
        assert table_definitions(client, "t", store)(SM + "M:1").root.start_at == "P"
        # small definitions stay in the item
        registry.put_definition(SM + "M:2", '{"StartAt": "P"}')
        assert len(s3.list_objects_v2(Bucket="defs")["Contents"]) == 1
        with pytest.raises(DefinitionTooLargeError):
            DynamoDBRegistry("t", client=client).put_definition(SM + "M:3", definition)
