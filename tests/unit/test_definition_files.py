"""Definition files as people keep them: YAML read safely, SAM's substitutions, templates."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from stepflow.definitions import (
    DefinitionFileError,
    SubstitutionError,
    YamlError,
    load_definition,
    load_yaml,
    missing_keys,
    parse_substitutions,
    placeholders,
    substitute,
)
from stepflow.definitions.yaml_load import MAX_NODES, MAX_TEXT_BYTES

ORDER_YAML = """\
Comment: an order
StartAt: Save
States:
  Save:
    Type: Task
    Resource: arn:aws:states:::dynamodb:putItem
    Parameters:
      TableName: ${TableName}
      Item:
        id:
          S.$: $.id
    Next: Later
  Later:
    Type: Wait
    Timestamp: 2016-03-14T01:59:00Z
    End: true
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --- YAML ---------------------------------------------------------------------------------


def test_a_yaml_definition_reads_as_its_json_twin(tmp_path: Path) -> None:
    path = write(tmp_path, "order.asl.yaml", ORDER_YAML)
    loaded = load_definition(path, {"TableName": "orders"})
    assert loaded["States"]["Save"]["Parameters"] == {
        "TableName": "orders",
        "Item": {"id": {"S.$": "$.id"}},
    }
    # an unquoted timestamp stays the string a Wait state needs, not a date
    assert loaded["States"]["Later"]["Timestamp"] == "2016-03-14T01:59:00Z"
    twin = write(tmp_path, "order.asl.json", json.dumps(loaded))
    assert load_definition(twin) == loaded


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        this, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{this}: &{this} [{','.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines)


def test_aliases_that_would_explode_are_refused_before_building_anything() -> None:
    with pytest.raises(YamlError, match=f"more than {MAX_NODES} values"):
        load_yaml(billion_laughs())
    small = load_yaml(billion_laughs(levels=2))  # aliases themselves are fine
    assert len(small["c"]) == 9 and small["c"][0] == small["b"]


def text_bomb(value_bytes: int, aliases: int) -> str:
    """One large anchored string repeated by many aliases: few values, much text."""
    return f'a: &a "{"x" * value_bytes}"\nb: [{", ".join(["*a"] * aliases)}]\n'


def test_a_large_value_repeated_by_aliases_is_refused_on_its_expanded_text(
    tmp_path: Path,
) -> None:
    bomb = text_bomb(200_000, 1_000)  # 200 KB written, 200 MB once expanded
    tracemalloc.start()
    try:
        with pytest.raises(YamlError, match=f"more than {MAX_TEXT_BYTES} bytes of text"):
            load_yaml(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(bomb)  # bounded by the file, not by its expansion
    path = write(tmp_path, "bomb.asl.yaml", bomb)
    with pytest.raises(DefinitionFileError, match=r"bomb\.asl\.yaml: .* bytes of text"):
        load_definition(path)
    fits = load_yaml(text_bomb(100_000, 9))  # 1,000,000 bytes expanded: under 1 MiB
    assert len(fits["b"]) == 9 and fits["b"][0] is fits["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [*x]", "recursive alias"),
        ("a: &x {b: *x}", "recursive alias"),
        ("!!python/object/apply:os.system ['echo owned']", "python/object/apply"),
        ("a: !!python/name:os.system", "is not allowed"),
        ("a: !Ref Table", "belongs in a template"),
        ("a: !GetAtt Fn.Arn", "belongs in a template"),
        ("a: !Custom x", "is not allowed"),
        ("1: one", "is not a string"),
        ("a: .nan", "not finite"),
        ("a: !!binary aGk=", "bytes"),
        ("a: !!set {x}", "set"),
        ("a: [1, 2", "invalid YAML"),
        ("", "empty"),
        ("a: b\n---\nc: d", "invalid YAML"),
        ("[" * 20_000, "nested too deeply|invalid YAML"),
    ],
)
def test_hostile_yaml_is_refused_in_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(YamlError, match=message) as info:
        load_yaml(text)
    assert "\n" not in str(info.value)


def test_a_yaml_definition_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "list.asl.yaml", "- StartAt: A\n")
    with pytest.raises(DefinitionFileError, match="must be an object"):
        load_definition(path)
    path = write(tmp_path, "bad.asl.yml", "a: !!python/object:os.system {}\n")
    with pytest.raises(DefinitionFileError, match=r"bad\.asl\.yml: the YAML tag"):
        load_definition(path)


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(DefinitionFileError, match="cannot read"):
        load_definition(tmp_path / "absent.asl.yaml")
    latin = tmp_path / "latin.asl.yaml"
    latin.write_bytes(b"Comment: caf\xe9\n")
    with pytest.raises(DefinitionFileError, match="not UTF-8"):
        load_definition(latin)
    broken = write(tmp_path, "broken.asl.json", "{not json")
    with pytest.raises(DefinitionFileError, match="is not valid JSON"):
        load_definition(broken)


# --- substitutions ----------------------------------------------------------------------------


def test_sub_arguments_parse_and_the_last_repeat_wins() -> None:
    assert parse_substitutions(["A=1", "B=x=y", "A=2", "C="]) == {"A": "2", "B": "x=y", "C": ""}
    for bad in ("novalue", "=x", " =x"):
        with pytest.raises(SubstitutionError, match="KEY=VALUE"):
            parse_substitutions([bad])


def test_placeholders_are_filled_in_keys_and_string_values_only() -> None:
    definition: dict[str, Any] = {
        "Comment": "to ${Env}: ${Env}",
        "States": {"${Name}": {"Seconds": 5, "List": ["${Env}", 1, None, True]}},
    }
    assert placeholders(definition) == ["Env", "Name"]
    filled = substitute(definition, {"Env": "prod", "Name": "Wait", "Unused": "x"})
    assert filled == {
        "Comment": "to prod: prod",
        "States": {"Wait": {"Seconds": 5, "List": ["prod", 1, None, True]}},
    }
    assert definition["Comment"] == "to ${Env}: ${Env}"  # the input is not changed


def test_a_value_is_put_in_as_text_never_re_read() -> None:
    filled = substitute({"a": "${X}"}, {"X": "${Y}", "Y": "no"})
    assert filled == {"a": "${Y}"}
    assert substitute({"a": "${X}"}, {"X": '"quoted" \\ {}'}) == {"a": '"quoted" \\ {}'}


def test_a_key_without_a_substitution_is_left_as_written_as_cloudformation_does() -> None:
    definition = {"a": "${TableName}", "b": ["${QueueUrl}", "${TableName}", "${Given}"]}
    assert missing_keys(definition, {"Given": "x"}) == ["TableName", "QueueUrl"]
    filled = substitute(definition, {"Given": "x"})
    assert filled == {"a": "${TableName}", "b": ["${QueueUrl}", "${TableName}", "x"]}


def test_without_subs_or_a_template_a_placeholder_is_plain_text(tmp_path: Path) -> None:
    text = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${price}", "End": true}}}'
    for name in ("price.asl.json", "price.asl.yaml"):
        path = write(tmp_path, name, text)  # JSON is YAML too
        assert load_definition(path)["States"]["A"]["Result"] == "${price}"
    notes: list[str] = []
    loaded = load_definition(path, {"Other": "x"}, warn=notes.append)
    assert loaded["States"]["A"]["Result"] == "${price}"
    assert len(notes) == 1 and "${price}" in notes[0] and "left as written" in notes[0]


class CountedDict(dict[str, Any]):
    """A mapping that counts how often it is read whole."""

    reads = 0

    def items(self) -> Any:
        CountedDict.reads += 1
        return super().items()


def test_an_aliased_value_is_scanned_and_replaced_once() -> None:
    shared = CountedDict({"Table": "${TableName}"})
    definition = {"Items": [shared] * 1_000}  # as YAML loads 1,000 aliases of one anchor
    CountedDict.reads = 0
    assert placeholders(definition) == ["TableName"]
    assert CountedDict.reads == 1
    filled = substitute(definition, {"TableName": "orders"})
    assert CountedDict.reads == 3  # once to find the placeholders, once to replace them
    assert filled["Items"][0] == {"Table": "orders"}
    assert filled["Items"][0] is filled["Items"][999]


def test_a_definition_without_placeholders_is_returned_as_it_is() -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    assert substitute(definition, {}) is definition


# --- templates --------------------------------------------------------------------------------

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  NoDefault:
    Type: String
Resources:
  Orders:
    Type: AWS::DynamoDB::Table
  SaveFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: save-order
  Other:
    Type: AWS::Lambda::Function
  OrderMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/order.asl.yaml
      DefinitionSubstitutions:
        TableName: !Sub "orders-${Stage}-${AWS::Region}"
        SaveArn: !GetAtt SaveFunction.Arn
        OtherName: !Ref Other
        TableArn: !GetAtt Orders.Arn
        Missing: !Ref NoDefault
        Count: 3
"""


def test_a_sam_template_gives_its_substitutions(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    (tmp_path / "statemachine").mkdir()
    definition = write(
        tmp_path / "statemachine",
        "order.asl.yaml",
        ORDER_YAML.replace(
            "Resource: arn:aws:states:::dynamodb:putItem",
            "Resource: ${SaveArn}\n    Comment: ${OtherName} x${Count}",
        ),
    )
    template = write(tmp_path, "template.yaml", TEMPLATE)
    for path in (None, definition):  # from the template alone, or naming the file
        loaded = load_definition(path, template=template)
        save = loaded["States"]["Save"]
        assert save["Parameters"]["TableName"] == "orders-dev-eu-west-1"
        assert save["Resource"] == "arn:aws:lambda:eu-west-1:123456789012:function:save-order"
        assert save["Comment"] == "Other x3"


def test_what_a_template_cannot_resolve_is_reported_only_when_used(tmp_path: Path) -> None:
    (tmp_path / "statemachine").mkdir()
    write(
        tmp_path / "statemachine",
        "order.asl.yaml",
        ORDER_YAML.replace("${TableName}", "${TableArn}/${Missing}"),
    )
    template = write(tmp_path, "template.yaml", TEMPLATE)
    with pytest.raises(DefinitionFileError) as info:
        load_definition(None, template=template)
    message = str(info.value)
    assert "TableArn (!GetAtt Orders.Arn exists only once deployed)" in message
    assert "Missing (!Ref NoDefault: the parameter has no Default)" in message
    assert "--sub" in message
    given = {"TableArn": "arn:aws:dynamodb:::table/t", "Missing": "m"}
    loaded = load_definition(None, given, template=template)
    assert loaded["States"]["Save"]["Parameters"]["TableName"] == "arn:aws:dynamodb:::table/t/m"


def test_inline_definitions_and_several_machines(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        "template.yaml",
        """\
Resources:
  Inline:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      Definition:
        StartAt: A
        States: {A: {Type: Pass, Result: "${Greeting}", End: true}}
      DefinitionSubstitutions: {Greeting: hi}
  AsString:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      DefinitionString: '{"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}'
""",
    )
    with pytest.raises(DefinitionFileError, match=r"several state machines \(AsString, Inline\)"):
        load_definition(None, template=template)
    inline = load_definition(None, template=template, machine="Inline")
    assert inline["States"]["A"]["Result"] == "hi"
    assert load_definition(None, template=template, machine="AsString")["StartAt"] == "B"
    with pytest.raises(DefinitionFileError, match="no state machine 'Nope'"):
        load_definition(None, template=template, machine="Nope")


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ("Resources: {}", "has no AWS::Serverless::StateMachine"),
        ("Resources: []", "has no Resources"),
        (
            "Resources: {M: {Type: AWS::Serverless::StateMachine, "
            "Properties: {DefinitionUri: {Bucket: b, Key: k}}}}",
            "not a local path",
        ),
        (
            "Resources: {M: {Type: AWS::Serverless::StateMachine, "
            "Properties: {DefinitionUri: s3://b/k.json}}}",
            "is in S3",
        ),
        (
            "Resources: {M: {Type: AWS::StepFunctions::StateMachine, "
            "Properties: {DefinitionString: !Sub '{}'}}}",
            "built with intrinsic functions",
        ),
        ("Resources: {M: {Type: AWS::StepFunctions::StateMachine}}", "has no Definition"),
        ("- a list", "not a template"),
    ],
)
def test_templates_without_a_usable_machine_say_why(
    tmp_path: Path, resources: str, message: str
) -> None:
    template = write(tmp_path, "template.yaml", resources)
    with pytest.raises(DefinitionFileError, match=message):
        load_definition(None, template=template)


def test_intrinsics_inside_an_inline_definition_are_resolved_or_named(tmp_path: Path) -> None:
    body = """\
Resources:
  Fn:
    Type: AWS::Lambda::Function
  Table:
    Type: AWS::DynamoDB::Table
  M:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      Definition:
        StartAt: A
        States:
          A:
            Type: Task
            Resource: !GetAtt Fn.Arn
            Comment: !Sub "in ${AWS::Region}"
            End: true
"""
    template = write(tmp_path, "template.yaml", body)
    loaded = load_definition(None, template=template)
    state = loaded["States"]["A"]
    assert state["Resource"].endswith(":function:Fn") and state["Comment"].startswith("in ")
    write(tmp_path, "template.yaml", body.replace("!GetAtt Fn.Arn", "!GetAtt Table.StreamArn"))
    with pytest.raises(DefinitionFileError) as info:
        load_definition(None, template=template)
    assert "/States/A/Resource: !GetAtt Table.StreamArn exists only once deployed" in str(
        info.value
    )
