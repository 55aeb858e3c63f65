"""``GET /live/executions/<url-encoded executionArn>``: server-sent events for ``stepflow local``.

Each history event is one SSE message: ``id: <event id>`` and ``data: <the event
as GetExecutionHistory returns it, JSON>``. The stream starts after the
``Last-Event-ID`` header or the ``?after=N`` query (0: from the first event),
so a client that reconnects (as ``EventSource`` does, sending the last id it
saw) resumes without loss or repeats. After the ending event (ExecutionSucceeded,
Failed, TimedOut or Aborted) the stream closes, once no event follows it and the
execution is not running (a redriven execution's stream goes on), with the
comment line ``: end`` (any other close is a reconnection from the last id).

With an access policy (``stepflow local --access-policy``) a stream is served
only to a caller the policy lets read the execution's history
(``states:GetExecutionHistory`` on its state machine), the caller named by the
request's SigV4 ``Authorization`` header as on the API; anyone else gets the
same 404 as for an execution that does not exist.

Bounds: at most ``max_streams`` streams at once (503 with ``Retry-After`` past
that); each stays open at most ``max_seconds`` (then it closes and the client
reconnects from its last id); a socket write that waits more than
``write_timeout`` seconds (a client that stopped reading) ends the stream, and
a comment line every ``heartbeat`` seconds finds clients that went away.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from stepflow.api.access import AccessPolicy
from stepflow.live.tail import HistoryGapError, HistoryLog, Tail, history_reader, terminal

__all__ = ["END_COMMENT", "PREFIX", "LiveRoute", "message"]

LOG = logging.getLogger(__name__)
PREFIX = "/live/executions/"
_ARN = re.compile(r"arn:[A-Za-z0-9-]{1,16}:states:[a-z0-9-]{0,32}:[0-9]{0,12}:[\x21-\x7e]{1,1900}")
_AFTER = re.compile(r"[0-9]{1,12}")
END_COMMENT = "end"
"""The comment a stream closes with once the execution has ended."""
ACTION = "states:GetExecutionHistory"
"""What reading a stream is, as the access policy names it."""


@dataclass
class LiveRoute:
    """The ``stepflow local`` route streaming an execution's events (see the module doc)."""

    log: HistoryLog
    prefix: str = PREFIX
    max_streams: int = 32
    max_seconds: float = 900.0
    write_timeout: float = 10.0
    heartbeat: float = 15.0
    interval: float = 0.1
    stop: threading.Event = field(default_factory=threading.Event)
    """Set to end every open stream (the stack stopping)."""
    opened: int = 0
    """Streams served so far (each counted once, when its headers are sent)."""
    refused: int = 0
    """Streams refused for want of a slot (503)."""
    policy: AccessPolicy | None = None
    """The API's access policy (None: every caller may read every stream)."""
    caller: Callable[[Mapping[str, str]], str | None] = lambda _headers: None
    """The principal ARN a request's headers name (as the API's gateway reads them)."""
    _open: threading.BoundedSemaphore = field(init=False)
    _count: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, not {self.max_streams}")
        self._open = threading.BoundedSemaphore(self.max_streams)

    def close(self) -> None:
        """End every open stream within one poll (the gateway stopping)."""
        self.stop.set()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one ``GET``: 400 bad input, 404 unknown (or denied), 503 too many streams."""
        request.close_connection = True
        parts = urlsplit(request.path)
        arn = unquote(parts.path[len(self.prefix) :])
        if _ARN.fullmatch(arn) is None or (":execution:" not in arn and ":express:" not in arn):
            return _refuse(request, 400, "InvalidArn", f"not an execution ARN: {arn[:200]!r}")
        after = _after(request.headers.get("Last-Event-ID"), parse_qs(parts.query).get("after"))
        if after is None:
            return _refuse(request, 400, "BadRequest", "Last-Event-ID or after: a number 0..10^12")
        if self.policy is not None and not self.policy.allows(
            self.caller(dict(request.headers.items())), ACTION, _machine_name(arn)
        ):  # the same answer as an unknown execution: a denied caller learns nothing
            return _refuse(request, 404, "ExecutionDoesNotExist", f"no execution {arn}")
        try:
            record = self.log.get(arn)
        except Exception:  # an outage of the table: the client may retry
            return _refuse(request, 503, "ServiceUnavailable", "the log cannot be read now")
        if record is None:
            return _refuse(request, 404, "ExecutionDoesNotExist", f"no execution {arn}")
        if self.stop.is_set():
            return _refuse(request, 503, "ServiceUnavailable", "the server is stopping")
        if not self._open.acquire(blocking=False):
            self.refused += 1
            return _refuse(request, 503, "TooManyStreams", f"{self.max_streams} streams are open")
        try:
            self._stream(request, arn, after)
        finally:
            self._open.release()

    def _stream(self, request: BaseHTTPRequestHandler, arn: str, after: int) -> None:
        request.connection.settimeout(self.write_timeout)
        request.send_response(200)
        for name, value in (
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            ("X-Accel-Buffering", "no"),
        ):
            request.send_header(name, value)
        request.end_headers()
        with self._count:
            self.opened += 1
        tail = Tail(
            history_reader(self.log, arn, after),
            after=after,
            interval=self.interval,
            terminal=lambda: terminal(self.log, arn),
        )
        end = time.monotonic() + self.max_seconds
        try:
            request.wfile.write(b"retry: 1000\n\n")
            request.wfile.flush()
            beat = time.monotonic() + self.heartbeat
            while not tail.ended and not self.stop.is_set() and time.monotonic() < end:
                for event in tail.events(stop=self.stop, deadline=min(beat, end)):
                    request.wfile.write(message(event))
                    request.wfile.flush()
                if tail.ended:
                    request.wfile.write(f": {END_COMMENT}\n\n".encode())
                    request.wfile.flush()
                elif time.monotonic() >= beat:
                    request.wfile.write(b": keep-alive\n\n")
                    request.wfile.flush()
                    beat = time.monotonic() + self.heartbeat
        except OSError:
            pass  # the client went away or stopped reading (write timeout)
        except (HistoryGapError, ValueError):
            LOG.exception("live stream of %s ended on a malformed history", arn)
        except Exception:  # an outage of the log: the client reconnects from its last id
            LOG.warning("live stream of %s ended: the log cannot be read", arn, exc_info=True)


def message(event: dict[str, Any]) -> bytes:
    """One SSE message for ``event`` (JSON has no raw newline, so ``data`` is one line)."""
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"id: {event['id']}\ndata: {data}\n\n".encode()


def _machine_name(arn: str) -> str:
    """The state machine's name in an execution ARN ("" if the ARN has no such field)."""
    parts = arn.split(":")
    return parts[6] if len(parts) > 7 else ""


def _after(header: str | None, query: list[str] | None) -> int | None:
    """Where to start: ``Last-Event-ID`` wins over ``?after=``; None if malformed."""
    given = header.strip() if header is not None else (query[-1] if query else "0")
    return int(given) if _AFTER.fullmatch(given) else None


def _refuse(request: BaseHTTPRequestHandler, status: int, kind: str, text: str) -> None:
    body = json.dumps({"__type": kind, "message": text}).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.send_header("Connection", "close")
    if status == 503:
        request.send_header("Retry-After", "1")
    request.end_headers()
    request.wfile.write(body)
