"""A webhook target answering 2xx and trickling its body: delivered once, never retried."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from stepflow.hooks import ExecutionInfo, HookEvent
from stepflow.integrations.http_port import HttpRequest, Urllib3Http
from stepflow.integrations.webhooks import MemoryDeadLetter, WebhookHook, WebhookTarget


@pytest.fixture
def trickler() -> Iterator[tuple[str, list[bytes]]]:
    """A server answering every POST 200 with a 30-byte body sent one byte per 0.1 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    posts: list[bytes] = []
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        try:
            posts.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
            for _ in range(30):
                if stop.is_set():
                    break
                time.sleep(0.1)
                conn.sendall(b"x")
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook", posts
    finally:
        stop.set()
        thread.join()
        server.close()


def test_a_2xx_with_a_slow_body_is_delivered_once(trickler: tuple[str, list[bytes]]) -> None:
    url, posts = trickler
    dead = MemoryDeadLetter()
    hook = WebhookHook(
        [WebhookTarget(url)],
        secret=b"k",
        http=Urllib3Http(allow_loopback=True, read_body=False),
        dead_letter=dead,
        attempts=3,
        timeout=0.5,
        sleep=lambda _: None,
    )
    info = ExecutionInfo(
        "arn:aws:states:us-east-1:1:execution:m:e", "arn:aws:states:us-east-1:1:stateMachine:m"
    )
    hook.handle([HookEvent("ExecutionSucceeded", info, 5, 0.0, {"id": 5})])
    assert dead.records == []
    assert hook.requests == 1
    assert len(posts) == 1


def test_http_tasks_still_read_the_body(trickler: tuple[str, list[bytes]]) -> None:
    url, _ = trickler
    response = Urllib3Http(allow_loopback=True).send(HttpRequest("POST", url, (), b"{}", 10.0))
    assert response.body == b"x" * 30


def test_the_deployed_webhooks_do_not_read_bodies() -> None:
    from stepflow.aws.hooks_wiring import hooks_from_settings

    [hook] = hooks_from_settings({"STEPFLOW_HOOKS": "webhooks", "STEPFLOW_WEBHOOK_SECRET": "s"}, {})
    assert isinstance(hook, WebhookHook)
    assert isinstance(hook.http, Urllib3Http) and not hook.http.read_body
