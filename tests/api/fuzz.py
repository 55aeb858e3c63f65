"""Hypothesis strategies for Step Functions requests, built from botocore's input shapes.

Every operation of botocore's ``stepfunctions`` model gets a strategy: its
input shape walked member by member, each member valid-ish most of the time
(ARNs of resources that exist, names, JSON text, definitions) and hostile the
rest (wrong types, huge or deep values, lone surrogates, control characters,
members left out although required). :func:`requests` adds bodies that are
not even JSON. The suite runs them through the API Lambda's handler
(:mod:`tests.api.test_fuzz_api`) and as raw HTTP to ``stepflow local``
(:mod:`tests.e2e.test_local_fuzz`); ``bench/fuzz_api.py`` runs more.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SAFE = st.characters(
    min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='<>{}[]?*"#%\\^|~`$&,;:/'
)

PROFILE_EXAMPLES = {"ci": 300, "long": 5000}
"""Examples per fuzz test: ``HYPOTHESIS_PROFILE=long`` for the long run."""


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis settings of the profile named by ``HYPOTHESIS_PROFILE`` (default ``ci``)."""
    examples = PROFILE_EXAMPLES.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), 300)
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,  # a hang is caught by the per-request timeout instead
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("HYPOTHESIS_PROFILE") != "long",
        database=None,
    )


MODEL = botocore.session.get_session().get_service_model("stepfunctions")
OPERATIONS = tuple(MODEL.operation_names)

PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
WAIT = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}})
ROLE = "arn:aws:iam::000000000000:role/StepFlow"


def nested(depth: int) -> str:
    """``[[...]]`` ``depth`` levels deep."""
    return "[" * depth + "]" * depth


HOSTILE_TEXT = (
    "",
    " ",
    "\ud800",
    "a\udc00b",
    "\x00",
    "\u202e\u0000\u007f",
    "x" * 300_000,
    "é" * 100_000,
    nested(10_000),
    "[" * 10_000,
    '"\\ud800"',
    "null",
    "arn:aws:states:us-east-1:000000000000:stateMachine:",
    "arn:aws:states:us-east-1:000000000000:execution:M:",
    "arn:aws:states:us-east-1:999999999999:stateMachine:M",
    "arn:aws:states:us-east-1:000000000000:activity:a:b:c",
    "arn:aws:states:us-east-1:000000000000:stateMachine:M:99999999999999999999",
    "arn:aws:states:us-east-1:000000000000:stateMachine:M:" + "9" * 5000,
    "%s%s%n",
    "../../etc/passwd",
    "1e400",
    "*" * 80,
)
"""Strings that broke or might break something."""

HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**70,
    1e308,
    [],
    {},
    [None],
    {"": None},
    json.loads(nested(400)),
)
"""Values of the wrong type for most members."""

JSON_TEXTS = (
    "{}",
    '{"a": 1}',
    "[]",
    '"text"',
    "12345678901234567890123",
    "1e400",
    nested(512),
    nested(513),
    nested(10_000),
    '"\\ud800"',
    '{"\\udfff": 1}',
    "{",
    "NaN",
    json.dumps({"big": "x" * 262_150}),
    json.dumps("€" * 90_000, ensure_ascii=False),
)
"""Execution inputs, task outputs and TestState variables: valid and hostile."""

DEFINITIONS = (
    PASS,
    WAIT,
    json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}}),
    json.dumps(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "P",
            "States": {"P": {"Type": "Pass", "Output": "{% $states.input %}", "End": True}},
        }
    ),
    '{"StartAt": "X", "States": {}}',
    "{",
    "",
    nested(10_000),
    '{"StartAt": "\\ud800", "States": {}}',
    json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Comment": "c" * 1_048_600}}}),
)
"""State machine definitions: valid, invalid, deep, oversized."""


@dataclass
class Known:
    """ARNs and tokens of resources that exist, so that requests reach deep into operations."""

    arns: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def requests(known: Known) -> st.SearchStrategy[tuple[str, str]]:
    """``(operation, body)``: a JSON body from the operation's shape, sometimes not JSON at all."""
    shaped = st.sampled_from(OPERATIONS).flatmap(lambda name: _request(name, known))
    garbage = st.tuples(
        st.sampled_from((*OPERATIONS, "Nope", "")),
        st.one_of(
            st.text(max_size=200),
            st.sampled_from(("[]", "null", "1", '"s"', nested(10_000), "{" * 5000, "\ud800")),
        ),
    )
    return st.one_of(shaped, shaped, shaped, garbage)


def _request(operation: str, known: Known) -> st.SearchStrategy[tuple[str, str]]:
    shape = MODEL.operation_model(operation).input_shape
    if shape is None:
        return st.just((operation, "{}"))
    # half the requests are well typed throughout, so that they reach the operations' own checks
    params = st.one_of(
        _structure(shape, known, 0, hostile=False),
        _structure(shape, known, 0, hostile=True, drop_required=True),
    )
    return params.map(lambda p: (operation, json.dumps(p)))


def _structure(
    shape: Any, known: Known, depth: int, *, hostile: bool = True, drop_required: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    members = {
        name: _member(member, name, known, depth + 1, hostile)
        for name, member in shape.members.items()
    }
    required = set(shape.required_members)
    present = st.fixed_dictionaries(
        {name: members[name] for name in required},
        optional={name: s for name, s in members.items() if name not in required},
    )
    if not drop_required or not required:
        return present
    # now and then, a required member is left out
    missing = st.fixed_dictionaries({}, optional=members)
    return st.one_of(present, present, present, present, missing)


def _member(
    shape: Any, name: str, known: Known, depth: int, hostile: bool
) -> st.SearchStrategy[Any]:
    typed = _typed(shape, name, known, depth, hostile)
    if not hostile:
        return typed
    wrong = st.one_of(st.sampled_from(HOSTILE_VALUES), st.sampled_from(HOSTILE_TEXT))
    return st.one_of(*([typed] * 5), wrong)


def _typed(
    shape: Any, name: str, known: Known, depth: int, hostile: bool
) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if depth > 6:
        return st.none()
    if kind == "structure":
        return _structure(shape, known, depth, hostile=hostile)
    if kind == "list":
        items = _member(shape.member, name, known, depth + 1, hostile)
        many = [{"key": f"k{i}", "value": "v"} for i in range(51)]
        return (
            st.lists(items, max_size=3) | st.just(many) if hostile else st.lists(items, max_size=2)
        )
    if kind == "map":
        values = _member(shape.value, name, known, depth + 1, hostile)
        return st.dictionaries(st.text(max_size=8), values, max_size=3)
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "long"):
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 1000)
        if not hostile:
            return st.integers(min_value=low, max_value=high)
        return st.integers(min_value=low - 2, max_value=high + 2) | st.integers()
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "timestamp":
        return st.floats(min_value=0, max_value=4e9) | st.text(max_size=30)
    return _string(shape, name, known, hostile)


def _string(shape: Any, name: str, known: Known, hostile: bool) -> st.SearchStrategy[str]:
    low, high = int(shape.metadata.get("min", 0)), int(shape.metadata.get("max", 64))
    if hostile:
        text = st.text(max_size=high + 4)
    else:
        text = st.text(_SAFE, min_size=max(low, 1), max_size=min(high, 64))
    if shape.enum:
        return st.sampled_from(list(shape.enum)) | text if hostile else st.sampled_from(shape.enum)
    if shape.name == "SensitiveData":
        return st.sampled_from(JSON_TEXTS) | st.recursive(
            st.none() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ).map(json.dumps)
    if shape.name == "Definition":
        return st.sampled_from(DEFINITIONS)
    lowered = name.lower()
    if "arn" in lowered:
        pool = st.sampled_from(known.arns) if known.arns else st.just(ROLE)
        return st.one_of(pool, pool, pool, text, st.just(ROLE)) if hostile else pool
    if "token" in lowered and "client" not in lowered:
        pool = st.sampled_from(known.tokens) if known.tokens else text
        return st.one_of(pool, text, pool.map(lambda t: t + "x"), pool.map(lambda t: t[:-3]))
    if name == "name":
        names = ("M", "run-1", "a.b_c-d", "n" * 80)
        return (
            st.sampled_from((*names, "n" * 81, "a b")) | text
            if hostile
            else st.sampled_from(names) | text
        )
    return text
