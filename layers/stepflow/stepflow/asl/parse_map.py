"""A distributed Map's own fields: ``ItemReader``, ``ItemBatcher``, ``ResultWriter``.

Each is checked as ``ValidateStateMachineDefinition`` checks it (its fields, their
types and ranges, the fields of the other query language) and built into a typed
definition (:mod:`stepflow.asl.states.map`); the values are evaluated when the
Map runs (:mod:`stepflow.engine.distributed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.asl.parse_context import Context, is_jsonata, pointer
from stepflow.asl.parse_fields import StateInput
from stepflow.asl.states.base import MISSING
from stepflow.asl.states.map import ItemBatcherDef, ItemReaderDef, ResultWriterDef
from stepflow.data.jsonpath import Path

MAX_ITEMS = 100_000_000
"""The largest ``ReaderConfig.MaxItems`` Step Functions accepts."""

MAX_BATCH_BYTES = 262_144
"""The largest ``ItemBatcher.MaxInputBytesPerBatch`` (256 KiB, a state's input limit)."""

INPUT_TYPES = ("CSV", "JSON", "JSONL", "MANIFEST", "PARQUET")
CSV_HEADER_LOCATIONS = ("FIRST_ROW", "GIVEN")
CSV_DELIMITERS = ("COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB")
MANIFEST_TYPES = ("ATHENA_DATA", "S3_INVENTORY", "CSV")
OUTPUT_TYPES = ("JSON", "JSONL")
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")


def read_item_reader(s: StateInput, key: str) -> dict[str, Any]:
    """``ItemReader``: ``Resource``, ``Parameters``/``Arguments`` and ``ReaderConfig``."""
    loc = s.at(key)
    raw = s.ctx.obj(s.raw[key], loc, key)
    if raw is None:
        return {}
    resource = _resource(s, raw, loc, key, required=True) or ""
    parameters, parameters_raw = _payload(s, raw, loc)
    config: dict[str, Any] = {}
    max_items: Any = None
    max_items_path: Path | None = None
    for field in raw:
        if field not in ("Resource", "Parameters", "Arguments", "ReaderConfig"):
            s.ctx.unsupported(loc, field)
    if "ReaderConfig" in raw:
        config, max_items, max_items_path = _reader_config(s, raw["ReaderConfig"], loc)
    reader = ItemReaderDef(
        resource=resource,
        parameters=parameters,
        parameters_raw=parameters_raw,
        reader_config=config,
        max_items=max_items,
        max_items_path=max_items_path,
    )
    return {"item_reader": reader}


def _reader_config(s: StateInput, value: Any, base: str) -> tuple[dict[str, Any], Any, Any]:
    loc = pointer(base, "ReaderConfig")
    config = s.ctx.obj(value, loc, "ReaderConfig")
    if config is None:
        return {}, None, None
    ctx = s.ctx
    kept: dict[str, Any] = {}
    max_items: Any = None
    max_items_path: Path | None = None
    for key, item in config.items():
        at = pointer(loc, key)
        if key == "InputType":
            kept[key] = ctx.one_of(item, at, key, INPUT_TYPES)
        elif key == "CSVHeaderLocation":
            kept[key] = ctx.one_of(item, at, key, CSV_HEADER_LOCATIONS)
        elif key == "CSVDelimiter":
            kept[key] = ctx.one_of(item, at, key, CSV_DELIMITERS)
        elif key == "ManifestType":
            kept[key] = ctx.one_of(item, at, key, MANIFEST_TYPES)
        elif key == "CSVHeaders":
            if not isinstance(item, list) or not all(isinstance(h, str) for h in item):
                ctx.error(at, "The value of 'CSVHeaders' must be an array of strings")
            kept[key] = item
        elif key == "MaxItems":
            max_items = _count(s, item, at, key, 0, MAX_ITEMS)
        elif key == "MaxItemsPath":
            max_items_path = _path_field(s, item, at, key)
        else:
            ctx.unsupported(loc, key)
    if "MaxItems" in config and "MaxItemsPath" in config:
        ctx.error(loc, "A ReaderConfig may set only one of 'MaxItems', 'MaxItemsPath'")
    location = config.get("CSVHeaderLocation")
    if location == "GIVEN" and "CSVHeaders" not in config:
        ctx.error(loc, "'CSVHeaders' is required when 'CSVHeaderLocation' is 'GIVEN'")
    elif "CSVHeaders" in config and location != "GIVEN":
        ctx.error(loc, "'CSVHeaders' may only be set when 'CSVHeaderLocation' is 'GIVEN'")
    if ("CSVHeaderLocation" in config or "CSVDelimiter" in config) and config.get(
        "InputType"
    ) not in ("CSV", None):
        ctx.error(loc, "'CSVHeaderLocation' and 'CSVDelimiter' require 'InputType' 'CSV'")
    if "ManifestType" in config and config.get("InputType") not in ("MANIFEST", "CSV", None):
        ctx.error(loc, "'ManifestType' requires 'InputType' 'MANIFEST' or 'CSV'")
    return kept, max_items, max_items_path


def read_item_batcher(s: StateInput, key: str) -> dict[str, Any]:
    """``ItemBatcher``: MaxItemsPerBatch(Path), MaxInputBytesPerBatch(Path), BatchInput."""
    loc = s.at(key)
    raw = s.ctx.obj(s.raw[key], loc, key)
    if raw is None:
        return {}
    fields: dict[str, Any] = {}
    for field, value in raw.items():
        at = pointer(loc, field)
        if field == "MaxItemsPerBatch":
            fields["max_items"] = _count(s, value, at, field, 0, MAX_ITEMS)
        elif field == "MaxItemsPerBatchPath":
            fields["max_items_path"] = _path_field(s, value, at, field)
        elif field == "MaxInputBytesPerBatch":
            fields["max_bytes"] = _count(s, value, at, field, 0, MAX_BATCH_BYTES)
        elif field == "MaxInputBytesPerBatchPath":
            fields["max_bytes_path"] = _path_field(s, value, at, field)
        elif field == "BatchInput":
            fields["batch_input_raw"] = value
            if s.language == "JSONPath":
                fields["batch_input"] = s.ctx.template(value, at, field, require_object=True)
            else:
                if not isinstance(value, Mapping) and not is_jsonata(value):
                    s.ctx.error(at, "The value of 'BatchInput' must be an object")
                s.ctx.jsonata(value, at, field)
        else:
            s.ctx.unsupported(loc, field)
    for a, b in (
        ("MaxItemsPerBatch", "MaxItemsPerBatchPath"),
        ("MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath"),
    ):
        if a in raw and b in raw:
            s.ctx.error(loc, f"An ItemBatcher may set only one of '{a}', '{b}'")
    limits = (
        "MaxItemsPerBatch",
        "MaxItemsPerBatchPath",
        "MaxInputBytesPerBatch",
        "MaxInputBytesPerBatchPath",
    )
    if not any(name in raw for name in limits):
        s.ctx.error(
            loc,
            "An ItemBatcher requires one of 'MaxItemsPerBatch', 'MaxItemsPerBatchPath', "
            "'MaxInputBytesPerBatch', 'MaxInputBytesPerBatchPath'",
        )
    return {"item_batcher": ItemBatcherDef(**fields)}


def read_result_writer(s: StateInput, key: str) -> dict[str, Any]:
    """``ResultWriter``: ``Resource`` with ``Parameters``/``Arguments``, and/or ``WriterConfig``."""
    loc = s.at(key)
    raw = s.ctx.obj(s.raw[key], loc, key)
    if raw is None:
        return {}
    for field in raw:
        if field not in ("Resource", "Parameters", "Arguments", "WriterConfig"):
            s.ctx.unsupported(loc, field)
    resource = _resource(s, raw, loc, key, required=False)
    parameters, parameters_raw = _payload(s, raw, loc)
    if resource is not None and parameters_raw is MISSING:
        s.ctx.error(loc, "A ResultWriter with a 'Resource' requires its 'Parameters'")
    config: dict[str, Any] | None = None
    if "WriterConfig" in raw:
        config = _writer_config(s.ctx, raw["WriterConfig"], pointer(loc, "WriterConfig"))
    if resource is None and config is None:
        s.ctx.error(loc, "A ResultWriter requires a 'Resource' or a 'WriterConfig'")
    writer = ResultWriterDef(
        resource=resource,
        parameters=parameters,
        parameters_raw=parameters_raw,
        writer_config=config,
    )
    return {"result_writer": writer}


def _writer_config(ctx: Context, value: Any, loc: str) -> dict[str, Any] | None:
    config = ctx.obj(value, loc, "WriterConfig")
    if config is None:
        return None
    for key, item in config.items():
        if key == "OutputType":
            ctx.one_of(item, pointer(loc, key), key, OUTPUT_TYPES)
        elif key == "Transformation":
            ctx.one_of(item, pointer(loc, key), key, TRANSFORMATIONS)
        else:
            ctx.unsupported(loc, key)
    return dict(config)


def _resource(
    s: StateInput, raw: Mapping[str, Any], loc: str, owner: str, *, required: bool
) -> str | None:
    if "Resource" not in raw:
        if required:
            s.ctx.error(loc, f"An '{owner}' requires the field 'Resource'")
        return None
    value = s.ctx.string(raw["Resource"], pointer(loc, "Resource"), "Resource")
    if value is not None and not value.startswith("arn:"):
        s.ctx.error(
            pointer(loc, "Resource"),
            f"Invalid resource (not an ARN or URI): {value!r}",
            "INVALID_RESOURCE",
        )
    return value


def _payload(s: StateInput, raw: Mapping[str, Any], loc: str) -> tuple[Any, Any]:
    """``Parameters`` (JSONPath: a template) or ``Arguments`` (JSONata), as (template, raw)."""
    own, other = ("Parameters", "Arguments")
    if s.language == "JSONata":
        own, other = other, own
    if other in raw:
        s.ctx.wrong_language(loc, other, s.language)
    if own not in raw:
        return None, MISSING
    at = pointer(loc, own)
    value = raw[own]
    if s.language == "JSONPath":
        return s.ctx.template(value, at, own, require_object=True), value
    if not isinstance(value, Mapping) and not is_jsonata(value):
        s.ctx.error(at, f"The value of '{own}' must be an object or a JSONata expression")
    s.ctx.jsonata(value, at, own)
    return None, value


def _count(s: StateInput, value: Any, loc: str, name: str, minimum: int, maximum: int) -> Any:
    """A whole-number limit (or, in JSONata, an expression evaluated when the Map runs)."""
    if s.language == "JSONata" and is_jsonata(value):
        s.ctx.jsonata(value, loc, name)
        return value
    return s.ctx.integer(value, loc, name, minimum, maximum)


def _path_field(s: StateInput, value: Any, loc: str, name: str) -> Path | None:
    if s.language == "JSONata":
        s.ctx.wrong_language(loc.rsplit("/", 1)[0], name, s.language)
        return None
    return s.ctx.path(value, loc, name, reference=True)
