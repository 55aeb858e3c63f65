"""End to end: a Lambda task longer than the stepper function's timeout (a stand-in).

The stepper only decides and sends; task messages go to the tasks queue, whose
runner takes one at a time. With the stepper's timeout emulated short (the
local pollers abandon an overrunning batch, as Lambda cuts an invocation off),
a task longer than it still finishes, its handler called once.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from stepflow.local import LocalStack

from tests.e2e.test_local_stack import FN, start
from tests.e2e.waiting import wait_for

CALLS: list[float] = []
LOCK = threading.Lock()


def slow(payload: Any) -> Any:
    with LOCK:
        CALLS.append(payload["seconds"])
    time.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


def quick(payload: Any) -> Any:
    return {"quick": payload}


def test_a_task_longer_than_the_steppers_timeout_finishes_and_runs_once() -> None:
    # GIVEN the local stack with the stepper function's timeout emulated at 2 s (room for a
    # loaded machine's ordinary batches)
    with LocalStack(port=0, handlers={"slow": slow, "quick": quick}, stepper_timeout=2.0) as stack:
        sfn = stack.stepfunctions()
        definition = {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "Slow",
                            "States": {
                                "Slow": {"Type": "Task", "Resource": FN + "slow", "End": True}
                            },
                        },
                        {
                            "StartAt": "Quick",
                            "States": {
                                "Quick": {"Type": "Task", "Resource": FN + "quick", "End": True}
                            },
                        },
                    ],
                    "End": True,
                }
            },
        }
        CALLS.clear()
        # WHEN one task takes 5 s next to a quick one
        arn = start(sfn, "slow", definition, {"seconds": 5})
        described = wait_for(sfn, arn, timeout=60.0)
        # THEN the execution finishes (the slow task ran on the runner), the task once
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == [{"slept": 5}, {"quick": {"seconds": 5}}]
        assert CALLS == [5]
        # AND no stepper invocation ran over its timeout
        assert stack._pollers is not None and stack._pollers.timeouts == 0
