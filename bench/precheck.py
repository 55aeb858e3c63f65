"""What checking a Task's parameters before scheduling costs, per task attempt.

Times :meth:`Registry.parameters_problem` (the check every decision runs before
it emits TaskScheduled) for a typical request and for requests near the 256 KiB
payload limit, against the cost of serialising the same parameters once as compact JSON
(which TaskScheduled already does), and the first call of a service (botocore's model
loaded from disk, once per process).

Reproduce: .venv/bin/python bench/precheck.py
"""

from __future__ import annotations

import json
import platform
import time
from functools import partial
from typing import Any

from stepflow.integrations import default_registry
from stepflow.integrations.prechecks import input_shape

R = "arn:aws:states:::"


def per_call(fn: Any, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    registry = default_registry()
    start = time.perf_counter()
    input_shape("dynamodb", "PutItem")
    first = time.perf_counter() - start
    item = {"id": {"S": "o-1"}, "total": {"N": "5"}, "lines": {"L": [{"S": "a"}, {"S": "b"}]}}
    big_item = {f"a{i}": {"S": "x" * 40} for i in range(4_500)}  # ~250 KB
    cases: list[tuple[str, str, Any]] = [
        ("dynamodb:putItem small", R + "dynamodb:putItem", {"TableName": "t", "Item": item}),
        ("dynamodb:putItem 250 KB", R + "dynamodb:putItem", {"TableName": "t", "Item": big_item}),
        (
            "apigateway:invoke 250 KB headers",
            R + "apigateway:invoke",
            {
                "ApiEndpoint": "h",
                "Method": "GET",
                "Headers": {f"h{i}": ["v" * 40] for i in range(4_500)},
            },
        ),
        (
            "sqs:sendMessage 250 KB body",
            R + "sqs:sendMessage",
            {"QueueUrl": "q", "MessageBody": {"x": "y" * 250_000}},
        ),
    ]
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"first dynamodb check (botocore model from disk, once): {first * 1000:.1f} ms")
    for name, resource, parameters in cases:
        size = len(json.dumps(parameters))
        repeat = 2000 if size < 10_000 else 20
        check = per_call(partial(registry.parameters_problem, resource, parameters), repeat)
        encode = per_call(partial(json.dumps, parameters, separators=(",", ":")), repeat)
        print(
            f"{name:34} {size / 1024:7.1f} KiB  check {check * 1e6:9.1f} us  "
            f"(serialising it once: {encode * 1e6:8.1f} us)"
        )


if __name__ == "__main__":
    main()
