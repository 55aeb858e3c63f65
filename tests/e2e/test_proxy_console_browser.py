"""``stepflow console --api``'s page in headless Chromium, against an API requiring SigV4.

The API is ``stepflow local`` behind :class:`SigV4Gateway`; the browser sends its
Step Functions calls unsigned to the proxy, which re-signs them for
``execute-api``. Skips without Chromium, Playwright or the layout library.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from botocore.credentials import ReadOnlyCredentials
from stepflow.console import ConsoleRoute
from stepflow.local import LocalStack
from stepflow.proxy.forward import Forwarder, ProxyServer, Upstream
from stepflow.proxy.signing import api_client

from tests.e2e.chromium import chromium
from tests.e2e.sigv4_gateway import SigV4Gateway

REGION = "eu-west-1"
KEY, SECRET = "AKIDCONSOLE", "console-secret"
ROLE = "arn:aws:iam::123456789012:role/stepflow/ConsoleRole"


def signed(url: str) -> Any:
    return api_client(url, region=REGION, aws_access_key_id=KEY, aws_secret_access_key=SECRET)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def gateway() -> Iterator[SigV4Gateway]:
    with LocalStack(port=0) as stack, SigV4Gateway(stack.url, {KEY: SECRET}, REGION) as gw:
        yield gw


def test_stop_from_the_page_goes_through_the_proxy_signed(
    browser: Any, gateway: SigV4Gateway
) -> None:
    sfn = signed(gateway.url)
    activity = sfn.create_activity(name="console-proxy-nobody")["activityArn"]
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Approve"},
            "Approve": {"Type": "Task", "Resource": activity, "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name="console-proxy", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    forwarder = Forwarder(
        Upstream.parse(gateway.url), REGION, lambda: ReadOnlyCredentials(KEY, SECRET, None)
    )
    routes = [ConsoleRoute()]
    before = gateway.targets.copy()
    with ProxyServer(forwarder, routes=routes) as proxy:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{proxy.url}/console/executions/{quote(arn, safe='')}")
        page.wait_for_selector('#graph [data-state="Approve"][data-status="running"]')
        assert page.get_attribute('#graph [data-state="Prepare"]', "data-status") == "succeeded"
        page.click("#stop")
        page.wait_for_selector('#graph [data-state="Approve"][data-status="aborted"]')
        page.close()
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "still running after Stop"
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert errors == []
    assert (gateway.targets - before)["StopExecution"] == 1
    assert set(gateway.keys) == {KEY}
    assert not gateway.refused
