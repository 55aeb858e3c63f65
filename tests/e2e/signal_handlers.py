"""Lambda tasks for ``stepflow local --handlers`` in the signal tests.

``sleep`` appends a line to the file ``$STEPFLOW_TEST_STARTS`` names as it
starts, then sleeps ``seconds`` (3600: stuck for the test's purposes).
"""

from __future__ import annotations

import os
import time
from typing import Any


def sleep(payload: Any) -> Any:
    with open(os.environ["STEPFLOW_TEST_STARTS"], "a", encoding="utf-8") as starts:
        starts.write(f"{payload['n']}\n")
    time.sleep(float(payload["seconds"]))
    return payload


HANDLERS = {"sleep": sleep}
