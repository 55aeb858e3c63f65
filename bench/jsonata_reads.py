"""µs per JSONata expression: the direct read against jsonata-python, side by side in one run.

Each expression is compiled once as a field template and evaluated many times on the
same ``$states``, first as it ships (a plain expression read directly by
``stepflow.data.jsonata_fast``), then with its direct reader removed (jsonata-python
alone, as every expression was before). Both must give the same value; the last
column is the ratio. ``read``: ``direct``; ``miss`` (a direct reader that leaves this
input to the library: it costs the failed read on top); ``lib`` (no direct reader).

    .venv/bin/python bench/jsonata_reads.py [--evaluations 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from stepflow.data import jsonata
from stepflow.data.jsonata_fast import MISS

STATES: dict[str, Any] = {
    "input": {"n": 41, "i": 7, "status": "DONE", "items": [{"price": 5}, {"price": 7}]},
    "context": {"Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:m:run-1"}},
}
VARIABLES: dict[str, Any] = {"total": 12, "order": {"id": "o-1"}}
EXPRESSIONS = [
    "$states.input.n",
    "$states.context.Execution.Id",
    "$order.id",
    "$states.input.n + 1",
    "$states.input.i < 10000",
    "$states.input.status = 'DONE'",
    "'iteration ' & $string($states.input.i)",
    "$states.input.n > 1 and $states.input.status = 'DONE'",
    "$states.input.items.price",  # a path over an array: the library
    "$sum($states.input.items.price)",  # a function: the library
]


def per_evaluation(template: jsonata.JSONataTemplate, evaluations: int, repeat: int) -> float:
    """Best µs of CPU per evaluation over ``repeat`` rounds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(evaluations):
            template.evaluate(STATES, VARIABLES)
        best = min(best, (time.process_time() - started) / evaluations * 1e6)
    return best


def measure(expression: str, evaluations: int, repeat: int) -> tuple[float, float, str]:
    """(µs as shipped, µs through the library, how it is read) for one expression.

    How: ``direct``, ``miss`` (a direct reader that leaves this input to the library)
    or ``lib`` (no direct reader).
    """
    template = jsonata.compile_template("{% " + expression + " %}", "Output")
    node = template._root
    assert isinstance(node, jsonata._Expression)
    fast = node.fast
    how = "lib" if fast is None else "miss" if fast(STATES, VARIABLES) is MISS else "direct"
    direct_value = template.evaluate(STATES, VARIABLES)
    direct = per_evaluation(template, evaluations, repeat)
    node.fast = None
    try:
        library_value = template.evaluate(STATES, VARIABLES)
        library = per_evaluation(template, evaluations, repeat)
    finally:
        node.fast = fast
    if direct_value != library_value:
        raise SystemExit(f"{expression}: {direct_value!r} != {library_value!r}")
    return direct, library, how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'expression':<56} {'read':>6} {'as shipped µs':>14} {'library µs':>11} {'ratio':>6}")
    for expression in EXPRESSIONS:
        direct, library, how = measure(expression, args.evaluations, args.repeat)
        print(
            f"{expression:<56} {how:>6} {direct:>14.2f} {library:>11.2f} {library / direct:>5.1f}x"
        )
    print(
        "reproduce: .venv/bin/python bench/jsonata_reads.py "
        f"--evaluations {args.evaluations} --repeat {args.repeat}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
