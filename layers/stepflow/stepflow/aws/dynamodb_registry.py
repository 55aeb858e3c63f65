"""The state machine registry on the log's DynamoDB table.

Items (see :mod:`stepflow.runtime.registry` for the documents):

- ``pk = SM#<name>``, ``sk = HEAD | V#<n:08> | A#<alias>``: ``doc`` (S, JSON)
  and ``rev`` (N); heads also carry ``gsi1pk = SM``/``gsi1sk = <name>`` so that
  :meth:`heads` lists state machines through the listing index;
- ``pk = SM#<qualified state machine ARN>``, ``sk = DEFINITION``: the
  ``definition`` (S) executions of that ARN run. The stepper
  Lambda reads it (:func:`stepflow.aws.stepper_lambda.table_definitions`).

Names cannot contain ``:`` and ARNs always do, so the two key spaces never meet.
"""

from __future__ import annotations

from typing import Any

import boto3
import orjson

from stepflow.aws.dynamodb_log import LogUnavailableError
from stepflow.aws.topology import LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK
from stepflow.runtime.registry import HEAD, RegistryConflictError

_HEADS_PARTITION = "SM"


class DynamoDBRegistry:
    """A :class:`~stepflow.runtime.registry.StateMachineRegistry` on a DynamoDB table."""

    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self.table = table_name
        self._client: Any = client or boto3.client("dynamodb")

    def get(self, name: str, sk: str) -> dict[str, Any] | None:
        """The document, or None (strongly consistent)."""
        item = self._call("get_item", Key=_key(name, sk), ConsistentRead=True).get("Item")
        return None if item is None else _doc(item)

    def put(self, name: str, sk: str, doc: dict[str, Any], *, expected_rev: int | None) -> None:
        """Conditional put on the stored ``rev``."""
        item = {**_key(name, sk), "doc": {"S": orjson.dumps(doc).decode()}}
        item["rev"] = {"N": str(int(doc.get("rev", 0)))}
        if sk == HEAD:
            item[LIST_INDEX_PK] = {"S": _HEADS_PARTITION}
            item[LIST_INDEX_SK] = {"S": name}
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected_rev is not None:
            condition = {
                "ConditionExpression": "#rev = :rev",
                "ExpressionAttributeNames": {"#rev": "rev"},
                "ExpressionAttributeValues": {":rev": {"N": str(expected_rev)}},
            }
        try:
            self._call("put_item", Item=item, **condition)
        except _Rejected:
            raise RegistryConflictError(name, sk) from None

    def delete(self, name: str, sk: str) -> None:
        """Remove one document."""
        self._call("delete_item", Key=_key(name, sk))

    def query(
        self, name: str, prefix: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """A page of documents whose key starts with ``prefix``, in key order."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": f"SM#{name}"}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = _key(name, after)
        items = self._page("query", kwargs, limit)
        page = [(item["sk"]["S"], _doc(item)) for item in items[:limit]]
        return page, (page[-1][0] if len(items) > limit else None)

    def heads(
        self, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Head documents by name, through the listing index."""
        kwargs: dict[str, Any] = {
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "#gpk = :gpk",
            "ExpressionAttributeNames": {"#gpk": LIST_INDEX_PK},
            "ExpressionAttributeValues": {":gpk": {"S": _HEADS_PARTITION}},
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {
                **_key(after, HEAD),
                LIST_INDEX_PK: {"S": _HEADS_PARTITION},
                LIST_INDEX_SK: {"S": after},
            }
        items = self._page("query", kwargs, limit)
        page = [_doc(item) for item in items[:limit]]
        return page, (items[limit - 1][LIST_INDEX_SK]["S"] if len(items) > limit else None)

    def put_definition(self, arn: str, definition: str) -> None:
        """Store the definition (see the Protocol for when one is replaced)."""
        item = {**_key(arn, "DEFINITION"), "definition": {"S": definition}}
        self._call("put_item", Item=item)

    def definition(self, arn: str) -> str | None:
        """The definition stored for exactly ``arn``."""
        response = self._call("get_item", Key=_key(arn, "DEFINITION"), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else str(item["definition"]["S"])

    def _page(self, operation: str, kwargs: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit + 1`` items (the extra one says whether a next page exists)."""
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            response = self._call(operation, **kwargs, Limit=limit + 1 - len(items))
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(
                TableName=self.table, **kwargs
            )
            return response
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionConflictException"):
                raise _Rejected(code) from exc
            if type(exc).__module__.startswith("botocore"):
                raise LogUnavailableError(f"DynamoDB {operation} failed: {exc}") from exc
            raise


class _Rejected(Exception):
    """A write refused by its condition."""


def _key(name: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": f"SM#{name}"}, "sk": {"S": sk}}


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(item["doc"]["S"])
    return doc
