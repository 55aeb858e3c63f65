"""Every outcome of ``stepflow.testing.execute`` on many flows, as one digest per case.

Run it once with an earlier commit's engine first on ``PYTHONPATH`` (e.g. unpacked by
``git archive main layers/stepflow | tar -x -C /tmp/base``) and once without, then compare:

    PYTHONPATH=/tmp/base/layers/stepflow .venv/bin/python tools/engine_differential.py > before
    .venv/bin/python tools/engine_differential.py > after
    diff before after    # no output: the same status, output, error, cause and history

The cases: the pure-flow conformance cases in ``../shared/conformance`` (when present)
and ``--random`` Pass/Choice machines (:func:`random_machine`, seeded). A case's digest
covers its status, output, error, cause and every history event's JSON text, keys in
order, without its wall-clock timestamp (generated ids and ISO times are masked).
``States.UUID`` and ``States.MathRandom`` differ on every run: flows that call them are
left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "aws-recorded-dev.jsonl"
_UNSTABLE = ("States.UUID", "States.MathRandom")
# what differs between two runs of one flow: generated ids and names, wall-clock times
_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"
)


def random_machine(rng: random.Random) -> dict[str, Any]:
    """A JSONPath machine of Pass and Choice states moving forward to Succeed or Fail."""
    count = rng.randint(1, 6)
    names = [f"S{i}" for i in range(count)]
    states: dict[str, Any] = {}
    for i, name in enumerate(names):
        after = [*names[i + 1 :], "Done", "Failed"]
        if rng.random() < 0.35:
            states[name] = _choice(rng, after)
        else:
            states[name] = _pass(rng, after)
    states["Done"] = {"Type": "Succeed"}
    if rng.random() < 0.3:
        states["Done"]["OutputPath"] = rng.choice(["$", "$.i", "$.mark"])
    if "Failed" in json.dumps(states):
        states["Failed"] = {"Type": "Fail", "Error": "Boom", "Cause": "a random machine"}
    return {"StartAt": names[0], "States": states}


def random_input(rng: random.Random) -> Any:
    """A state machine's input: mostly an object with the keys the states read."""
    if rng.random() < 0.1:
        return rng.choice([[1, 2], "text", 3, None])
    value: dict[str, Any] = {}
    for key, make in (
        ("i", lambda: rng.choice([0, 1, 2, 3, 0, 1, -3, 2**31, 2**70, 1.5, "7", True, None])),
        ("s", lambda: rng.choice(["a", "b", "é", "\U0001f600", ""])),
        ("a", lambda: rng.choice([[], [1, "x"], {"b": 1}])),
        ("mark", lambda: {"old": 1}),
    ):
        if rng.random() < 0.9:
            value[key] = make()
    return value


def _pass(rng: random.Random, after: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Pass", "Next": after[0]}  # every state reachable
    if rng.random() < 0.2:
        state["InputPath"] = rng.choice(["$", "$.a", "$.missing"])
    roll = rng.random()
    if roll < 0.5:
        fields = {
            "i.$": "States.MathAdd($.i, 1)",
            "label.$": rng.choice(
                ["States.Format('iteration {}', $.i)", "States.Format('{} and {}', $.s, $.i)"]
            ),
            "s.$": "$.s",
            "n.$": "States.ArrayLength($.a)",
            "fixed": {"k": [1, 2]},
            "ctx.$": "$$.State.Name",
        }
        keys = rng.sample(sorted(fields), rng.randint(1, 3))
        state["Parameters"] = {k: fields[k] for k in keys}
    elif roll < 0.75:
        state["Result"] = rng.choice([{"marked": True}, 5, "r", None])
    if rng.random() < 0.6:
        state["ResultPath"] = rng.choice(["$", "$.mark", "$.mark", "$.i", "$.a.b", "$.s.x", None])
    if rng.random() < 0.2:
        state["OutputPath"] = rng.choice(["$", "$.mark", "$.i"])
    if rng.random() < 0.1:
        state["Assign"] = {"seen.$": "$"}
    return state


def _choice(rng: random.Random, after: list[str]) -> dict[str, Any]:
    rules = []
    for _ in range(rng.randint(1, 3)):
        rule = rng.choice(
            [
                {"Variable": "$.i", "NumericLessThan": rng.choice([1, 5, 2.5])},
                {"Variable": "$.i", "NumericEquals": rng.choice([0, 1])},
                {"Variable": "$.s", "StringEquals": rng.choice(["a", "é"])},
                {"Variable": "$.i", "IsPresent": True},
                {"Variable": "$.a", "IsNull": False},
                {"Not": {"Variable": "$.s", "StringGreaterThan": "a"}},
                {
                    "And": [
                        {"Variable": "$.i", "IsNumeric": True},
                        {"Variable": "$.i", "NumericGreaterThanEquals": 0},
                    ]
                },
            ]
        )
        if rng.random() < 0.15:
            rule = {**rule, "Assign": rng.choice([{"r.$": "$.i"}, {}])}
        rules.append({**rule, "Next": rng.choice(after)})
    state: dict[str, Any] = {"Type": "Choice", "Choices": rules}
    if rng.random() < 0.8 or after[0] not in json.dumps(rules):  # every state reachable
        state["Default"] = after[0]
    if rng.random() < 0.2:
        state["OutputPath"] = rng.choice(["$", "$.s"])
    if rng.random() < 0.15:
        state["Assign"] = rng.choice([{"c.$": "$.s"}, {}])
    return state


def digest(definition: Any, value: Any) -> tuple[str, str]:
    """The status and a digest of everything ``execute`` reports for one run."""
    from stepflow.testing import execute

    try:
        result = execute(definition, value)
    except Exception as exc:  # an invalid definition: its message is the outcome
        text = f"{type(exc).__name__}: {exc}"
        return "RAISED", hashlib.sha256(text.encode()).hexdigest()[:16]
    events = [
        json.dumps({k: v for k, v in event.items() if k != "timestamp"}, ensure_ascii=False)
        for event in result.history
    ]
    whole = json.dumps(
        [result.status, result.output, result.error, result.cause, events], ensure_ascii=False
    )
    whole = _VARYING.sub("<varies>", whole)
    return result.status, hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def cases(random_count: int, seed: int, *, conformance: bool = True) -> list[tuple[str, Any, Any]]:
    """Every case: ``(id, definition, input)``."""
    found: list[tuple[str, Any, Any]] = []
    if conformance and SHARED.exists():
        for line in SHARED.read_text().splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            if case["needs"] or any(u in json.dumps(case["definition"]) for u in _UNSTABLE):
                continue
            found.append((case["id"], case["definition"], case["input"]))
    rng = random.Random(seed)
    for n in range(random_count):
        found.append((f"random-{seed}-{n}", random_machine(rng), random_input(rng)))
    return found


def main(argv: list[str] | None = None) -> int:
    """Print ``<case id> <status> <digest>`` per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=500)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--no-conformance", action="store_true", help="the random machines only")
    args = parser.parse_args(argv)
    for case_id, definition, value in cases(
        args.random, args.seed, conformance=not args.no_conformance
    ):
        status, digest_text = digest(definition, value)
        print(f"{case_id} {status} {digest_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
