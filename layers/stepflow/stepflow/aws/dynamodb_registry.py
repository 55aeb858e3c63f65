"""The state machine registry on the log's DynamoDB table.

Items (see :mod:`stepflow.runtime.registry` for the documents):

- ``pk = SM#<name>``, ``sk = HEAD | V#<n:08> | A#<alias>``: ``doc`` (S, JSON)
  and ``rev`` (N); heads also carry ``gsi1pk = SM``/``gsi1sk = <name>`` so that
  :meth:`heads` lists state machines through the listing index;
- ``pk = SM#<qualified state machine ARN>``, ``sk = DEFINITION``: the
  ``definition`` (S) executions of that ARN run. The stepper
  Lambda reads it (:func:`stepflow.aws.stepper_lambda.table_definitions`).

Names cannot contain ``:`` and ARNs always do, so the two key spaces never meet.

A definition longer than :data:`INLINE_DEFINITION_BYTES` does not fit in an
item (DynamoDB's 400 KB; AWS accepts definitions of 1 MiB): it is written to
the payload bucket under ``definitions/<sha256>`` *before* the item that
references it, and the item keeps only the key (``definitionKey`` in a
document, ``definitionKey`` (S) beside the ``DEFINITION`` sort key). The
objects are content-addressed and immutable, so a read checks them and a
process caches them; they do not expire (the ``payloads/`` lifecycle rule
does not cover them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import boto3
import orjson

from stepflow.aws.dynamodb_log import LogUnavailableError
from stepflow.aws.topology import LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK
from stepflow.runtime.payloads import PayloadStore, content_key
from stepflow.runtime.registry import HEAD, RegistryConflictError

_HEADS_PARTITION = "SM"
_REF = "definitionKey"

INLINE_DEFINITION_BYTES = 256 * 1024
"""Definitions up to this many UTF-8 bytes stay in their item; longer ones go to S3."""


class DefinitionTooLargeError(ValueError):
    """A definition too large for an item, and no bucket to hold it."""


class DynamoDBRegistry:
    """A :class:`~stepflow.runtime.registry.StateMachineRegistry` on a DynamoDB table.

    ``definitions`` holds the definitions too large for an item (an
    :class:`~stepflow.aws.s3_payloads.S3PayloadStore` on the ``definitions/``
    prefix); without it such a definition raises :class:`DefinitionTooLargeError`.
    """

    def __init__(
        self, table_name: str, *, client: Any = None, definitions: PayloadStore | None = None
    ) -> None:
        self.table = table_name
        self._client: Any = client or boto3.client("dynamodb")
        self._store = definitions
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, str] = OrderedDict()

    def get(self, name: str, sk: str) -> dict[str, Any] | None:
        """The document, or None (strongly consistent)."""
        item = self._call("get_item", Key=_key(name, sk), ConsistentRead=True).get("Item")
        return None if item is None else self._doc(item)

    def put(self, name: str, sk: str, doc: dict[str, Any], *, expected_rev: int | None) -> None:
        """Conditional put on the stored ``rev`` (a large definition written to S3 first)."""
        definition = doc.get("definition")
        if isinstance(definition, str) and _too_large(definition):
            doc = {k: v for k, v in doc.items() if k != "definition"}
            doc[_REF] = self._offload(definition)
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
        page = [(item["sk"]["S"], self._doc(item)) for item in items[:limit]]
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
        page = [self._doc(item) for item in items[:limit]]
        return page, (items[limit - 1][LIST_INDEX_SK]["S"] if len(items) > limit else None)

    def put_definition(self, arn: str, definition: str) -> None:
        """Store the definition (see the Protocol for when one is replaced)."""
        item = {**_key(arn, "DEFINITION")}
        if _too_large(definition):
            item[_REF] = {"S": self._offload(definition)}
        else:
            item["definition"] = {"S": definition}
        self._call("put_item", Item=item)

    def definition(self, arn: str) -> str | None:
        """The definition stored for exactly ``arn``."""
        response = self._call("get_item", Key=_key(arn, "DEFINITION"), ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None
        if _REF in item:
            return self._load(str(item[_REF]["S"]))
        return str(item["definition"]["S"])

    def _doc(self, item: dict[str, Any]) -> dict[str, Any]:
        doc = _doc(item)
        key = doc.pop(_REF, None)
        if isinstance(key, str):
            doc["definition"] = self._load(key)
        return doc

    def _offload(self, definition: str) -> str:
        if self._store is None:
            raise DefinitionTooLargeError(
                f"a definition of {len(definition.encode())} bytes needs the payload bucket "
                "(PAYLOAD_BUCKET): it does not fit in a DynamoDB item"
            )
        data = definition.encode()
        key = content_key(data)
        with self._lock:
            known = key in self._cache  # read or written by this process: it is stored
        if not known:
            key = self._store.put(data)
        self._remember(key, definition)
        return key

    def _load(self, key: str) -> str:
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self._store is None:
            raise DefinitionTooLargeError(f"definition {key} is in S3 and no bucket is configured")
        definition = self._store.get(key).decode()
        self._remember(key, definition)
        return definition

    def _remember(self, key: str, definition: str) -> None:
        with self._lock:
            self._cache[key] = definition
            self._cache.move_to_end(key)
            while len(self._cache) > 16:
                self._cache.popitem(last=False)

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


def _too_large(definition: str) -> bool:
    return len(definition.encode("utf-8", "surrogatepass")) > INLINE_DEFINITION_BYTES


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(item["doc"]["S"])
    return doc
