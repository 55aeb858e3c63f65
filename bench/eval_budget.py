"""How long the pathological evaluations of issue 12 take, before and after bounding them.

Four cases: a Choice ``StringMatches`` glob (``*a`` twelve times, then ``*b``,
on 40 characters), a JSONata ``$match`` with ``/^(a+)+$/`` on 41 characters,
``$map`` over ``[1..1e7]`` and a runaway JSONata recursion.

*after*: each case runs as a whole execution through
``stepflow.testing.WorkflowEnvironment`` with the default limits and the
budgets of a deployment (expression budget 1 s of the thread's CPU time,
decision budget 10 s of wall time); the figures are the wall and CPU time of
the execution, and its outcome. On a busy machine the wall time of an
expression stopped by its budget grows with the load; its CPU time does not.

*before* (``--before``): the old evaluation of the same case, each in a child
process killed after ``--cap`` seconds: the glob through the backtracking
regular expression it used to be translated into, ``$match`` on Python's
``re`` (jsonata-python's default engine), ``$map`` and the recursion with no
time budget. A killed case prints as ``> cap``.

    .venv/bin/python bench/eval_budget.py [--before] [--cap 60]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import re
import time
from collections.abc import Callable
from typing import Any

GLOB_PATTERN = "*a" * 12 + "*b"
GLOB_TEXT = "a" * 40
REGEX_TEXT = "a" * 40 + "!"
MAP = "$count($map([1..10000000], function($v){$v * 2}))"
RECURSION = "($f := function($x){$f($x + 1)}; $f(0))"


def _jsonata(expression: str) -> dict[str, Any]:
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Work",
        "States": {"Work": {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True}},
    }


CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "glob": (
        {
            "StartAt": "Pick",
            "States": {
                "Pick": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.s", "StringMatches": GLOB_PATTERN, "Next": "End"}],
                    "Default": "End",
                },
                "End": {"Type": "Succeed"},
            },
        },
        {"s": GLOB_TEXT},
    ),
    "$match": (_jsonata("$count($match($states.input.s, /^(a+)+$/))"), {"s": REGEX_TEXT}),
    "$map 1e7": (_jsonata(MAP), {}),
    "recursion": (_jsonata(RECURSION), {}),
}


def after(name: str) -> tuple[float, float, str]:
    from stepflow.data.budget import deployed_budgets
    from stepflow.limits import DEFAULT_LIMITS
    from stepflow.testing import WorkflowEnvironment

    definition, value = CASES[name]
    budgets = deployed_budgets(DEFAULT_LIMITS, time.monotonic, time.thread_time)
    env = WorkflowEnvironment(budgets=budgets)
    started, cpu = time.perf_counter(), time.process_time()
    arn = env.start(definition, value)
    env.run(arn)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = env.result(arn)
    outcome = result.status if result.succeeded else f"{result.status} {result.error}"
    if result.cause and "budget" in result.cause:
        outcome += " (" + result.cause.rsplit(": ", 1)[-1] + ")"
    return elapsed, cpu, outcome


def _old_glob() -> None:
    # what engine/choice.py used to build: `*` -> `.*`, matched with fullmatch
    source = "".join(".*" if ch == "*" else re.escape(ch) for ch in GLOB_PATTERN)
    re.compile(source, re.DOTALL).fullmatch(GLOB_TEXT)


def _old_match() -> None:
    re.compile(r"^(a+)+$").search(REGEX_TEXT)


def _unbudgeted(expression: str) -> Callable[[], None]:
    def run() -> None:
        from stepflow.data.jsonata import compile_template

        template = compile_template("{% " + expression + " %}", "Output")
        # the step guard (2,000,000 steps) ends the recursion with an error
        with contextlib.suppress(Exception):
            template.evaluate({"input": {}, "context": {}}, {})

    return run


BEFORE: dict[str, Callable[[], None]] = {
    "glob": _old_glob,
    "$match": _old_match,
    "$map 1e7": _unbudgeted(MAP),
    "recursion": _unbudgeted(RECURSION),
}


def _child(name: str) -> None:
    BEFORE[name]()


def before(name: str, cap: float) -> str:
    process = multiprocessing.Process(target=_child, args=(name,))
    started = time.perf_counter()
    process.start()
    process.join(cap)
    elapsed = time.perf_counter() - started
    if process.is_alive():
        process.kill()
        process.join()
        return f"> {cap:.0f} s (killed)"
    return f"{elapsed:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", action="store_true", help="also time the old evaluation")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before a case is killed")
    args = parser.parse_args(argv)
    print(f"{'case':<12} {'before (wall)':>20}   {'after: wall':>11} {'cpu':>8}  outcome")
    for name in CASES:
        old = before(name, args.cap) if args.before else "-"
        elapsed, cpu, outcome = after(name)
        print(f"{name:<12} {old:>20}   {elapsed:>9.2f} s {cpu:>6.2f} s  {outcome}")
    flags = f" --before --cap {args.cap:g}" if args.before else ""
    print(f"reproduce: .venv/bin/python bench/eval_budget.py{flags}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
