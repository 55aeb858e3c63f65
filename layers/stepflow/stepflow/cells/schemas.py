"""Reading the JSON Schemas pydantic writes: ``$ref``, ``allOf``, variants, types, enums.

The small vocabulary :mod:`stepflow.cells.contracts` compares schemas with, and
:class:`ValidationFacts`, which writes the input schemas with what pydantic leaves out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

MAX_DEPTH = 64
"""Nesting levels compared (models in models, items of arrays...) before giving up."""

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


STRICT = "x-stepflow-strict"
"""Marks a model or value validated in strict mode (no coercion): not in pydantic's schema."""

MAX_DIGITS, DECIMAL_PLACES = "x-stepflow-maxDigits", "x-stepflow-decimalPlaces"
"""A ``Decimal``'s ``max_digits`` and ``decimal_places``: not in pydantic's schema either."""


class ValidationFacts(GenerateJsonSchema):
    """pydantic's validation schema plus what it leaves out and validation depends on.

    ``strict`` (a model's config or a field's) rejects values the lax mode coerced
    (``"5"`` for an ``int``), and a ``Decimal``'s ``max_digits``/``decimal_places``
    reject values that were valid: both are contract, so both are written down
    (as ``x-stepflow-*`` keywords, which JSON Schema validators ignore).
    """

    def generate_inner(self, schema: Any) -> JsonSchemaValue:
        """The schema pydantic writes for ``schema``, marked if strict or a ``Decimal``."""
        found = super().generate_inner(schema)
        kind = schema.get("type")
        if schema.get("strict") is True and kind not in ("model", "definitions"):
            found = _mark(found, {STRICT: True})
        if kind == "decimal":
            facts = {
                MAX_DIGITS: schema.get("max_digits"),
                DECIMAL_PLACES: schema.get("decimal_places"),
            }
            found = _mark(found, {k: v for k, v in facts.items() if isinstance(v, int)})
        return found

    def model_schema(self, schema: Any) -> JsonSchemaValue:
        """The schema of a model (as pydantic writes it), marked if its config is strict."""
        found = super().model_schema(schema)
        config = schema.get("config") or {}
        if config.get("strict") is True:
            found = {**found, STRICT: True}
        return found


def _mark(node: JsonSchemaValue, facts: dict[str, Any]) -> JsonSchemaValue:
    """``node`` with ``facts`` added (to each of its variants, where the bounds are read)."""
    if not facts:
        return node
    options = node.get("anyOf")
    if isinstance(options, list):
        return {**node, "anyOf": [{**o, **facts} if isinstance(o, dict) else o for o in options]}
    return {**node, **facts}


class SchemaTooComplex(Exception):
    """A schema too deep or too large to compare, or with a reference that cannot be followed."""


def resolve(node: Any, doc: dict[str, Any], depth: int = 0) -> Any:
    """``node`` with its ``$ref`` followed (siblings kept) and its ``allOf`` merged."""
    if depth > MAX_DEPTH:  # an allOf that names itself, in a hostile lock file
        raise SchemaTooComplex(f"allOf nested more than {MAX_DEPTH} levels deep")
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        seen += 1
        if seen > MAX_DEPTH:
            raise SchemaTooComplex(f"$ref chain longer than {MAX_DEPTH}")
        target = _pointer(doc, node["$ref"])
        siblings = {k: v for k, v in node.items() if k != "$ref" and k not in _NOT_CONTRACT}
        node = {**target, **siblings} if siblings else target
    if isinstance(node, dict) and isinstance(node.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            merged = _merge(merged, resolve(part, doc, depth + 1))
        return merged
    if node is True:
        return {}
    return node if isinstance(node, dict) or node is False else {}


_NOT_CONTRACT = frozenset({"title", "description", "default", "examples", "$comment"})


def _merge(a: dict[str, Any], b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        return a
    merged = {**a, **b}
    merged["properties"] = {**as_mapping(a.get("properties")), **as_mapping(b.get("properties"))}
    merged["required"] = sorted({*as_strings(a.get("required")), *as_strings(b.get("required"))})
    return merged


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        raise SchemaTooComplex(f"external $ref {ref!r}")
    node: Any = doc
    for part in (p for p in ref[1:].split("/") if p):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SchemaTooComplex(f"unresolvable $ref {ref!r}")
        node = node[part]
    return node


def variants(node: Any) -> list[Any] | None:
    """The ``anyOf``/``oneOf`` options of ``node`` (None: not a union)."""
    if not isinstance(node, dict):
        return None
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            return options
    return None


def types_of(node: dict[str, Any]) -> frozenset[str] | None:
    """The JSON types ``node`` allows (None: any)."""
    kind = node.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(str(k) for k in kind)
    values = enum_values(node)
    if values is not None:
        return frozenset(_json_type(v) for v in values)
    if "properties" in node or "additionalProperties" in node:
        return frozenset({"object"})
    if "items" in node or "prefixItems" in node:
        return frozenset({"array"})
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return _JSON_TYPES.get(type(value), "string")


def type_covered(kind: str, allowed: frozenset[str]) -> bool:
    """True when a value of JSON type ``kind`` is one of ``allowed`` (an integer is a number)."""
    return kind in allowed or (kind == "integer" and "number" in allowed)


def overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    """True when some value has a type of both ``a`` and ``b`` (None: any type)."""
    if a is None or b is None:
        return True
    numbers = {"integer", "number"}
    return bool(a & b) or bool(a & numbers and b & numbers)


def both_are(w: dict[str, Any], n: dict[str, Any], kind: str) -> bool:
    """True when both schemas declare (or imply) the JSON type ``kind``."""
    wt, nt = types_of(w), types_of(n)
    return wt is not None and kind in wt and nt is not None and kind in nt


def enum_values(node: dict[str, Any]) -> list[Any] | None:
    """The values ``node`` is limited to (``enum`` or ``const``), or None."""
    if "const" in node:
        return [node["const"]]
    values = node.get("enum")
    return list(values) if isinstance(values, list) else None


def type_names(types: frozenset[str]) -> str:
    """``integer | null``."""
    return " | ".join(sorted(types))


def show_values(values: list[Any]) -> str:
    """The first values, for a message."""
    shown = ", ".join(repr(v) for v in values[:10])
    return shown + (f" and {len(values) - 10} more" if len(values) > 10 else "")


def as_number(value: Any) -> float:
    """A bound's value (0 if it is not a number)."""
    return float(value) if isinstance(value, int | float) else 0.0


def as_mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_strings(value: Any) -> Iterator[str]:
    """The strings of ``value`` if it is a list (``required``)."""
    return (v for v in value if isinstance(v, str)) if isinstance(value, list) else iter(())


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []
