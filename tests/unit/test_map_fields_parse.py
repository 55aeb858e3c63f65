"""Parsing and validating a distributed Map's ItemReader, ItemBatcher, ResultWriter."""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.asl import parse, validate
from stepflow.asl.states.map import ItemBatcherDef, ItemReaderDef, MapState, ResultWriterDef

PROCESSOR = {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "End": True}},
}
GET = "arn:aws:states:::s3:getObject"
PUT = "arn:aws:states:::s3:putObject"


def definition(language: str = "JSONPath", **fields: Any) -> dict[str, Any]:
    state = {"Type": "Map", "ItemProcessor": PROCESSOR, "End": True, **fields}
    return {"QueryLanguage": language, "StartAt": "M", "States": {"M": state}}


def problems(language: str = "JSONPath", **fields: Any) -> list[tuple[str, str]]:
    found = validate(definition(language, **fields))
    return [(d.location, d.message) for d in found if d.severity == "ERROR"]


def node(language: str = "JSONPath", **fields: Any) -> MapState:
    m = parse(definition(language, **fields)).root.states["M"]
    assert isinstance(m, MapState)
    return m


def test_a_full_jsonpath_distributed_map_is_typed() -> None:
    m = node(
        ItemReader={
            "Resource": GET,
            "Parameters": {"Bucket.$": "$.b", "Key": "k.csv"},
            "ReaderConfig": {
                "InputType": "CSV",
                "CSVHeaderLocation": "GIVEN",
                "CSVHeaders": ["a", "b"],
                "CSVDelimiter": "SEMICOLON",
                "MaxItemsPath": "$.max",
            },
        },
        ItemBatcher={
            "MaxItemsPerBatch": 10,
            "MaxInputBytesPerBatchPath": "$.bytes",
            "BatchInput": {"x.$": "$.x"},
        },
        ResultWriter={
            "Resource": PUT,
            "Parameters": {"Bucket": "o", "Prefix": "p"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "FLATTEN"},
        },
        Label="L1",
    )
    assert m.execution_type == "EXPRESS" and m.label == "L1"
    reader = m.item_reader
    assert isinstance(reader, ItemReaderDef) and reader.resource == GET
    assert reader.reader_config == {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["a", "b"],
        "CSVDelimiter": "SEMICOLON",
    }
    assert reader.max_items is None and reader.max_items_path is not None
    assert reader.max_items_path.text == "$.max" and reader.parameters is not None
    batcher = m.item_batcher
    assert isinstance(batcher, ItemBatcherDef) and batcher.max_items == 10
    assert batcher.max_bytes_path is not None and batcher.batch_input is not None
    writer = m.result_writer
    assert isinstance(writer, ResultWriterDef) and writer.resource == PUT
    assert writer.writer_config == {"OutputType": "JSONL", "Transformation": "FLATTEN"}


def test_jsonata_forms_are_kept_for_evaluation() -> None:
    m = node(
        "JSONata",
        ItemReader={
            "Resource": GET,
            "Arguments": {"Bucket": "{% $b %}"},
            "ReaderConfig": {"InputType": "JSON", "MaxItems": "{% $n %}"},
        },
        ItemBatcher={"MaxItemsPerBatch": "{% $n %}", "BatchInput": {"t": "{% $t %}"}},
        ResultWriter={"WriterConfig": {"OutputType": "JSON", "Transformation": "NONE"}},
    )
    assert m.item_reader is not None and m.item_reader.max_items == "{% $n %}"
    assert m.item_reader.parameters_raw == {"Bucket": "{% $b %}"}
    assert m.item_batcher is not None and m.item_batcher.max_items == "{% $n %}"
    assert m.result_writer is not None and m.result_writer.resource is None


def test_a_valid_definition_has_no_problems() -> None:
    assert (
        problems(
            ItemReader={
                "Resource": GET,
                "Parameters": {"Bucket": "b", "Key": "k"},
                "ReaderConfig": {"InputType": "JSONL", "MaxItems": 5},
            }
        )
        == []
    )


@pytest.mark.parametrize(
    ("fields", "location", "message"),
    [
        (
            {"ItemReader": {"Parameters": {}}},
            "/States/M/ItemReader",
            "requires the field 'Resource'",
        ),
        ({"ItemReader": {"Resource": "s3"}}, "/States/M/ItemReader/Resource", "Invalid resource"),
        ({"ItemReader": {"Resource": GET, "Foo": 1}}, "/States/M/ItemReader", "Field 'Foo'"),
        (
            {"ItemReader": {"Resource": GET, "ReaderConfig": {"InputType": "XML"}}},
            "/States/M/ItemReader/ReaderConfig/InputType",
            "[CSV, JSON, JSONL, MANIFEST, PARQUET]",
        ),
        (
            {"ItemReader": {"Resource": GET, "ReaderConfig": {"MaxItems": -1}}},
            "/States/M/ItemReader/ReaderConfig/MaxItems",
            "between 0 and 100000000",
        ),
        (
            {"ItemReader": {"Resource": GET, "ReaderConfig": {"MaxItems": 100000001}}},
            "/States/M/ItemReader/ReaderConfig/MaxItems",
            "between 0 and 100000000",
        ),
        (
            {
                "ItemReader": {
                    "Resource": GET,
                    "ReaderConfig": {"MaxItems": 1, "MaxItemsPath": "$.m"},
                }
            },
            "/States/M/ItemReader/ReaderConfig",
            "only one of 'MaxItems', 'MaxItemsPath'",
        ),
        (
            {"ItemReader": {"Resource": GET, "ReaderConfig": {"MaxItemsPath": "m"}}},
            "/States/M/ItemReader/ReaderConfig/MaxItemsPath",
            "JSONPath",
        ),
        (
            {
                "ItemReader": {
                    "Resource": GET,
                    "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN"},
                }
            },
            "/States/M/ItemReader/ReaderConfig",
            "'CSVHeaders' is required",
        ),
        (
            {
                "ItemReader": {
                    "Resource": GET,
                    "ReaderConfig": {"InputType": "CSV", "CSVHeaders": ["a"]},
                }
            },
            "/States/M/ItemReader/ReaderConfig",
            "only be set when 'CSVHeaderLocation' is 'GIVEN'",
        ),
        (
            {
                "ItemReader": {
                    "Resource": GET,
                    "ReaderConfig": {
                        "InputType": "CSV",
                        "CSVHeaderLocation": "GIVEN",
                        "CSVHeaders": [1],
                    },
                }
            },
            "/States/M/ItemReader/ReaderConfig/CSVHeaders",
            "array of strings",
        ),
        (
            {
                "ItemReader": {
                    "Resource": GET,
                    "ReaderConfig": {"InputType": "JSON", "CSVDelimiter": "COMMA"},
                }
            },
            "/States/M/ItemReader/ReaderConfig",
            "require 'InputType' 'CSV'",
        ),
        (
            {"ItemReader": {"Resource": GET, "ReaderConfig": {"CSVDelimiter": "DASH"}}},
            "/States/M/ItemReader/ReaderConfig/CSVDelimiter",
            "[COMMA, PIPE, SEMICOLON, SPACE, TAB]",
        ),
        (
            {"ItemReader": {"Resource": GET, "Parameters": {"a.$": "$$$"}}},
            "/States/M/ItemReader/Parameters/a.$",
            "not a valid path",
        ),
        (
            {"ItemReader": {"Resource": GET, "Arguments": {}}},
            "/States/M/ItemReader",
            "field 'Arguments' is only supported for the 'JSONata'",
        ),
        ({"ItemBatcher": {}}, "/States/M/ItemBatcher", "requires one of 'MaxItemsPerBatch'"),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 1, "MaxItemsPerBatchPath": "$.x"}},
            "/States/M/ItemBatcher",
            "only one of 'MaxItemsPerBatch', 'MaxItemsPerBatchPath'",
        ),
        (
            {"ItemBatcher": {"MaxInputBytesPerBatch": 262145}},
            "/States/M/ItemBatcher/MaxInputBytesPerBatch",
            "between 0 and 262144",
        ),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": -1}},
            "/States/M/ItemBatcher/MaxItemsPerBatch",
            "between 0 and",
        ),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": 3}},
            "/States/M/ItemBatcher/BatchInput",
            "must be an object",
        ),
        (
            {"ItemBatcher": {"MaxItemsPerBatch": 2, "Other": 3}},
            "/States/M/ItemBatcher",
            "Field 'Other'",
        ),
        (
            {"ResultWriter": {}},
            "/States/M/ResultWriter",
            "requires a 'Resource' or a 'WriterConfig'",
        ),
        (
            {"ResultWriter": {"Resource": PUT}},
            "/States/M/ResultWriter",
            "requires its 'Parameters'",
        ),
        (
            {"ResultWriter": {"WriterConfig": {"OutputType": "CSV"}}},
            "/States/M/ResultWriter/WriterConfig/OutputType",
            "[JSON, JSONL]",
        ),
        (
            {"ResultWriter": {"WriterConfig": {"Transformation": "ALL"}}},
            "/States/M/ResultWriter/WriterConfig/Transformation",
            "[NONE, COMPACT, FLATTEN]",
        ),
        ({"Label": "a b"}, "/States/M/Label", "Invalid label name"),
        ({"Label": "x" * 41}, "/States/M/Label", "Invalid label name"),
    ],
)
def test_invalid_fields_are_reported_where_they_are(
    fields: dict[str, Any], location: str, message: str
) -> None:
    found = problems(**fields)
    assert any(loc == location and message in text for loc, text in found), found


def test_jsonata_rejects_the_jsonpath_forms() -> None:
    found = problems(
        "JSONata",
        ItemReader={"Resource": GET, "Parameters": {}, "ReaderConfig": {"MaxItemsPath": "$.m"}},
        ItemBatcher={"MaxItemsPerBatchPath": "$.n"},
    )
    texts = " | ".join(text for _, text in found)
    assert "field 'Parameters' is only supported for the 'JSONPath'" in texts
    assert "field 'MaxItemsPath' is only supported for the 'JSONPath'" in texts
    assert "field 'MaxItemsPerBatchPath' is only supported for the 'JSONPath'" in texts


def test_a_distributed_processor_requires_an_execution_type() -> None:
    processor = {**PROCESSOR, "ProcessorConfig": {"Mode": "DISTRIBUTED"}}
    d = definition()
    d["States"]["M"]["ItemProcessor"] = processor
    found = [(x.location, x.message) for x in validate(d) if x.severity == "ERROR"]
    assert found == [
        (
            "/States/M/ItemProcessor/ProcessorConfig",
            "'ExecutionType' is required when 'Mode' is 'DISTRIBUTED'",
        )
    ]


def test_duplicate_labels_are_reported() -> None:
    d = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Map", "ItemProcessor": PROCESSOR, "Label": "L", "Next": "B"},
            "B": {"Type": "Map", "ItemProcessor": PROCESSOR, "Label": "L", "End": True},
        },
    }
    found = [(x.code, x.message) for x in validate(d) if x.severity == "ERROR"]
    assert found == [("DUPLICATE_LABEL_NAME", "Duplicate label name: 'L'")]
