"""EventBridge entries at their limits: the 256 KB entry, the redrive date of a redriven run."""

from __future__ import annotations

import json
from typing import Any

from stepflow.aws.hook_eventbridge import MAX_REQUEST_BYTES, EventBridgeHook, entry_size
from stepflow.hooks import ExecutionInfo, HookEvent
from stepflow.hooks.status_change import fit_detail
from stepflow.hooks.support import ExecutionFacts

SM = "arn:aws:states:us-east-1:1:stateMachine:m"
ARN = "arn:aws:states:us-east-1:1:execution:m:e"
INFO = ExecutionInfo(ARN, SM, "e")


def _failed(cause: str) -> HookEvent:
    details = {"error": "E", "cause": cause}
    event = {"id": 9, "type": "ExecutionFailed", "executionFailedEventDetails": details}
    return HookEvent("ExecutionFailed", INFO, 9, 1700000001.0, event)


def _detail(entry: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(entry["Detail"])
    return detail


def test_an_entry_over_256_kb_drops_its_input_first_and_then_fits() -> None:
    # GIVEN an input just under AWS's 248 KB rule and a long cause: together over 256 KB
    big_input = json.dumps({"x": "a" * 240_000})
    hook = EventBridgeHook(None, facts=lambda arn: ExecutionFacts(1700000000.0, big_input))
    (entry,) = hook.entries([_failed("c" * 32_768)])
    # THEN the entry fits, the input is left out (flagged) and the cause is whole
    assert entry_size(entry) <= MAX_REQUEST_BYTES
    detail = _detail(entry)
    assert detail["input"] is None and detail["inputDetails"] == {"included": False}
    assert detail["cause"] == "c" * 32_768 and detail["error"] == "E"


def test_a_cause_too_large_alone_is_cut_short_to_fit() -> None:
    hook = EventBridgeHook(None, facts=lambda arn: ExecutionFacts(1700000000.0, "{}"))
    (entry,) = hook.entries([_failed("\u00e9" * 300_000)])  # escaped: 6 bytes a character
    assert entry_size(entry) <= MAX_REQUEST_BYTES
    detail = _detail(entry)
    assert detail["input"] is None and detail["error"] == "E"
    assert 0 < len(detail["cause"]) < 300_000 and set(detail["cause"]) == {"\u00e9"}
    assert entry_size(entry) > MAX_REQUEST_BYTES - 16  # cut no more than needed


def test_fit_detail_keeps_a_detail_that_fits_and_drops_output_after_input() -> None:
    detail = {"input": "i" * 100, "inputDetails": {"included": True}, "output": "o" * 100,
              "outputDetails": {"included": True}, "cause": None, "error": None}  # fmt: skip
    assert fit_detail(detail, 10_000) == detail
    fitted = fit_detail(detail, 150)
    assert fitted["input"] is None and fitted["output"] is None
    assert fitted["outputDetails"] == {"included": False}


def test_the_end_of_a_redriven_run_carries_the_heads_redrive_date() -> None:
    # GIVEN the end of run 1 (redriven) in a batch without its ExecutionRedriven
    redriven = ExecutionInfo(ARN, SM, "e", redrive_count=1)
    details = {"output": "{}"}
    event = {"id": 30, "type": "ExecutionSucceeded", "executionSucceededEventDetails": details}
    end = HookEvent("ExecutionSucceeded", redriven, 30, 1700000100.0, event)
    head = ExecutionFacts(1700000000.0, "{}", redrive_count=1, redrive_date=1700000050.0)
    (entry,) = EventBridgeHook(None, facts=lambda arn: head).entries([end])
    detail = _detail(entry)
    assert detail["redriveCount"] == 1 and detail["redriveDate"] == 1700000050000
    # AND a head already redriven again does not lend its later date to an earlier run
    later = ExecutionFacts(1700000000.0, "{}", redrive_count=2, redrive_date=1700000090.0)
    (entry,) = EventBridgeHook(None, facts=lambda arn: later).entries([end])
    assert _detail(entry)["redriveDate"] is None
