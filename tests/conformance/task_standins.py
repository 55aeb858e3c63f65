"""What the AWS-recorded Task cases call, standing in for AWS where moto cannot.

- Lambda functions: Python functions that behave like the LocalStack tests' Lambda code
  (``tests/aws/services/stepfunctions/templates/**/lambdafunctions/*.py`` in
  localstack/localstack), bound by function name through ``handlers=``.
- The test's Step Functions API for the aws-sdk ``sfn`` task-token calls: a botocore hook
  on the task's ``stepfunctions`` client that answers SendTaskSuccess / SendTaskFailure /
  SendTaskHeartbeat through the environment's activity service (moto's own Step Functions
  knows nothing of StepFlow's tokens).
- API Gateway: a local HTTP server standing in for the REST API the test deploys (a
  non-proxy ``AWS`` integration of an identity Lambda on ``POST /<stage>/<path>``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from stepflow.activities import ActivityError

if TYPE_CHECKING:
    from tests.conformance.task_harness import CaseContext

StandIn = Callable[[Any], Any]
"""A Lambda function's behaviour: event in, result out (an exception is its error)."""


# -- Lambda functions -------------------------------------------------------------------


def identity(event: Any) -> Any:
    """``id_function.py``: returns its event."""
    return event


def return_bytes_str(_event: Any) -> Any:
    """``return_bytes_str.py``: returns the bytes ``"HelloWorld!"`` (JSON text) as its payload."""
    return "HelloWorld!"


def raise_exception(_event: Any) -> Any:
    """``raise_exception.py``: raises ``Exception("Some exception was raised.")``."""
    raise Exception("Some exception was raised.")


LARGE_OUTPUT_BYTES = 257 * 1024
"""``large_output_string.py`` returns this many bytes of ``a`` (over the 256 KiB limit)."""


def large_output_string(_event: Any) -> Any:
    """``large_output_string.py``: a payload of 257 KiB, past the payload limit."""
    return "a" * LARGE_OUTPUT_BYTES


def waits(seconds: float, sleep: Callable[[float], None]) -> StandIn:
    """``wait_60_seconds.py``: runs for ``seconds`` (of the environment's clock), then returns.

    ``sleep`` lets that time pass on the environment's virtual clock while the call runs.
    """

    def handler(event: Any) -> Any:
        sleep(seconds)
        return event

    return handler


# -- Step Functions API (task tokens) -------------------------------------------------


class _Raw:
    """The raw body of a botocore response built in process."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.body


TOKEN_CALLS = {
    "SendTaskSuccess": "send_task_success",
    "SendTaskFailure": "send_task_failure",
    "SendTaskHeartbeat": "send_task_heartbeat",
}


def answer_task_tokens(client: Any, activities: Callable[[], Any]) -> None:
    """Route ``client``'s (a boto3 ``stepfunctions`` client) task-token calls to ``activities()``.

    Only this client is hooked; every other operation goes on to moto.
    """
    from botocore.awsrequest import AWSResponse

    def before_send(request: Any, **_kwargs: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = TOKEN_CALLS.get(target.rsplit(".", 1)[-1])
        if operation is None:
            return None
        body = request.body or b"{}"
        params = json.loads(body.decode() if isinstance(body, bytes) else body)
        try:
            status, answer = 200, getattr(activities(), operation)(params) or {}
        except ActivityError as exc:
            status, answer = exc.status, exc.body()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "conform"}
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(answer).encode()))

    client.meta.events.register_first("before-send", before_send)


# -- API Gateway ------------------------------------------------------------------------


@dataclass(slots=True)
class RestApi:
    """The deployed REST API of one case: ``POST /<stage>/<path>`` to an identity Lambda.

    ``query_template``: the integration maps the request as ``{"body": $input.json('$'),
    "queryStringParameters": "$input.params().querystring"}`` (the test's
    ``pipe_query_parameters``).
    """

    stage: str = "sfn-apigw-api"
    path: str = "id_func"
    method: str = "POST"
    query_template: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)


class ApiStandIn:
    """A local HTTP server standing in for the API Gateway endpoint of the current case."""

    def __init__(self) -> None:
        self.api: RestApi | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The ``ApiEndpoint`` a state machine calls (the server's base URL)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiStandIn:
        """Start serving (in a daemon thread)."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def respond(self, method: str, url: str, body: bytes) -> tuple[int, Any]:
        """The status and JSON body API Gateway answers ``method url`` with."""
        api = self.api
        parts = [p for p in urlsplit(url).path.split("/") if p]
        if api is None or method != api.method or parts[-2:] != [api.stage, api.path]:
            return 403, {"message": "Missing Authentication Token"}
        text = body.decode() if body else ""
        try:
            event: Any = json.loads(text) if text else {}
        except json.JSONDecodeError:
            event = text
        api.requests.append({"url": url, "event": event})
        if api.query_template:
            query = parse_qs(urlsplit(url).query)
            params = ", ".join(f"{k}={v[0]}" for k, v in query.items())
            event = {"body": event, "queryStringParameters": "{" + params + "}"}
        return 200, identity(event)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = stand_in.respond(self.command, self.path, self.rfile.read(length))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler


@contextmanager
def api_stand_in() -> Iterator[ApiStandIn]:
    """A running :class:`ApiStandIn`, closed on exit."""
    server = ApiStandIn().start()
    try:
        yield server
    finally:
        server.close()


# -- workers (the tests' task-token consumers) -------------------------------------------


def _messages(case: CaseContext) -> list[dict[str, Any]]:
    sqs, url = case.client("sqs"), case.values["queue_url"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in found:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in found]


def _sfn(case: CaseContext) -> Any:
    """The test's ``stepfunctions`` client (its token calls reach the environment)."""
    return case.client("stepfunctions")


def sqs_success(case: CaseContext) -> bool:
    """SendTaskSuccess with the message's ``Message`` as JSON (the fixture's success machine:
    ``Output.$: States.JsonToString($.Body.Message)``)."""
    bodies = _messages(case)
    for body in bodies:
        output = json.dumps(body["Message"])
        _sfn(case).send_task_success(taskToken=body["TaskToken"], output=output)
    return bool(bodies)


def sqs_failure(case: CaseContext) -> bool:
    """SendTaskFailure ``Failure error``/``Failure cause`` (the fixture's failure machine)."""
    bodies = _messages(case)
    for body in bodies:
        token = body["TaskToken"]
        _sfn(case).send_task_failure(taskToken=token, error="Failure error", cause="Failure cause")
    return bool(bodies)


def sqs_empty_failure(case: CaseContext) -> bool:
    """SendTaskFailure with the token only (no error, no cause), as the test's thread."""
    bodies = _messages(case)
    for body in bodies:
        _sfn(case).send_task_failure(taskToken=body["TaskToken"])
    return bool(bodies)


def sns_success(case: CaseContext) -> bool:
    """Reads the SNS notification from the subscribed queue; SendTaskSuccess ``{}``."""
    notes = _messages(case)
    for note in notes:
        token = json.loads(note["Message"])["TaskToken"]
        _sfn(case).send_task_success(taskToken=token, output=json.dumps({}))
    return bool(notes)
