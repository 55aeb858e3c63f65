"""The built-in HTTP effect against a real local server: requests counted, keys compared."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import (
    TIMEOUT,
    Cell,
    CellContext,
    EffectCall,
    EffectHandlers,
    LogJournal,
    Policy,
)
from stepflow.cells.builtin import (
    DynamoPutItem,
    HttpRequest,
)
from stepflow.cells.effects import IdempotencyKey
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.integrations.effect_http import EffectHttp
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.runtime import InMemoryLog
from stepflow.testing import execute

from tests.integration.cell_effects_support import (
    ARN,
    FAST,
    Crash,
    CrashingJournal,
    Nope,
    Note,
    noting,
    noting_modules,
    one_cell_machine,
    runtime_of,
    task_body,
)

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


class In(BaseModel):
    url: str = ""
    table: str = ""


class Out(BaseModel):
    status: int = 0
    done: bool = True


HttpEffects = Annotated[HttpRequest | Note, Field(discriminator="kind")]


class CallThenNote(Cell[In, Out, Nope, HttpEffects]):
    """POSTs an order, then notes it (the crash point of the tests is between the two)."""

    name = "call-then-note"

    def run(self, ctx: CellContext[HttpEffects], data: In) -> Out:
        response = ctx.effect(HttpRequest(method="POST", url=data.url, json_body={"order": 7}))
        ctx.effect(Note(n=1))
        return Out(status=response.status)


def _http_handlers(notes: list[int], http: EffectHttp | None = None) -> EffectHandlers:
    user = EffectHandlers()
    user.register(Note, noting(notes))
    return builtin_handlers(None, None, http or EffectHttp(), policy=FAST).merged(user)


# -- HTTP --------------------------------------------------------------------------------------


def test_http_effect_sends_the_same_key_after_a_crash_before_recording_and_nothing_once_recorded(
    server: Server,
) -> None:
    notes: list[int] = []
    log = InMemoryLog()
    handlers = _http_handlers(notes)
    body = task_body("call-then-note", {"url": f"{server.url}/orders"})
    with pytest.raises(Crash):
        runtime_of(CrashingJournal(LogJournal(log)), handlers, CallThenNote)(body)
    assert len(server.seen) == 1  # sent, then the process died before the record
    outcome = runtime_of(LogJournal(log), handlers, CallThenNote)(body)
    assert outcome.ok and outcome.output == {"status": 200, "done": True}
    assert len(server.seen) == 2  # not recorded: sent again ...
    first, second = (s.headers["Idempotency-Key"] for s in server.seen)
    assert first == second == IdempotencyKey(ARN, "S", "t1", 0).token  # ... with the same key
    assert json.loads(server.seen[0].body) == {"order": 7}
    assert server.seen[0].headers["Content-Type"] == "application/json"
    again = runtime_of(LogJournal(log), handlers, CallThenNote)(body)
    assert again.ok and [t["replayed"] for t in again.effects] == [True, True]
    assert len(server.seen) == 2  # recorded: nothing sent
    assert notes == [1]


def test_http_effect_in_a_workflow_through_execute(server: Server) -> None:
    notes: list[int] = []
    modules = noting_modules(CallThenNote, notes)
    definition = one_cell_machine("Call", "call-then-note")
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
