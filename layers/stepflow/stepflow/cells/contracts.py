"""Contract checks at registration: a breaking schema change needs a new major version.

A cell's input, output and business-error models are compared as JSON Schemas
(pydantic's ``model_json_schema``: validation schema for the input, serialization
schema for what the cell produces) with those of the version before it:

* the **input** must still accept every input the old version accepted: a new
  required field, a removed field, a narrowed or changed type (``int | None`` to
  ``int``, ``float`` to ``int``), a new or smaller enum, a tightened constraint
  (``max_length``, ``pattern``...) or ``additionalProperties`` tightened
  (``extra="forbid"``) break callers;
* the **output** (and the **error**, which a Catch reads) must still be what the
  old version's consumers read: a removed field, a field no longer required, a
  widened or changed type, a larger enum or a loosened constraint break them.

``$ref``/``$defs`` (nested and recursive models), ``anyOf``/``oneOf`` (Optional,
unions, discriminated unions), ``allOf``, objects with ``additionalProperties``
and arrays are understood; titles, descriptions and defaults are not contract.
The checker is small and conservative: the JSON-Schema compatibility libraries
available answer only yes or no (or are alpha and need another runtime), and a
refusal must name each breaking path. A schema too deep or too large to check
is reported as a problem, so it needs a new major version rather than passing
unchecked.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from stepflow.cells.registry import AnyCell, CellRegistrationError, version_key
from stepflow.cells.schemas import (
    DECIMAL_PLACES,
    MAX_DEPTH,
    MAX_DIGITS,
    STRICT,
    SchemaTooComplex,
    ValidationFacts,
    as_list,
    as_mapping,
    as_number,
    as_strings,
    both_are,
    enum_values,
    overlap,
    resolve,
    show_values,
    type_covered,
    type_names,
    types_of,
    variants,
)

Role = Literal["input", "output", "error"]

MAX_STEPS = 20_000
"""Schema pairs compared for one contract before giving up (unions multiply them)."""

MAX_PROBLEMS = 100
"""Problems reported per schema (a shared model's are reported at each path that uses it)."""

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = (
    "maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", MAX_DIGITS,
    DECIMAL_PLACES,
)  # fmt: skip
_NUMBER_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_EXACT = ("pattern", "format", "multipleOf")


@dataclass(frozen=True, slots=True)
class Problem:
    """One breaking change: where (``input.address.zip``), what kind, and the detail."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} ({self.detail})"


class BreakingChangeError(CellRegistrationError):
    """A new version breaks the contract of the one before it within the same major version."""

    def __init__(self, old: str, new: str, problems: list[Problem]) -> None:
        self.old, self.new, self.problems = old, new, problems
        listed = "; ".join(str(p) for p in problems)
        major = version_key(new.rpartition("@")[2])[0] + 1
        super().__init__(
            f"{new} breaks the contract of {old}: {listed}. Keep the change compatible, or "
            f"register it as a new major version ({major}.0.0)."
        )


def schema_of(kind: Any, role: Role) -> dict[str, Any]:
    """The JSON Schema of a contract type (a model, a union, None or Any)."""
    mode: Literal["validation", "serialization"] = (
        "validation" if role == "input" else "serialization"
    )
    if kind is None:
        return {"type": "null"}
    generator = ValidationFacts if role == "input" else GenerateJsonSchema
    try:
        schema = TypeAdapter(kind).json_schema(mode=mode, schema_generator=generator)
    except Exception as exc:  # pydantic's errors for types it has no schema for
        raise CellRegistrationError(f"no JSON Schema for the {role} type {kind!r}: {exc}") from exc
    return dict(schema)


def check_compatible(old: AnyCell, new: AnyCell) -> list[Problem]:
    """Every breaking change from cell ``old`` to cell ``new`` (empty: compatible)."""
    was, now = old.contract(), new.contract()
    problems: list[Problem] = []
    sides: tuple[tuple[Role, Any, Any], ...] = (
        ("input", was.input, now.input),
        ("output", was.output, now.output),
        ("error", was.error, now.error),
    )
    for role, before, after in sides:
        problems += compare_schemas(schema_of(before, role), schema_of(after, role), role)
    return problems


def compare_schemas(old: dict[str, Any], new: dict[str, Any], role: Role) -> list[Problem]:
    """Every breaking change from schema ``old`` to ``new`` of a contract's ``role``."""
    if old == new:
        return []
    check = _Comparison(old, new, role)
    try:
        found = check.covers(check.wide_root, check.narrow_root, role, 0)
    except SchemaTooComplex as exc:
        return [Problem(role, "too complex to check", str(exc))]
    unique: dict[tuple[str, str], Problem] = {}
    for problem in found:
        unique.setdefault((problem.path, problem.kind), problem)
    return list(unique.values())[:MAX_PROBLEMS]


def check_neighbours(versions: Mapping[str, AnyCell], cell: AnyCell) -> None:
    """Check ``cell`` against the registered versions next to it within its major version.

    The highest lower version must be compatible with ``cell``, and ``cell`` with
    the lowest higher one (so versions registered in any order are checked in
    order). Raises :class:`BreakingChangeError`.
    """
    key = version_key(cell.version)
    same = sorted(
        (v for v, c in versions.items() if c is not cell and version_key(v)[0] == key[0]),
        key=version_key,
    )
    lower = [v for v in same if version_key(v) < key]
    higher = [v for v in same if version_key(v) > key]
    pairs = ([(versions[lower[-1]], cell)] if lower else []) + (
        [(cell, versions[higher[0]])] if higher else []
    )
    for before, after in pairs:
        problems = check_compatible(before, after)
        if problems:
            raise BreakingChangeError(before.key(), after.key(), problems)


class _Comparison:
    """Whether every value the narrow schema accepts, the wide one accepts too.

    For an input the new schema must be as wide as the old one; for an output or
    an error the old one must be as wide as the new one. Problems are worded
    by ``role``; ``old_is_narrow`` tells which side a missing property left.
    """

    def __init__(self, old: dict[str, Any], new: dict[str, Any], role: Role) -> None:
        self.old_is_narrow = role == "input"
        self.wide_doc, self.narrow_doc = (new, old) if self.old_is_narrow else (old, new)
        self.wide_root, self.narrow_root = self.wide_doc, self.narrow_doc
        self.memo: dict[tuple[int, int], tuple[str, list[Problem]]] = {}
        self.alive: list[tuple[Any, Any]] = []  # memo keys are ids: keep their objects alive
        self.steps = 0

    def _word(self, narrowed: str, widened: str) -> str:
        return narrowed if self.old_is_narrow else widened

    def covers(self, wide: Any, narrow: Any, path: str, depth: int) -> list[Problem]:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise SchemaTooComplex(f"more than {MAX_STEPS} schema pairs to compare")
        if depth > MAX_DEPTH:
            raise SchemaTooComplex(f"{path} is nested more than {MAX_DEPTH} levels deep")
        key = (id(wide), id(narrow))
        if key in self.memo:  # compared already (at another path), or being compared (recursion)
            origin, known = self.memo[key]
            return [replace(p, path=path + p.path[len(origin) :]) for p in known]
        self.memo[key] = (path, [])
        self.alive.append((wide, narrow))
        w, n = resolve(wide, self.wide_doc), resolve(narrow, self.narrow_doc)
        found = self._covers(w, n, path, depth)[:MAX_PROBLEMS]
        self.memo[key] = (path, found)
        return found

    def _covers(self, w: Any, n: Any, path: str, depth: int) -> list[Problem]:
        if n is False:  # accepts nothing: any schema covers it
            return []
        if w is False:
            kind = self._word("type narrowed", "type widened")
            return [Problem(path, kind, "one side accepts no value at all")]
        n_variants, w_variants = variants(n), variants(w)
        if n_variants is not None:
            found = [p for v in n_variants for p in self.covers(w, v, path, depth + 1)]
            if overlap(self._all_types(w, self.wide_doc), self._all_types(n, self.narrow_doc)):
                kind = self._word("type narrowed", "type widened")  # only some variants lost
                found = [
                    replace(p, kind=kind) if p.path == path and p.kind == "type changed" else p
                    for p in found
                ]
            return found
        if w_variants is not None:
            return self._some_variant(w_variants, n, path, depth)
        w_types, n_types = types_of(w), types_of(n)
        if w_types is not None:
            if n_types is None:
                kind = self._word("type narrowed", "type widened")
                return [Problem(path, kind, f"any value becomes {type_names(w_types)} only")]
            missing = {t for t in n_types if not type_covered(t, w_types)}
            if missing:
                old_t, new_t = (n_types, w_types) if self.old_is_narrow else (w_types, n_types)
                changed = not overlap(w_types, n_types)
                kind = "type changed" if changed else self._word("type narrowed", "type widened")
                return [Problem(path, kind, f"was {type_names(old_t)}, now {type_names(new_t)}")]
        found = self._enum(w, n, path) + self._bounds(w, n, path)
        if both_are(w, n, "object"):
            found += self._object(w, n, path, depth)
        if both_are(w, n, "array"):
            found += self._array(w, n, path, depth)
        return found

    def _all_types(self, node: Any, doc: dict[str, Any]) -> frozenset[str] | None:
        """The JSON types of ``node`` and all its variants (None: any)."""
        node = resolve(node, doc)
        if not isinstance(node, dict):
            return frozenset()
        options = variants(node)
        if options is None:
            return types_of(node)
        found: set[str] = set()
        for variant in options[:100]:
            types = types_of(r) if isinstance(r := resolve(variant, doc), dict) else frozenset()
            if types is None:
                return None
            found |= types
        return frozenset(found)

    def _some_variant(
        self, options: list[Any], n: dict[str, Any], path: str, depth: int
    ) -> list[Problem]:
        n_types = types_of(n)
        tried: list[list[Problem]] = []
        for variant in options:
            resolved = resolve(variant, self.wide_doc)
            v_types = types_of(resolved) if isinstance(resolved, dict) else frozenset()
            if (
                v_types is not None
                and n_types is not None
                and not any(type_covered(t, v_types) for t in n_types)
            ):
                continue
            problems = self.covers(variant, n, path, depth + 1)
            if not problems:
                return []
            tried.append(problems)
        if tried:
            return min(tried, key=len)
        types = type_names(n_types) if n_types is not None else "any value"
        kind = self._word("type narrowed", "type widened")
        return [Problem(path, kind, f"{types} is not among the other version's types")]

    def _enum(self, w: dict[str, Any], n: dict[str, Any], path: str) -> list[Problem]:
        allowed = enum_values(w)
        if allowed is None:
            return []
        given = enum_values(n)
        if given is None:
            kind = self._word("new enum restriction", "enum restriction removed")
            return [Problem(path, kind, f"values limited to {show_values(allowed)}")]
        extra = [v for v in given if v not in allowed]
        if extra:
            kind = self._word("enum values removed", "enum values added")
            return [Problem(path, kind, show_values(extra))]
        return []

    def _bounds(self, w: dict[str, Any], n: dict[str, Any], path: str) -> list[Problem]:
        found = []
        kind = self._word("constraint tightened", "constraint loosened")
        for name in _LOWER_BOUNDS + _UPPER_BOUNDS + _EXACT:
            if name not in w:
                continue
            mine, theirs = w[name], n.get(name)
            if name in _NUMBER_BOUNDS:
                broken = not _bound_kept(name, as_number(mine), n)
            elif name in _LOWER_BOUNDS:
                broken = theirs is None or as_number(mine) > as_number(theirs)
            elif name in _UPPER_BOUNDS:
                broken = theirs is None or as_number(mine) < as_number(theirs)
            else:
                broken = mine != theirs
            if broken:
                old, new = (theirs, mine) if self.old_is_narrow else (mine, theirs)
                found.append(Problem(path, kind, f"{name} was {old!r}, now {new!r}"))
        if w.get("uniqueItems") is True and n.get("uniqueItems") is not True:
            found.append(Problem(path, kind, "items must now be unique"))
        if w.get(STRICT) is True and n.get(STRICT) is not True:
            found.append(
                Problem(path, "strict mode turned on", 'values it coerced ("5" for 5) are refused')
            )
        return found

    def _object(self, w: dict[str, Any], n: dict[str, Any], path: str, depth: int) -> list[Problem]:
        found: list[Problem] = []
        w_props, n_props = as_mapping(w.get("properties")), as_mapping(n.get("properties"))
        w_req, n_req = set(as_strings(w.get("required"))), set(as_strings(n.get("required")))
        w_extra, n_extra = w.get("additionalProperties", True), n.get("additionalProperties", True)
        for name in sorted(w_req - n_req):
            if name not in n_props and not self.old_is_narrow:
                continue  # reported below as a removed field
            kind = self._word("new required field", "field no longer required")
            found.append(Problem(f"{path}.{name}", kind, "a value without it was valid"))
        for name, n_field in n_props.items():
            where = f"{path}.{name}"
            if name in w_props:
                found += self.covers(w_props[name], n_field, where, depth + 1)
            elif self.old_is_narrow:
                found.append(Problem(where, "removed field", "the new input has no such field"))
            elif w_extra is False:
                found.append(Problem(where, "new field", "the old output forbade extra fields"))
            elif isinstance(w_extra, dict):
                found += self.covers(w_extra, n_field, where, depth + 1)
        if self.old_is_narrow and n_extra is not False:
            added = {k: v for k, v in w_props.items() if k not in n_props and k not in w_req}
            found += self._new_inputs(added, n_extra, path, depth)  # new required: reported above
        if not self.old_is_narrow:
            for name in sorted(set(w_props) - set(n_props)):
                found.append(
                    Problem(f"{path}.{name}", "removed field", "the new output has no such field")
                )
        if w_extra is False and n_extra is not False:
            kind = self._word("additionalProperties tightened", "additionalProperties loosened")
            found.append(Problem(path, kind, "extra fields were allowed and now are not"))
        elif isinstance(w_extra, dict) and n_extra is not False:
            rest = n_extra if isinstance(n_extra, dict) else {}
            found += self.covers(w_extra, rest, f"{path}.*", depth + 1)
        return found

    def _new_inputs(
        self, added: dict[str, Any], extra: Any, path: str, depth: int
    ) -> list[Problem]:
        """New optional input fields, where the old input took extra fields (ignored or kept)."""
        found: list[Problem] = []
        rest = extra if isinstance(extra, dict) else {}
        for name in sorted(added):
            refused = self.covers(added[name], rest, f"{path}.{name}", depth + 1)
            if refused:
                detail = (
                    "the old input took any value there as an extra field, the new one checks "
                    f"it: {refused[0].detail}; forbid extra fields in the old version "
                    "(extra='forbid') or type the new field Any"
                )
                found.append(Problem(f"{path}.{name}", "new field narrows an extra field", detail))
        return found

    def _array(self, w: dict[str, Any], n: dict[str, Any], path: str, depth: int) -> list[Problem]:
        found: list[Problem] = []
        w_prefix, n_prefix = as_list(w.get("prefixItems")), as_list(n.get("prefixItems"))
        w_items, n_items = w.get("items", {}), n.get("items", {})
        pairs = itertools.zip_longest(w_prefix, n_prefix, fillvalue=None)
        for i, (wi, ni) in enumerate(pairs):
            wide = wi if wi is not None else w_items
            narrow = ni if ni is not None else n_items
            found += self.covers(wide, narrow, f"{path}[{i}]", depth + 1)
        found += self.covers(w_items, n_items, f"{path}[]", depth + 1)
        return found


def _bound_kept(name: str, bound: float, narrow: dict[str, Any]) -> bool:
    """Whether every number the narrow schema allows is within the wide one's ``name`` bound.

    The narrow schema's inclusive and exclusive bounds both count (``gt=0`` is within
    ``ge=0``).
    """
    low = name in ("minimum", "exclusiveMinimum")
    inclusive = narrow.get("minimum" if low else "maximum")
    exclusive = narrow.get("exclusiveMinimum" if low else "exclusiveMaximum")
    strict = name.startswith("exclusive")
    for value, is_exclusive in ((inclusive, False), (exclusive, True)):
        if not isinstance(value, int | float):
            continue
        edge = float(value)
        if low and (edge > bound or (edge == bound and (is_exclusive or not strict))):
            return True
        if not low and (edge < bound or (edge == bound and (is_exclusive or not strict))):
            return True
    return False
