"""The web console in headless Chromium against ``stepflow local`` (skips without chromium).

The page is driven as a user would: it calls the Step Functions API on the stack's
own address and the graph endpoint computes from what it read; the outcomes are
checked through boto3, and the page's own requests are counted.
``STEPFLOW_SCREENSHOTS=1`` saves the screenshots in docs/images/console-*.png.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from stepflow.console import ConsoleAssets, ConsoleRoute
from stepflow.local import LocalStack
from stepflow.local.gateway import Gateway

from tests.e2e.chromium import chromium
from tests.e2e.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
HOSTILE = '<img src=x onerror="document.title=1">&amp;'


class Declined(Exception):
    """A task failure the workflow catches."""


def decline(payload: Any) -> Any:
    raise Declined("card declined")


def fail(payload: Any) -> Any:
    raise Declined("always")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"decline": decline, "fail": fail}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    opened.close()
    assert errors == []


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    if os.environ.get("STEPFLOW_SCREENSHOTS") == "1":
        path = ROOT / "docs" / "images" / f"console-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)


def has_rows(page: Any, count: int) -> None:
    """Waits until the executions table has ``count`` rows (no eval: the page's CSP forbids it)."""
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#executions tbody tr")).to_have_count(count)


def targets(page: Any) -> list[tuple[str, dict[str, Any]]]:
    """Each Step Functions call the page makes from now on: (action, request body), in order."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def seen(request: Any) -> None:
        target = request.headers.get("x-amz-target")
        if target:
            sent.append((target.split(".")[-1], json.loads(request.post_data or "{}")))

    page.on("request", seen)
    return sent


def machine(sfn: Any, name: str, definition: dict[str, Any]) -> str:
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def execution_url(stack: LocalStack, arn: str) -> str:
    return f"{stack.url}/console/executions/{quote(arn, safe='')}"


ORDER = {
    "StartAt": "Big order?",
    "States": {
        "Big order?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 3, "Next": "Fan out"}],
            "Default": "Small order",
        },
        "Small order": {"Type": "Pass", "End": True},
        "Fan out": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Charge card",
                    "States": {
                        "Charge card": {
                            "Type": "Task",
                            "Resource": FN + "decline",
                            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Card declined"}],
                            "End": True,
                        },
                        "Card declined": {"Type": "Pass", "End": True},
                    },
                },
                {"StartAt": HOSTILE, "States": {HOSTILE: {"Type": "Pass", "End": True}}},
            ],
            "ResultPath": "$.fan",
            "Next": "Each item",
        },
        "Each item": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "Pack", "States": {"Pack": {"Type": "Pass", "End": True}}},
            "ResultPath": "$.packed",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
ORDER_STATUSES = {
    "Big order?": "succeeded",
    "Small order": "not-run",
    "Fan out": "succeeded",
    "Charge card": "caught",
    "Card declined": "succeeded",
    HOSTILE: "succeeded",
    "Each item": "succeeded",
    "Pack": "succeeded",
    "Done": "succeeded",
}


def test_the_console_is_served_on_the_api_address(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    arn = machine(sfn, "served", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    run = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_for(sfn, run)
    with urllib.request.urlopen(execution_url(stack, run)) as reply:
        assert b'<svg id="graph"' in reply.read()
        assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    # the graph endpoint computes from what it is sent; it reads no execution by its ARN
    graph = f"{stack.url}/console/api/graph"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{graph}?executionArn={quote(run, safe='')}")
    assert refused.value.code == 405
    history = sfn.get_execution_history(executionArn=run)["events"]
    sent = json.dumps(
        {
            "definition": sfn.describe_state_machine(stateMachineArn=arn)["definition"],
            "events": history,
        },
        default=str,
    ).encode()
    request = urllib.request.Request(graph, data=sent, method="POST")
    with urllib.request.urlopen(request) as reply:
        assert json.loads(reply.read())["statuses"] == {"P": "succeeded"}


def test_the_graph_shows_every_state_once_with_its_status(stack: LocalStack, page: Any) -> None:
    # GIVEN a run through a Choice, a Parallel whose first branch catches a task's error,
    # a branch with a state named like markup, and a Map
    sfn = stack.stepfunctions()
    arn = machine(sfn, "console-order", ORDER)
    run = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": 5, "items": [1, 2]}))
    assert wait_for(sfn, run["executionArn"])["status"] == "SUCCEEDED"
    # WHEN its page is opened
    page.goto(execution_url(stack, run["executionArn"]))
    page.wait_for_selector('body[data-execution-status="SUCCEEDED"]')
    page.wait_for_selector("#events tbody tr")
    # THEN every state is one node with its status, the markup name shown as text
    nodes = page.eval_on_selector_all(
        "#graph [data-state]", "els => els.map(e => [e.dataset.state, e.dataset.status])"
    )
    assert sorted(name for name, _ in nodes) == sorted(ORDER_STATUSES)
    assert dict(nodes) == ORDER_STATUSES
    assert page.locator("#graph img").count() == 0 and page.title() == "StepFlow console"
    # AND the branches and the iteration are groups, the Choice rule and the Catch are drawn
    groups = page.eval_on_selector_all(
        "#graph [data-group]", "els => els.map(e => e.dataset.group)"
    )
    assert sorted(groups) == ["Each item#iteration", "Fan out#branch1", "Fan out#branch2"]
    assert "$.n > 3" in (page.text_content("#graph .edge.choice") or "")
    catch = page.locator("#graph .edge.catch")
    assert catch.count() == 1
    assert catch.get_attribute("data-target") == "Card declined"
    # AND the history shows the states' inputs and outputs; a node shows its own
    assert page.locator('#events tr[data-event-state="Charge card"]').count() >= 2
    page.click('#graph [data-state="Fan out"]')
    assert '"n": 5' in page.inner_text("#state-input")
    assert '"fan"' in page.inner_text("#state-output")
    page.set_viewport_size({"width": 1280, "height": 1500})
    screenshot(page, "execution", full_page=False)


def test_a_running_execution_is_stopped_from_the_page(stack: LocalStack, page: Any) -> None:
    # GIVEN an execution waiting on an activity nobody works on
    sfn = stack.stepfunctions()
    activity = sfn.create_activity(name="console-nobody")["activityArn"]
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Approve"},
            "Approve": {"Type": "Task", "Resource": activity, "Next": "Ship"},
            "Ship": {"Type": "Pass", "End": True},
        },
    }
    run = sfn.start_execution(stateMachineArn=machine(sfn, "console-stop", definition))
    arn = run["executionArn"]
    sent = targets(page)
    page.goto(execution_url(stack, arn))
    # WHEN the page shows it running live, and Stop is pressed
    page.wait_for_selector('#graph [data-state="Approve"][data-status="running"]')
    assert page.get_attribute('#graph [data-state="Prepare"]', "data-status") == "succeeded"
    assert page.is_enabled("#stop") and not page.is_enabled("#redrive")
    page.wait_for_selector('#events tr[data-event-type="ActivityScheduled"]')
    screenshot(page, "running")
    page.click("#stop")
    # THEN the execution is aborted once, and the page shows it
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "still running after Stop"
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    events = sfn.get_execution_history(executionArn=arn)["events"]
    assert [e["type"] for e in events].count("ExecutionAborted") == 1
    page.wait_for_selector('body[data-execution-status="ABORTED"]')
    page.wait_for_selector('#graph [data-state="Approve"][data-status="aborted"]')
    assert page.get_attribute('#graph [data-state="Ship"]', "data-status") == "not-run"
    assert page.is_enabled("#redrive") and not page.is_enabled("#stop")
    assert [t for t, _ in sent].count("StopExecution") == 1
    # AND the history was read whole once, then only newest first back to a known event,
    # each event shown in one row
    reads = [body for t, body in sent if t == "GetExecutionHistory"]
    assert [r.get("reverseOrder", False) for r in reads].count(False) == 1
    assert len(reads) >= 2 and all(r["reverseOrder"] for r in reads[1:])
    shown = page.eval_on_selector_all(
        "#events tbody tr td:first-child", "els => els.map(e => e.textContent)"
    )
    whole = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    assert shown == [str(e["id"]) for e in whole]


def test_the_list_filters_by_status_and_pages(stack: LocalStack, page: Any) -> None:
    # GIVEN 21 succeeded executions and one failed
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.bad", "BooleanEquals": True, "Next": "Break"}],
                "Default": "Fine",
            },
            "Break": {"Type": "Task", "Resource": FN + "fail", "End": True},
            "Fine": {"Type": "Pass", "End": True},
        },
    }
    arn = machine(sfn, "console-list", definition)
    runs = [
        sfn.start_execution(stateMachineArn=arn, input=json.dumps({"bad": i == 0}))
        for i in range(22)
    ]
    outcomes = [wait_for(sfn, r["executionArn"])["status"] for r in runs]
    assert outcomes.count("FAILED") == 1
    failed = runs[0]["executionArn"]
    # WHEN the list page shows the machine's executions filtered by status
    page.goto(f"{stack.url}/console/state-machines/{quote(arn, safe='')}")
    page.wait_for_selector("#executions tbody tr")
    rows = "#executions tbody tr"
    assert page.locator(rows).count() == 20 and page.is_enabled("#executions-next")
    page.select_option("#status-filter", "FAILED")
    has_rows(page, 1)
    assert page.get_attribute(rows, "data-arn") == failed
    assert page.get_attribute(rows, "data-status") == "FAILED"
    screenshot(page, "list")
    # THEN a status's executions page by nextToken
    page.select_option("#status-filter", "SUCCEEDED")
    has_rows(page, 20)
    first_page = set(page.eval_on_selector_all(rows, "els => els.map(e => e.dataset.arn)"))
    page.dblclick("#executions-next")  # the second click lands on the disabled button
    has_rows(page, 1)
    assert page.inner_text("#executions-page") == "Page 2"
    second = page.get_attribute(rows, "data-arn")
    assert second not in first_page and second != failed
    assert not page.is_enabled("#executions-next")
    statuses = page.eval_on_selector_all(rows, "els => els.map(e => e.dataset.status)")
    assert statuses == ["SUCCEEDED"]
    # AND the failed one is redriven once from its page
    sent = targets(page)
    page.goto(execution_url(stack, failed))
    page.wait_for_selector('body[data-execution-status="FAILED"]')
    assert page.get_attribute('#graph [data-state="Break"]', "data-status") == "failed"
    page.click("#redrive")
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=failed).get("redriveCount", 0) == 0:
        assert time.monotonic() < deadline, "not redriven"
        time.sleep(0.1)
    assert wait_for(sfn, failed)["redriveCount"] == 1
    page.wait_for_selector(
        'body[data-execution-status="SUCCEEDED"], body[data-execution-status="FAILED"]'
    )
    assert [t for t, _ in sent].count("RedriveExecution") == 1


def _one_pass(described: dict[str, Any]) -> Any:
    """A Step Functions API (a proxy-event handler) of one execution of one Pass state."""
    answers = {
        "DescribeExecution": {"executionArn": "arn:x", "name": "x", **described},
        "DescribeStateMachineForExecution": {
            "definition": json.dumps(
                {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
            )
        },
        "GetExecutionHistory": {"events": []},
    }

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        target = event["headers"].get("X-Amz-Target", "").split(".")[-1]
        return {"statusCode": 200, "headers": {}, "body": json.dumps(answers.get(target, {}))}

    return api


def test_without_the_layout_library_the_page_says_how_to_get_it(
    browser: Any, page: Any, tmp_path: Path
) -> None:
    # GIVEN the console's files without the vendored library
    for name in ("index.html", "console.js", "graph.js", "console.css"):
        shutil.copy(ConsoleAssets().root.joinpath(name), tmp_path / name)  # type: ignore[arg-type]
    route = ConsoleRoute(assets=ConsoleAssets(root=tmp_path))  # type: ignore[arg-type]
    api = _one_pass({"status": "SUCCEEDED"})
    gateway = Gateway("127.0.0.1", 0, api, routes=[route]).start()
    try:
        # WHEN an execution page is opened
        page.goto(f"{gateway.url}/console/executions/arn%3Ax")
        page.wait_for_selector('body[data-execution-status="SUCCEEDED"]')
        # THEN it names the make target instead of a graph
        assert "make console-assets" in page.inner_text("#banner")
        assert page.locator("#graph [data-state]").count() == 0
    finally:
        gateway.stop()


def test_redrive_is_offered_only_for_a_redrivable_execution(page: Any) -> None:
    # GIVEN a failed execution the API says cannot be redriven
    reason = "Execution is past the redrive period"
    described = {
        "status": "FAILED",
        "redriveStatus": "NOT_REDRIVABLE",
        "redriveStatusReason": reason,
    }
    gateway = Gateway("127.0.0.1", 0, _one_pass(described), routes=[ConsoleRoute()]).start()
    try:
        # WHEN its page is opened
        page.goto(f"{gateway.url}/console/executions/arn%3Ax")
        page.wait_for_selector('body[data-execution-status="FAILED"]')
        # THEN Redrive is disabled and the page says why
        assert not page.is_enabled("#redrive") and not page.is_enabled("#stop")
        assert page.inner_text("#redrive-reason") == reason
    finally:
        gateway.stop()


class _HeldRun:
    """A running execution's API whose third history read waits for :attr:`gate`."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        target = event["headers"].get("X-Amz-Target", "").split(".")[-1]
        self.calls.append(target)
        answer: dict[str, Any] = {}
        if target == "DescribeExecution":
            answer = {"executionArn": "arn:x", "name": "x", "status": "RUNNING"}
        elif target == "DescribeStateMachineForExecution":
            answer = {
                "definition": json.dumps(
                    {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
                )
            }
        elif target == "GetExecutionHistory":
            if self.calls.count(target) == 3:
                self.waiting.set()
                self.gate.wait(30)
            answer = {"events": [{"id": 1, "type": "ExecutionStarted", "timestamp": 0}]}
        return {"statusCode": 200, "headers": {}, "body": json.dumps(answer)}


class _CountingRoute(ConsoleRoute):
    def __init__(self, assets: ConsoleAssets) -> None:
        super().__init__(assets)
        self.posts = 0

    def serve(self, request: Any) -> None:
        self.posts += request.command == "POST"
        super().serve(request)


def test_one_poll_runs_at_a_time_and_an_undrawn_graph_is_not_redrawn(
    page: Any, tmp_path: Path
) -> None:
    # GIVEN a running execution, and the console's files without the layout library
    for name in ("index.html", "console.js", "graph.js", "console.css"):
        shutil.copy(ConsoleAssets().root.joinpath(name), tmp_path / name)  # type: ignore[arg-type]
    api = _HeldRun()
    route = _CountingRoute(ConsoleAssets(root=tmp_path))  # type: ignore[arg-type]
    gateway = Gateway("127.0.0.1", 0, api, routes=[route]).start()
    try:
        page.goto(f"{gateway.url}/console/executions/arn%3Ax")
        # WHEN Stop is pressed while a poll waits for the history
        assert api.waiting.wait(30)
        page.click("#stop")
        deadline = time.monotonic() + 20
        while "StopExecution" not in api.calls:
            assert time.monotonic() < deadline, "Stop not sent"
            page.wait_for_timeout(50)
        page.wait_for_timeout(500)  # room for a second poll to start, if one would
        # THEN no second poll starts beside the waiting one; it runs once that one ends
        assert api.calls.count("DescribeExecution") == 3
        api.gate.set()
        while api.calls.count("DescribeExecution") < 5:
            assert time.monotonic() < deadline + 20, "polling stopped"
            page.wait_for_timeout(50)
        # AND the graph, which cannot be drawn, was asked for once: nothing new happened
        assert "make console-assets" in page.inner_text("#banner")
        assert route.posts == 1
    finally:
        api.gate.set()
        gateway.stop()


def test_a_machine_too_large_to_draw_is_listed_with_a_message(stack: LocalStack, page: Any) -> None:
    # GIVEN a chain of 1,001 Pass states (more than the page lays out)
    sfn = stack.stepfunctions()
    names = [f"S{i}" for i in range(1001)]
    states = {n: {"Type": "Pass", "Next": m} for n, m in itertools.pairwise(names)}
    states[names[-1]] = {"Type": "Pass", "End": True}
    arn = machine(sfn, "console-huge", {"StartAt": names[0], "States": states})
    # WHEN its page is opened
    page.goto(f"{stack.url}/console/state-machines/{quote(arn, safe='')}")
    # THEN it says so instead of drawing, and the rest of the page works
    page.wait_for_selector("#banner:not([hidden])")
    assert "1001 states" in page.inner_text("#banner")
    assert page.locator("#machine-graph [data-state]").count() == 0
    assert page.locator("#machines tbody tr.selected").count() == 1
