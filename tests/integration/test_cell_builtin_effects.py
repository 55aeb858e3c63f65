"""Built-in effects on the paths that ship: HTTP against a real server, AWS on moto.

Counted: requests the server saw, DynamoDB/SQS calls botocore made, records in the journal.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import (
    TIMEOUT,
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
    Policy,
)
from stepflow.cells.builtin import (
    AwsCall,
    DynamoPutItem,
    EventBridgePutEvents,
    EventEntry,
    HttpRequest,
    SnsPublish,
    SqsSendMessage,
)
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.journal import EffectRecord
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.integrations.effect_http import EffectHttp
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.runtime import InMemoryLog
from stepflow.runtime.clients import FixedClients
from stepflow.testing import execute, open_environment

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e"
FAST = Policy(attempts=3, base_delay=0.0, jitter=0.0, sleep=lambda s: None)


# -- a local HTTP server that counts ------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, Callable[[int], tuple[int, str, bytes]]] = field(default_factory=dict)


def _ok(count: int) -> tuple[int, str, bytes]:
    return 200, "application/json", b'{"ok":true}'


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path
            state.seen.append(Seen(self.command, path, dict(self.headers.items()), body))
            count = sum(1 for s in state.seen if s.path == path)
            answer = state.answers.get(path, _ok)
            status, content_type, payload = answer(count)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _any  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.block_on_close = False
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- cells -------------------------------------------------------------------------------------


class In(BaseModel):
    url: str = ""
    table: str = ""


class Out(BaseModel):
    status: int = 0
    done: bool = True


class Nope(BaseModel):
    why: str


class Mark(BaseModel):
    n: int


class Note(Effect[Mark]):
    kind: Literal["note"] = "note"
    n: int


HttpEffects = Annotated[HttpRequest | Note, Field(discriminator="kind")]


class CallThenNote(Cell[In, Out, Nope, HttpEffects]):
    """POSTs an order, then notes it (the crash point of the tests is between the two)."""

    name = "call-then-note"

    def run(self, ctx: CellContext[HttpEffects], data: In) -> Out:
        response = ctx.effect(HttpRequest(method="POST", url=data.url, json_body={"order": 7}))
        ctx.effect(Note(n=1))
        return Out(status=response.status)


class Crash(BaseException):
    """The process dying (no ``except Exception`` catches it)."""


@dataclass
class CrashingJournal:
    """A journal whose first ``record`` dies before writing: the effect ran, unrecorded."""

    inner: LogJournal
    crashes: int = 1

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        return self.inner.recorded(key)

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        if self.crashes:
            self.crashes -= 1
            raise Crash
        return self.inner.record(key, record)


def _noting(notes: list[int]) -> Callable[[Note, EffectCall], Mark]:
    def note(effect: Note, call: EffectCall) -> Mark:
        notes.append(effect.n)
        return Mark(n=effect.n)

    return note


def _body(cell: str, data: dict[str, Any], task_id: str = "t1") -> dict[str, Any]:
    return {
        "resource": f"arn:aws:states:::stepflow:cell:{cell}",
        "input": data,
        "execution_arn": ARN,
        "state_name": "S",
        "task_id": task_id,
        "role_arn": "arn:aws:iam::123456789012:role/StepFlowExecutionRole",
    }


def _runtime(journal: Any, handlers: EffectHandlers, *cells: Any) -> CellRuntime:
    registry = CellRegistry()
    for cell in cells:
        registry.register(cell)
    return CellRuntime(registry, handlers, journal)


def _http_handlers(notes: list[int], http: EffectHttp | None = None) -> EffectHandlers:
    user = EffectHandlers()
    user.register(Note, _noting(notes))
    return builtin_handlers(None, None, http or EffectHttp(), policy=FAST).merged(user)


# -- HTTP --------------------------------------------------------------------------------------


def test_http_effect_sends_the_same_key_after_a_crash_before_recording_and_nothing_once_recorded(
    server: Server,
) -> None:
    notes: list[int] = []
    log = InMemoryLog()
    handlers = _http_handlers(notes)
    body = _body("call-then-note", {"url": f"{server.url}/orders"})
    with pytest.raises(Crash):
        _runtime(CrashingJournal(LogJournal(log)), handlers, CallThenNote)(body)
    assert len(server.seen) == 1  # sent, then the process died before the record
    outcome = _runtime(LogJournal(log), handlers, CallThenNote)(body)
    assert outcome.ok and outcome.output == {"status": 200, "done": True}
    assert len(server.seen) == 2  # not recorded: sent again ...
    first, second = (s.headers["Idempotency-Key"] for s in server.seen)
    assert first == second == IdempotencyKey(ARN, "S", "t1", 0).token  # ... with the same key
    assert json.loads(server.seen[0].body) == {"order": 7}
    assert server.seen[0].headers["Content-Type"] == "application/json"
    again = _runtime(LogJournal(log), handlers, CallThenNote)(body)
    assert again.ok and [t["replayed"] for t in again.effects] == [True, True]
    assert len(server.seen) == 2  # recorded: nothing sent
    assert notes == [1]


def test_http_effect_in_a_workflow_through_execute(server: Server) -> None:
    notes: list[int] = []
    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(CallThenNote)
    modules.handlers.register(Note, _noting(notes))
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::stepflow:cell:call-then-note",
                "End": True,
            }
        },
    }
    result = execute(definition, {"url": f"{server.url}/orders"}, cells=modules)
    assert result.status == "SUCCEEDED", result.cause
    assert len(server.seen) == 1 and notes == [1]


def test_a_503_is_retried_with_the_same_key_and_a_404_is_not(server: Server) -> None:
    server.answers["/busy"] = lambda n: (503, "text/plain", b"busy") if n < 3 else (200, "", b"")
    server.answers["/gone"] = lambda n: (404, "text/plain", b"no such order")
    http = EffectHttp()
    handlers = builtin_handlers(None, None, http, policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    assert handlers.perform(HttpRequest(url=f"{server.url}/busy"), call)["status"] == 200
    busy = [s for s in server.seen if s.path == "/busy"]
    assert len(busy) == 3 and len({s.headers["Idempotency-Key"] for s in busy}) == 1
    with pytest.raises(Exception) as failure:
        handlers.perform(HttpRequest(url=f"{server.url}/gone"), call)
    assert getattr(failure.value, "error", None) == "StepFlow.Effect.Http.404"
    assert "no such order" in getattr(failure.value, "cause", "")
    assert len([s for s in server.seen if s.path == "/gone"]) == 1


def test_a_huge_response_is_bounded_and_fails_clearly_once(server: Server) -> None:
    server.answers["/huge"] = lambda n: (200, "text/plain", b"x" * (2 * 1024 * 1024))
    handlers = builtin_handlers(None, None, EffectHttp(), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    with pytest.raises(Exception) as failure:
        handlers.perform(HttpRequest(url=f"{server.url}/huge", max_response_bytes=1000), call)
    assert getattr(failure.value, "error", None) == "StepFlow.Effect.ResponseTooLarge"
    assert len(server.seen) == 1  # permanent: not retried
    with pytest.raises(ValueError):
        HttpRequest(url=f"{server.url}/huge", max_response_bytes=10**9)  # past the record's


def test_non_json_responses(server: Server) -> None:
    server.answers["/html"] = lambda n: (200, "text/html", b"<p>\xff hello</p>")
    server.answers["/liar"] = lambda n: (200, "application/json", b"{not json")
    handlers = builtin_handlers(None, None, EffectHttp(), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    html = handlers.perform(HttpRequest(url=f"{server.url}/html"), call)
    assert html["json_body"] is None and html["body"] == "<p>\ufffd hello</p>"
    with pytest.raises(Exception) as failure:
        handlers.perform(HttpRequest(url=f"{server.url}/liar"), call)
    assert getattr(failure.value, "error", None) == "StepFlow.Effect.Http.InvalidJson"
    assert len([s for s in server.seen if s.path == "/liar"]) == 1


def test_forbidden_endpoints_are_refused_before_anything_is_sent(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    cases = [
        (EffectHttp(allow_loopback=False), f"{server.url}/x"),  # deployed: not this machine
        (EffectHttp(allow_loopback=False), f"http://localhost:{port}/x"),
        (EffectHttp(denied=DeniedEndpoints([f"http://localhost:{port}"])), f"{server.url}/x"),
        (EffectHttp(), "http://169.254.169.254/latest/meta-data/"),  # instance metadata
    ]
    for http, url in cases:
        handlers = builtin_handlers(None, None, http, policy=FAST)
        with pytest.raises(Exception) as failure:
            handlers.perform(HttpRequest(url=url), call)
        assert getattr(failure.value, "error", None) == "StepFlow.Effect.Http.Refused", url
    for headers in ({"X-A": "1\r\nX-B: 2"}, {"Host": "elsewhere"}, {"Content-Length": "0"}):
        bad_header = HttpRequest(url=f"{server.url}/x", headers=headers)
        with pytest.raises(Exception) as failure:
            builtin_handlers(None, None, EffectHttp(), policy=FAST).perform(bad_header, call)
        assert getattr(failure.value, "error", None) == "StepFlow.Effect.Http.Refused", headers
    assert server.seen == []


def test_a_slow_server_is_the_timeout_error(server: Server) -> None:
    gate = threading.Event()

    def slow(n: int) -> tuple[int, str, bytes]:
        gate.wait(5)
        return 200, "text/plain", b"late"

    server.answers["/slow"] = slow
    policy = Policy(attempts=2, timeout=0.2, base_delay=0.0, jitter=0.0, sleep=lambda s: None)
    handlers = builtin_handlers(None, None, EffectHttp(), policy=policy)
    try:
        with pytest.raises(Exception) as failure:
            handlers.perform(
                HttpRequest(url=f"{server.url}/slow"), EffectCall(IdempotencyKey(ARN, "S", "t", 0))
            )
    finally:
        gate.set()
    assert getattr(failure.value, "error", None) == TIMEOUT
    assert len(server.seen) == 2  # retried once, then named


def test_without_aws_an_aws_effect_names_aws_true() -> None:
    handlers = builtin_handlers(None, None)
    with pytest.raises(Exception) as failure:
        handlers.perform(
            DynamoPutItem(table="t", item={"id": {"S": "1"}}),
            EffectCall(IdempotencyKey(ARN, "S", "t", 0)),
        )
    assert getattr(failure.value, "error", None) == "StepFlow.Cell.NoEffectHandler"
    assert "aws=True" in getattr(failure.value, "cause", "")


# -- AWS on moto -------------------------------------------------------------------------------


class Order(BaseModel):
    id: str
    table: str


class Written(BaseModel):
    id: str


AwsEffects = Annotated[DynamoPutItem | AwsCall | Note, Field(discriminator="kind")]


class SaveOrder(Cell[Order, Written, Nope, AwsEffects]):
    """Writes the order, reads it back through the SDK integration, then notes it."""

    name = "save-order"

    def run(self, ctx: CellContext[AwsEffects], data: Order) -> Written:
        ctx.effect(DynamoPutItem(table=data.table, item={"id": {"S": data.id}}))
        read = ctx.effect(
            AwsCall(
                service="dynamodb",
                action="getItem",
                parameters={"TableName": data.table, "Key": {"id": {"S": data.id}}},
            )
        )
        ctx.effect(Note(n=len(read["Item"])))
        return Written(id=read["Item"]["id"]["S"])


@dataclass
class Counted:
    """A boto3 client whose calls of each operation are counted."""

    client: Any
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def count(model: Any, **kwargs: Any) -> None:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1

        self.client.meta.events.register("before-call", count)


@pytest.fixture
def moto() -> Iterator[dict[str, Counted]]:
    from moto import mock_aws
    from stepflow.aws.clients import client as new_client

    with mock_aws():
        dynamodb = new_client("dynamodb")
        dynamodb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield {name: Counted(new_client(name)) for name in ("dynamodb", "sqs", "sns", "events")}


def _aws(moto: dict[str, Counted]) -> FixedClients:
    return FixedClients(**{name: counted.client for name, counted in moto.items()})


def test_dynamodb_put_item_effect_writes_once_across_a_crash_on_the_dynamodb_log(
    moto: dict[str, Counted],
) -> None:
    from stepflow.aws import DynamoDBLog, create_table
    from stepflow.aws.clients import client as new_client

    log_client = new_client("dynamodb")
    create_table(log_client, "stepflow-log")
    log = DynamoDBLog("stepflow-log", client=log_client)
    notes: list[int] = []
    user = EffectHandlers()

    def note(effect: Note, call: EffectCall) -> Mark:
        if not notes:
            notes.append(-1)
            raise Crash  # dies after the put and the get were recorded
        notes.append(effect.n)
        return Mark(n=effect.n)

    user.register(Note, note)
    handlers = builtin_handlers(None, _aws(moto), policy=FAST).merged(user)
    body = _body("save-order", {"id": "o-1", "table": "orders"})
    with pytest.raises(Crash):
        _runtime(LogJournal(log), handlers, SaveOrder)(body)
    outcome = _runtime(LogJournal(log), handlers, SaveOrder)(body)
    assert outcome.ok and outcome.output == {"id": "o-1"}
    assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}
    assert [t["replayed"] for t in outcome.effects] == [True, True, False]
    assert notes == [-1, 1]
    item = moto["dynamodb"].client.get_item(TableName="orders", Key={"id": {"S": "o-1"}})
    assert item["Item"] == {"id": {"S": "o-1"}}


def test_aws_effects_run_through_the_stepper_lambda_on_moto(moto: dict[str, Counted]) -> None:
    notes: list[int] = []
    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(SaveOrder)
    modules.handlers.register(Note, _noting(notes))
    definition = {
        "StartAt": "Save",
        "States": {
            "Save": {
                "Type": "Task",
                "Resource": "arn:aws:states:::stepflow:cell:save-order",
                "End": True,
            }
        },
    }
    with open_environment("moto", cells=modules, aws=_aws(moto)) as env:
        arn = env.start(definition, {"id": "o-2", "table": "orders"})
        env.run(arn)
        result = env.result(arn)
        assert result.status == "SUCCEEDED", result.cause
        assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}
        assert notes == [1]
        # StepFlow's own table (the DynamoDB log) is never an effect's target.
        arn = env.start(definition, {"id": "o-3", "table": "stepflow-testing"})
        env.run(arn)
        refused = env.result(arn)
        assert refused.status == "FAILED"
        assert refused.error == "States.Runtime"
        assert "target is a StepFlow resource" in (refused.cause or "")
        assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}


def test_a_conditional_put_fails_with_the_dynamodb_error_name_once(
    moto: dict[str, Counted],
) -> None:
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0), {"role_arn": "r"})
    put = DynamoPutItem(
        table="orders", item={"id": {"S": "o-9"}}, condition_expression="attribute_not_exists(id)"
    )
    handlers.perform(put, call)
    with pytest.raises(Exception) as failure:
        handlers.perform(put, call)
    assert getattr(failure.value, "error", None) == "DynamoDB.ConditionalCheckFailedException"
    assert moto["dynamodb"].calls == {"PutItem": 2}  # a permanent error: not retried


def test_sqs_fifo_gets_the_idempotency_key_as_deduplication_id(moto: dict[str, Counted]) -> None:
    sqs = moto["sqs"].client
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    send = SqsSendMessage(queue_url=url, message_body={"order": 1}, message_group_id="g")
    assert handlers.perform(send, call)["message_id"]
    handlers.perform(send, call)  # an unrecorded repeat (a crash before the record)
    assert moto["sqs"].calls["SendMessage"] == 2
    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageDeduplicationId"]
    )["Messages"]
    assert len(received) == 1  # SQS dropped the repeat
    assert json.loads(received[0]["Body"]) == {"order": 1}
    assert received[0]["Attributes"]["MessageDeduplicationId"] == call.key.token


def test_sns_and_eventbridge_effects(moto: dict[str, Counted]) -> None:
    topic = moto["sns"].client.create_topic(Name="orders")["TopicArn"]
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    published = handlers.perform(SnsPublish(topic_arn=topic, message={"order": 1}), call)
    assert published["message_id"]
    sent = handlers.perform(
        EventBridgePutEvents(
            entries=[EventEntry(source="shop", detail_type="Ordered", detail={"id": 1})]
        ),
        call,
    )
    assert sent["failed_entry_count"] == 0 and len(sent["entries"]) == 1
    assert moto["sns"].calls["Publish"] == 1 and moto["events"].calls == {"PutEvents": 1}


def test_an_effect_on_the_stacks_own_queue_is_refused_in_the_wiring(
    moto: dict[str, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepflow.aws.settings import Settings
    from stepflow.aws.wiring import build

    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/stepflow-transitions"
    settings = Settings.from_environ(
        {
            "TABLE_NAME": "stepflow-log",
            "QUEUE_URL": queue,
            "AWS_REGION": "us-east-1",
            "STEPFLOW_SIGNING_KEY": "test-signing-key-" + "0" * 32,
        }
    )
    wiring = build(settings, clients={"sqs": moto["sqs"].client})
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0), {"role_arn": "r"})
    for effect in (
        SqsSendMessage(queue_url=queue, message_body="x"),
        AwsCall(service="sqs", action="purgeQueue", parameters={"QueueUrl": queue}),
        DynamoPutItem(table="stepflow-log", item={"pk": {"S": "x"}}),
    ):
        with pytest.raises(Exception) as failure:
            wiring.effect_handlers.perform(effect, call)
        assert getattr(failure.value, "error", None) == "States.Runtime"
        assert "target is a StepFlow resource" in getattr(failure.value, "cause", "")
    assert moto["sqs"].calls == {} and moto["dynamodb"].calls == {}
    assert wiring.cell_runtime.handlers.find(SqsSendMessage) is wiring.effect_handlers.find(
        SqsSendMessage
    )


def test_the_users_handler_of_a_builtin_effect_wins() -> None:
    from stepflow.testing import WorkflowEnvironment

    def mine(effect: HttpRequest, call: EffectCall) -> Any:
        return {"status": 299}

    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.handlers.register(HttpRequest, mine)
    env = WorkflowEnvironment(cells=modules)
    assert env.cell_runtime.handlers.find(HttpRequest) is mine
    assert isinstance(env.cell_runtime.handlers.find(DynamoPutItem), object)


def test_aws_throttling_is_retried_and_other_aws_errors_are_not() -> None:
    import boto3
    from botocore.config import Config
    from botocore.stub import Stubber

    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
    handlers = builtin_handlers(None, FixedClients(sqs=sqs), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    send = SqsSendMessage(queue_url=url, message_body="x")
    with Stubber(sqs) as stub:
        for _ in range(2):
            stub.add_client_error("send_message", "ThrottlingException", http_status_code=400)
        stub.add_response("send_message", {"MessageId": "m-1", "MD5OfMessageBody": "d"})
        assert handlers.perform(send, call)["message_id"] == "m-1"
        stub.assert_no_pending_responses()  # exactly three calls
        stub.add_client_error("send_message", "QueueDoesNotExist", http_status_code=400)
        with pytest.raises(Exception) as failure:
            handlers.perform(send, call)
        stub.assert_no_pending_responses()
    assert str(getattr(failure.value, "error", "")).startswith("SQS.")
    assert "QueueDoesNotExist" in str(getattr(failure.value, "error", ""))
