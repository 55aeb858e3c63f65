"""The cost of the own-resource scan on a service task's parameters (OwnTargetGuard).

Every service task's parameters are scanned for StepFlow's resource names
before the call (docs/security-roles.md). Prints the best of ``--repeat`` runs
for parameter trees up to the default payload limit (256 KiB) and past it.

Reproduce: .venv/bin/python bench/own_names_scan.py --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from typing import Any

from stepflow.runtime.targets import OwnResources, ScanLimitError

ACCOUNT = "123456789012"
OWN = OwnResources.of(
    functions=["stepflow-api", "stepflow-stepper", "stepflow-runner", "stepflow-sweeper"],
    queues=[
        f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/stepflow-transitions",
        f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/stepflow-tasks",
        f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/stepflow-transitions-dlq",
    ],
    queue_prefixes=["stepflow-tq-", "stepflow-tqdlq-"],
    tables=["stepflow-log"],
    buckets=["stepflow-payloads"],
    secrets=[f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:StepFlowKey-AbCdEf"],
)

CASES: dict[str, Any] = {
    "small putItem": {"TableName": "orders", "Item": {"id": {"S": "1"}, "total": {"N": "9"}}},
    "64k short strings (~256 KiB)": ["ab"] * 64_000,
    "one 256 KiB string": "x" * 262_000,
    "256 KiB of near misses": "stepflow-log-x " * 17_000,
    "2,000 records x 10 fields": [
        {f"field{i}": f"value-{j}-{i}" for i in range(10)} for j in range(2_000)
    ],
    "percent-encoded strings": ["a%2Fb%252Fc"] * 20_000,
}


def best_ms(value: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(ScanLimitError):
            OWN.named_in_tree(value)
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    for name, value in CASES.items():
        size = len(json.dumps(value, separators=(",", ":")))
        print(f"{name:32} {size:>9} bytes  {best_ms(value, args.repeat):9.3f} ms")


if __name__ == "__main__":
    main()
