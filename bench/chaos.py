"""The chaos state machine at benchmark scale: thousands of fault interleavings.

Runs tests/model/chaos.py's ChaosMachine (the real Stepper over the in-memory ports,
with duplicate, reordered, lost and early delivery, crashes around commits and sends,
racing steppers, API calls whose send is lost, workers and stale workers) for
``--examples`` interleavings of up to ``--steps`` rules each, and prints executions
run, faults injected by kind, lost and doubled transitions, and the wall time.

    .venv/bin/python bench/chaos.py --examples 10000 --steps 25
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model.chaos import (
    ChaosMachine,
    HeldChaosMachine,
    InPlaceChaosMachine,
    RunnerChaosMachine,
)


def main() -> int:
    """Run the interleavings; exit 1 on any violated invariant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="interleavings")
    parser.add_argument("--steps", type=int, default=25, help="rules per interleaving, at most")
    parser.add_argument(
        "--runner",
        action="store_true",
        help="every task through the queue and the runner's own commit (as deployed)",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="as --runner, with group messages and the runner's tasks run in place",
    )
    parser.add_argument(
        "--held",
        action="store_true",
        help="as --in-place, each delivery with a deadline: the held-until mark is written",
    )
    args = parser.parse_args()
    machine: type[ChaosMachine] = ChaosMachine
    if args.held:
        machine = HeldChaosMachine
    elif args.in_place:
        machine = InPlaceChaosMachine
    elif args.runner:
        machine = RunnerChaosMachine
    started = time.perf_counter()
    lost_or_doubled = 0
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=args.examples,
                stateful_step_count=args.steps,
                deadline=None,
                phases=[Phase.generate],
                derandomize=True,  # the same interleavings on every run
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except AssertionError as exc:  # an invariant broke: a lost or doubled transition
        lost_or_doubled = 1
        print(f"VIOLATION: {exc}")
    elapsed = time.perf_counter() - started
    totals = machine.totals
    print(f"interleavings run:        {totals['interleavings']}")
    print(f"executions run:           {totals['executions']}")
    print("faults injected by kind:")
    for key, count in sorted(totals.items()):
        if key.startswith("fault: "):
            print(f"  {key[7:]:<22}{count}")
    print(f"stale completions refused: {totals['stale_refused']}")
    print(
        f"task reruns after a crash between run and record (allowed): "
        f"{totals['reruns_after_a_crash']}"
    )
    print(f"lost or doubled transitions: {lost_or_doubled}")
    print(f"wall time: {elapsed:.1f} s")
    print(
        f"reproduce: .venv/bin/python bench/chaos.py --examples {args.examples} "
        f"--steps {args.steps}{_mode(args)}"
    )
    return lost_or_doubled


def _mode(args: argparse.Namespace) -> str:
    """The machine's option, as given (for the reproduce line)."""
    for flag in ("held", "in_place", "runner"):
        if getattr(args, flag):
            return " --" + flag.replace("_", "-")
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
