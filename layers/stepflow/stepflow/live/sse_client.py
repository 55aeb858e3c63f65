"""A server-sent events client for ``stepflow local``'s live stream (:mod:`stepflow.live.sse`).

:func:`follow` yields an execution's events in order until its ending event,
reconnecting with ``Last-Event-ID`` when the stream closes early (the server's
``max_seconds``, a restart) so nothing is lost or repeated.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import quote

from stepflow.live.sse import END_COMMENT, PREFIX
from stepflow.live.tail import HistoryGapError, event_id

__all__ = ["NoLiveStreamError", "follow", "messages", "stream_url"]


class NoLiveStreamError(Exception):
    """The endpoint answered without a stream: ``status`` and its ``body``."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def stream_url(endpoint: str, execution_arn: str) -> str:
    """The live stream's URL of ``execution_arn`` on ``endpoint`` (http or https only)."""
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"the endpoint must be an http(s) URL, not {endpoint[:100]!r}")
    return endpoint.rstrip("/") + PREFIX + quote(execution_arn, safe="")


def messages(
    stream: IO[bytes], on_comment: Callable[[str], None] | None = None
) -> Iterator[tuple[str | None, str]]:
    """``(id, data)`` of each SSE message read from ``stream`` (comments to ``on_comment``)."""
    ident: str | None = None
    data: list[str] = []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield ident, "\n".join(data)
            ident, data = None, []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if not name and on_comment is not None:
            on_comment(value)
        if name == "id":
            ident = value
        elif name == "data":
            data.append(value)


def follow(
    endpoint: str,
    execution_arn: str,
    *,
    after: int = 0,
    timeout: float = 30.0,
    reconnects: int = 10,
    sign: Callable[[str, dict[str, str]], dict[str, str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """The execution's events after ``after``, in order, until the stream ends on its end.

    The server ends the stream with the comment ``: end`` after an ending event
    once nothing follows it and the execution is not running (a redriven
    execution's stream goes on); any other close is a reconnection from the last id. Raises
    :class:`NoLiveStreamError` when the endpoint refuses the stream (404: unknown
    execution, 400: bad ARN, an API without live streams; 503 once ``reconnects``
    tries in a row were refused) and :class:`HistoryGapError` if the server skips
    an id. Only refused connections count against ``reconnects``: a stream that
    opened is progress, however long the execution waits. ``sign(url, headers)``
    returns the headers of each request signed (SigV4, which names the caller to a
    ``stepflow local`` that applies an access policy).
    """
    last, refused = after, 0
    over: list[str] = []
    while True:
        url = stream_url(endpoint, execution_arn)
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
        request = urllib.request.Request(url, headers=sign(url, headers) if sign else headers)
        try:
            reply = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            if exc.code != 503 or refused >= reconnects:
                raise NoLiveStreamError(exc.code, body) from None
            refused += 1  # too many streams, or the log cannot be read now: try again
            time.sleep(0.2 * refused)
            continue
        refused = 0
        with reply:
            if not reply.headers.get("Content-Type", "").startswith("text/event-stream"):
                raise NoLiveStreamError(reply.status, reply.read(2000).decode("utf-8", "replace"))
            for _, data in messages(reply, over.append):
                event = json.loads(data)
                number = event_id(event)
                if number != last + 1:
                    raise HistoryGapError(f"expected event {last + 1}, got {number}")
                last = number
                yield event
        if END_COMMENT in over:
            return  # the server saw the execution end
        time.sleep(0.2)
