"""A distributed Map's ``ItemReader`` over any :class:`~stepflow.runtime.object_store.ObjectStore`.

:class:`StoreItemSource` implements the :class:`~stepflow.runtime.map_io.ItemSource`
port: ``s3:getObject`` with ``ReaderConfig.InputType`` JSON (the default), JSONL,
CSV or MANIFEST (an S3 inventory), and ``s3:listObjectsV2`` (one item per object,
in AWS's shape; pages are read one at a time, each once, and no further page is
read once ``MaxItems`` items were given). :class:`MemoryItemSource` is its
in-memory twin.

Own resources: a reader aimed at one of StepFlow's buckets (the ``Bucket``
parameter, any parameter naming one, or an inventory manifest's destination
bucket) is refused as a task call would be (:mod:`stepflow.runtime.targets`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from itertools import islice
from typing import Any

from stepflow.runtime import item_formats as formats
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec
from stepflow.runtime.object_store import MemoryObjectStore, ObjectStore, ObjectStoreError
from stepflow.runtime.targets import OWN_TARGET_CAUSE, OwnResources, ScanLimitError

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
INPUT_TYPES = ("JSON", "JSONL", "CSV", "MANIFEST")
"""``ReaderConfig.InputType`` values read through ``s3:getObject``."""


def reader_action(resource: str) -> str:
    """``getObject`` or ``listObjectsV2`` of an ItemReader ``resource`` in any partition."""
    head, _, action = resource.rpartition(":")
    if not head.startswith("arn:aws") or not head.endswith(":states:::s3"):
        raise ItemReaderError(f"Unsupported ItemReader resource '{resource}'.")
    if action not in ("getObject", "listObjectsV2"):
        raise ItemReaderError(f"Unsupported ItemReader resource '{resource}'.")
    return action


class StoreItemSource:
    """Reads items through an object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, own: OwnResources | None = None) -> None:
        self.store = store
        self.own = own or OwnResources()

    def read(self, spec: ReaderSpec) -> Iterator[Any]:
        """The items of ``spec``, lazily, at most ``MaxItems`` of them."""
        limit = formats.max_items(spec.max_items)
        action = reader_action(spec.resource)
        parameters = spec.parameters if isinstance(spec.parameters, dict) else {}
        self._guard(parameters)
        if action == "listObjectsV2":
            items = self._listed(parameters)
        else:
            items = self._object_items(parameters, spec.reader_config or {})
        return islice(_failing_as_reader(items), limit)

    def _object_items(self, parameters: dict[str, Any], config: dict[str, Any]) -> Iterator[Any]:
        input_type = config.get("InputType", "JSON")
        if input_type not in INPUT_TYPES:
            raise ItemReaderError(f"Unsupported InputType value '{input_type}'.")
        if input_type == "MANIFEST":
            yield from self._inventory(parameters)
            return
        body = self.store.get_object(parameters)
        if input_type == "JSON":
            yield from formats.json_items(body, pointer=config.get("ItemsPointer"))
        elif input_type == "JSONL":
            yield from formats.jsonl_items(body)
        else:
            yield from formats.csv_items(
                body,
                config.get("CSVHeaderLocation", "FIRST_ROW"),
                config.get("CSVHeaders"),
                config.get("CSVDelimiter", "COMMA"),
            )

    def _inventory(self, parameters: dict[str, Any]) -> Iterator[Any]:
        bucket, keys, fields = formats.manifest_files(self.store.get_object(parameters))
        self._guard({"Bucket": bucket})
        for key in keys:
            body = self.store.get_object({"Bucket": bucket, "Key": key})
            yield from formats.inventory_items(body, fields, gzipped=key.endswith(".gz"))

    def _listed(self, parameters: dict[str, Any]) -> Iterator[Any]:
        request = dict(parameters)
        while True:
            page = self.store.list_objects(request)
            for entry in page.get("Contents") or ():
                yield formats.listed_item(entry)
            token = page.get("NextContinuationToken")
            if not token:
                return
            request = {**parameters, "ContinuationToken": token}

    def _guard(self, parameters: dict[str, Any]) -> None:
        bucket = parameters.get("Bucket")
        if isinstance(bucket, str) and self.own.owns("bucket", bucket):
            raise ItemReaderError(f"{OWN_TARGET_CAUSE}: bucket {bucket!r}")
        try:
            found = self.own.named_in_tree(parameters)
        except ScanLimitError as exc:
            raise ItemReaderError(
                f"the ItemReader's parameters are too large to check ({exc})"
            ) from None
        if found is not None:
            raise ItemReaderError(f"{OWN_TARGET_CAUSE}: {found[0]} {found[1]!r}")


def _failing_as_reader(items: Iterator[Any]) -> Iterator[Any]:
    """``items``, an S3 failure on the way raised as :class:`ItemReaderError` with its cause."""
    try:
        yield from items
    except ObjectStoreError as exc:
        raise ItemReaderError(exc.cause) from None


class MemoryItemSource(StoreItemSource):
    """Reads items from objects in a dict keyed by ``(bucket, key)`` (tests, in-memory driver)."""

    def __init__(
        self,
        objects: MutableMapping[tuple[str, str], bytes] | None = None,
        own: OwnResources | None = None,
    ) -> None:
        super().__init__(MemoryObjectStore(objects), own)
