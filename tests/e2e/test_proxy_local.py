"""``stepflow proxy`` in front of an API that requires SigV4 for ``execute-api``.

The API is ``stepflow local`` behind :class:`SigV4Gateway` (signatures verified
with botocore). Clients sign for ``states`` with their own keys; only the
proxy's key, re-signed for ``execute-api``, gets through. Every request the
gateway lets through is counted by operation.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.proxy.command import console_routes
from stepflow.proxy.forward import MAX_BODY, Forwarder, ProxyServer, Upstream
from stepflow.proxy.signing import api_client, worker_client
from stepflow.worker.runner import Worker

from tests.e2e.sigv4_gateway import SigV4Gateway
from tests.e2e.waiting import wait_for

REGION = "eu-west-1"
PROXY_KEY, PROXY_SECRET = "AKIDPROXYUSER", "proxy-secret"
ROLE = "arn:aws:iam::123456789012:role/stepflow/ProxyRole"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
AWS_CLI = shutil.which("aws") or (
    "/root/.pyenv/shims/aws" if os.path.exists("/root/.pyenv/shims/aws") else None
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[SigV4Gateway]:
    with (
        LocalStack(port=0) as stack,
        SigV4Gateway(stack.url, {PROXY_KEY: PROXY_SECRET}, REGION) as gw,
    ):
        yield gw


def proxy_credentials() -> ReadOnlyCredentials:
    return ReadOnlyCredentials(PROXY_KEY, PROXY_SECRET, None)


@pytest.fixture
def proxy(gateway: SigV4Gateway) -> Iterator[ProxyServer]:
    forwarder = Forwarder(Upstream.parse(gateway.url), REGION, proxy_credentials)
    with ProxyServer(forwarder) as server:
        yield server


def client_of(url: str, key: str = "AKIDCLIENT") -> Any:
    """A plain boto3 client, signing for ``states`` with its own (unknown) key."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="client-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_the_gateway_refuses_what_is_not_signed_for_execute_api(gateway: SigV4Gateway) -> None:
    before = sum(gateway.targets.values())
    with pytest.raises(ClientError) as refused:
        client_of(gateway.url, PROXY_KEY).list_state_machines()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "execute-api" in gateway.refused[-1]
    forged = api_client(
        gateway.url,
        region=REGION,
        aws_access_key_id=PROXY_KEY,
        aws_secret_access_key="not-the-secret",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError):
        forged.list_state_machines()
    assert "does not match" in gateway.refused[-1]
    assert sum(gateway.targets.values()) == before


def test_boto3_through_the_proxy(gateway: SigV4Gateway, proxy: ProxyServer) -> None:
    before, keys = gateway.targets.copy(), gateway.keys.copy()
    sfn = client_of(proxy.url)
    arn = sfn.create_state_machine(name="proxied", definition=PASS, roleArn=ROLE)["stateMachineArn"]
    assert arn in [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
    started = sfn.start_execution(stateMachineArn=arn, input='{"n": 1}')
    done = wait_for(sfn, started["executionArn"])
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", {"n": 1})
    delta = gateway.targets - before
    assert (delta["CreateStateMachine"], delta["ListStateMachines"], delta["StartExecution"]) == (
        1,
        1,
        1,
    )
    assert proxy.forwarder.forwarded == sum(delta.values())
    assert set(gateway.keys - keys) == {PROXY_KEY}  # the client's own key never reached it


def test_a_client_error_comes_back_as_the_api_answered_it(proxy: ProxyServer) -> None:
    with pytest.raises(ClientError) as missing:
        client_of(proxy.url).describe_execution(
            executionArn="arn:aws:states:us-east-1:000000000000:execution:nope:x"
        )
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"


def test_a_body_over_the_limit_is_refused_unread(gateway: SigV4Gateway, proxy: ProxyServer) -> None:
    before = proxy.forwarder.forwarded
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", str(MAX_BODY + 1))
    connection.putheader("X-Amz-Target", "AWSStepFunctions.StartExecution")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["__type"] == "RequestEntityTooLarge"
    assert proxy.forwarder.forwarded == before


def test_an_api_that_is_down_is_a_502(proxy: ProxyServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    forwarder = Forwarder(
        Upstream.parse(f"http://127.0.0.1:{closed}/v1"), REGION, proxy_credentials
    )
    with ProxyServer(forwarder) as down, pytest.raises(ClientError) as failed:
        client_of(down.url).list_state_machines()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert failed.value.response["Error"]["Code"] == "BadGateway"
    assert forwarder.forwarded == 0


def test_no_credentials_is_a_clear_403(gateway: SigV4Gateway) -> None:
    before = sum(gateway.targets.values())
    forwarder = Forwarder(Upstream.parse(gateway.url), REGION, lambda: None)
    with ProxyServer(forwarder) as server, pytest.raises(ClientError) as refused:
        client_of(server.url).list_state_machines()
    error = refused.value.response["Error"]
    assert error["Code"] == "ProxyCredentialsUnavailable"
    assert "aws configure" in error["Message"]
    assert sum(gateway.targets.values()) == before


def test_the_worker_client_signs_for_execute_api_itself(gateway: SigV4Gateway) -> None:
    sfn = api_client(
        gateway.url, aws_access_key_id=PROXY_KEY, aws_secret_access_key=PROXY_SECRET, region=REGION
    )
    before = gateway.targets["CreateActivity"]
    arn = sfn.create_activity(name="proxied-activity")["activityArn"]
    assert sfn.describe_activity(activityArn=arn)["name"] == "proxied-activity"
    assert gateway.targets["CreateActivity"] == before + 1


def _start_proxy_command(
    gateway: SigV4Gateway, command: str = "proxy"
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": PROXY_KEY,
        "AWS_SECRET_ACCESS_KEY": PROXY_SECRET,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    code = f"from stepflow.proxy.command import {command}_command as c; c()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--api", gateway.url, "--port", "0", "--region", REGION],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith(f"stepflow {command} on http://127.0.0.1:"), first
    return process, first.split()[3]


@pytest.mark.skipif(AWS_CLI is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_through_the_proxy_command(gateway: SigV4Gateway) -> None:
    process, url = _start_proxy_command(gateway)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDCLIUSER",
        "AWS_SECRET_ACCESS_KEY": "cli-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("AWS_PROFILE", None)

    def aws(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(AWS_CLI), "stepfunctions", *args, "--endpoint-url", url, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout or "{}")
        return found

    before = gateway.targets.copy()
    try:
        created = aws(
            "create-state-machine", "--name", "cli", "--definition", PASS, "--role-arn", ROLE
        )
        arn = created["stateMachineArn"]
        listed = aws("list-state-machines")["stateMachines"]
        assert arn in [m["stateMachineArn"] for m in listed]
        execution = aws("start-execution", "--state-machine-arn", arn, "--input", '{"cli": true}')
        for _ in range(100):
            described = aws("describe-execution", "--execution-arn", execution["executionArn"])
            if described["status"] != "RUNNING":
                break
            time.sleep(0.1)
        assert described["status"] == "SUCCEEDED"
        assert json.loads(described["output"]) == {"cli": True}
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    delta = gateway.targets - before
    assert (delta["CreateStateMachine"], delta["ListStateMachines"], delta["StartExecution"]) == (
        1,
        1,
        1,
    )
    assert "AWSStepFunctions.StartExecution 200" in errors  # one line per request, no bodies
    assert '"cli"' not in errors and PROXY_SECRET not in errors


def _worker_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=PROXY_KEY, aws_secret_access_key=PROXY_SECRET)


def _activity_machine(sfn: Any, name: str) -> tuple[str, str]:
    activity = sfn.create_activity(name=name)["activityArn"]
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Task", "Resource": activity, "End": True}},
    }
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return activity, machine["stateMachineArn"]


def test_a_worker_runs_its_tasks_through_the_gateway(gateway: SigV4Gateway) -> None:
    sfn = worker_client(gateway.url, region=REGION, session=_worker_session())
    activity, machine = _activity_machine(sfn, "signed-worker")
    before = gateway.targets.copy()
    worker = Worker(
        sfn,
        activity,
        lambda payload, _context: {"twice": payload["n"] * 2},
        concurrency=1,
        grace_seconds=0.5,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        execution = sfn.start_execution(stateMachineArn=machine, input='{"n": 21}')
        done = wait_for(sfn, execution["executionArn"])
    finally:
        worker.stop()
        thread.join(70)
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", {"twice": 42})
    delta = gateway.targets - before
    assert (delta["SendTaskSuccess"], worker.counts["succeeded"]) == (1, 1)


def test_release_task_is_signed_for_execute_api_too(gateway: SigV4Gateway) -> None:
    sfn = worker_client(gateway.url, region=REGION, session=_worker_session())
    activity, machine = _activity_machine(sfn, "signed-release")
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")
    first = sfn.get_activity_task(activityArn=activity, workerName="w1")
    before = gateway.targets["ReleaseTask"]
    sfn.release_task(taskToken=first["taskToken"])
    assert gateway.targets["ReleaseTask"] == before + 1
    again = sfn.get_activity_task(activityArn=activity, workerName="w2")
    assert again["input"] == first["input"]
    sfn.send_task_success(taskToken=again["taskToken"], output='{"released": 1}')
    assert wait_for(sfn, execution["executionArn"])["status"] == "SUCCEEDED"


def _post(port: int, target: str, body: bytes = b"{}", **headers: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"AWSStepFunctions.{target}",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    connection.request("POST", "/", body=body, headers=sent)
    response = connection.getresponse()
    return response.status, response.read()


def test_a_page_of_another_origin_or_host_is_refused(proxy: ProxyServer) -> None:
    before = proxy.forwarder.forwarded
    assert _post(proxy.port, "ListStateMachines", Host=f"evil.example:{proxy.port}")[0] == 403
    assert _post(proxy.port, "ListStateMachines", Origin="http://evil.example")[0] == 403
    assert proxy.forwarder.forwarded == before
    origin = f"http://127.0.0.1:{proxy.port}"
    assert _post(proxy.port, "ListStateMachines", Origin=origin)[0] == 200
    assert proxy.forwarder.forwarded == before + 1


def test_the_console_of_a_deployed_api(
    gateway: SigV4Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", PROXY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PROXY_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    forwarder = Forwarder(Upstream.parse(gateway.url), REGION, proxy_credentials)
    routes = console_routes()
    with ProxyServer(forwarder, routes=routes) as server:
        page = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        page.request("GET", "/console/")
        answer = page.getresponse()
        assert (answer.status, answer.getheader("Content-Type")) == (
            200,
            "text/html; charset=utf-8",
        )
        answer.read()
        assert forwarder.forwarded == 0  # the page is served here, not by the API
        status, body = _post(
            server.port,
            "CreateStateMachine",
            json.dumps({"name": "console-proxied", "definition": PASS, "roleArn": ROLE}).encode(),
        )
        assert status == 200, body
        arn = json.loads(body)["stateMachineArn"]
        status, body = _post(
            server.port, "DescribeStateMachine", json.dumps({"stateMachineArn": arn}).encode()
        )
        assert status == 200, body
        sent = json.dumps({"definition": json.loads(body)["definition"]})
        page.request(
            "POST", "/console/api/graph", body=sent, headers={"Content-Type": "application/json"}
        )
        graph = page.getresponse()
        assert graph.status == 200
        assert "P" in json.dumps(json.loads(graph.read())["graph"])
    assert forwarder.forwarded == 2  # the graph is computed here, from what the page read


def test_an_api_that_never_answers_is_a_504() -> None:
    with socket.socket() as silent:  # connections queue in the backlog, never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        forwarder = Forwarder(Upstream.parse(url), REGION, proxy_credentials, timeout=0.5)
        with ProxyServer(forwarder) as server:
            status, body = _post(server.port, "ListStateMachines")
    assert (status, json.loads(body)["__type"]) == (504, "GatewayTimeout")


@pytest.mark.parametrize(
    ("length", "status"), [("-1", 400), ("12abc", 400), ("99999999999999999999", 413)]
)
def test_a_malformed_length_is_refused(proxy: ProxyServer, length: str, status: int) -> None:
    before = proxy.forwarder.forwarded
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = raw.recv(4096).decode()
    assert answer.startswith(f"HTTP/1.1 {status} ")
    assert proxy.forwarder.forwarded == before


def test_concurrent_requests_are_each_forwarded_once(
    gateway: SigV4Gateway, proxy: ProxyServer
) -> None:
    sfn = client_of(proxy.url)
    arn = sfn.create_state_machine(name="concurrent", definition=PASS, roleArn=ROLE)[
        "stateMachineArn"
    ]
    before = gateway.targets["StartExecution"]
    threads = [
        threading.Thread(target=sfn.start_execution, kwargs={"stateMachineArn": arn})
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert gateway.targets["StartExecution"] == before + 8
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(listed) == 8


def test_the_console_command_serves_the_page_and_forwards_its_calls(gateway: SigV4Gateway) -> None:
    process, url = _start_proxy_command(gateway, "console")
    assert url.endswith("/console/")
    before = gateway.targets["ListStateMachines"]
    try:
        port = int(url.split(":")[2].split("/")[0])
        page = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        page.request("GET", "/console/")
        answer = page.getresponse()
        assert answer.status == 200 and b"<html" in answer.read().lower()
        status, body = _post(port, "ListStateMachines")
        assert status == 200 and "stateMachines" in json.loads(body)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert gateway.targets["ListStateMachines"] == before + 1
