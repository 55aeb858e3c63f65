"""YAML as people write definitions and templates, read safely.

Only plain data loads: PyYAML's safe constructors, with timestamps kept as
strings (an unquoted ``2016-03-14T01:59:00Z`` is a Wait state's ``Timestamp``,
not a date). Aliases are allowed but the document they expand to is bounded,
in values and in text (no "billion laughs", no large value repeated by many
aliases), recursive anchors are refused, and every value must be
JSON: string keys, finite numbers, no binary or sets. CloudFormation's short
tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) load, as their long forms, only
where a template is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from stepflow.limits import Limits

MAX_NODES = 500_000
"""The most values a YAML document may expand to once its aliases are followed."""

MAX_TEXT_BYTES = Limits().max_definition_bytes
"""The most text (keys and scalars, UTF-8) a document may expand to: AWS's definition limit."""

CFN_TAGS = (
    *("And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If", "ImportValue"),
    *("Join", "Length", "Not", "Or", "Select", "Split", "Sub", "ToJsonString", "Transform"),
)
"""CloudFormation's ``!Fn`` short tags (besides ``!Ref`` and ``!Condition``)."""

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(ValueError):
    """A YAML document that is not plain, bounded JSON data."""


class _DataLoader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader without the timestamp resolver."""


_DataLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


class _TemplateLoader(_DataLoader):
    """The data loader that also reads CloudFormation's short tags."""


def _cfn(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for _tag in CFN_TAGS:
    _TemplateLoader.add_constructor(f"!{_tag}", _cfn(f"Fn::{_tag}"))
_TemplateLoader.add_constructor("!Ref", _cfn("Ref"))
_TemplateLoader.add_constructor("!Condition", _cfn("Condition"))


def load_yaml(text: str, *, template: bool = False) -> Any:
    """``text`` as JSON values; raise :class:`YamlError` saying what is wrong.

    ``template`` accepts CloudFormation's short tags (as ``{"Ref": ...}``,
    ``{"Fn::GetAtt": [...]}``, ...); elsewhere any tag but YAML's own is refused.
    """
    loader = (_TemplateLoader if template else _DataLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlError("the document is empty")
        _check_size(node)
        value = loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        raise YamlError(_tag_problem(exc, template)) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise YamlError("the document is nested too deeply") from None
    finally:
        loader.dispose()
    _check_json(value, "")
    return value


def _tag_problem(exc: yaml.constructor.ConstructorError, template: bool) -> str:
    where = _mark(exc.problem_mark)
    problem = exc.problem or ""
    if "constructor for the tag" in problem:
        tag = problem.rsplit("'", 2)[-2] if problem.count("'") >= 2 else problem
        if not template and tag.startswith("!") and tag[1:] in (*CFN_TAGS, "Ref", "Condition"):
            return (
                f"the CloudFormation tag {tag}{where} belongs in a template: "
                "give the template with --template, or the value with --sub"
            )
        return f"the YAML tag {tag}{where} is not allowed (only plain data loads)"
    return f"invalid YAML: {_one_line(exc)}"


def _mark(mark: Any) -> str:
    return "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _check_size(root: yaml.Node) -> None:
    """Refuse a document that expands past :data:`MAX_NODES` or :data:`MAX_TEXT_BYTES`, or loops.

    Each node is measured once, an alias counting its anchor's whole size, so
    the check costs the document as written, not as expanded.
    """
    sizes: dict[int, int] = {}
    texts: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_NODES:
                raise YamlError(
                    f"the document expands to more than {MAX_NODES} values "
                    "(aliases repeating aliases?)"
                )
            texts[key] = sum(texts[id(child)] for child in children) + _text_bytes(node)
            if texts[key] > MAX_TEXT_BYTES:
                raise YamlError(
                    f"the document expands to more than {MAX_TEXT_BYTES} bytes of text "
                    "(AWS's definition limit; aliases repeating a large value?)"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlError(f"a recursive alias{_mark(node.start_mark)}: it would never end")
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YamlError(f"a recursive alias{_mark(child.start_mark)}: it would never end")
            if id(child) not in sizes:
                stack.append((child, False))


def _text_bytes(node: yaml.Node) -> int:
    if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str):
        return len(node.value.encode("utf-8", "surrogatepass"))
    return 0


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_json(value: Any, where: str) -> None:
    """Every value JSON can hold: string keys, finite numbers, no binary, sets or dates."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise YamlError(
                        f"the key {key!r} at {at or '/'} is not a string (quote it in the YAML)"
                    )
                stack.append((child, f"{at}/{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{at}/{i}") for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise YamlError(f"the number at {at or '/'} is not finite ({item})")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise YamlError(f"the value at {at or '/'} is a {type(item).__name__}, not JSON data")
