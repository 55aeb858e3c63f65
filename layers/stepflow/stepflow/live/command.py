"""``stepflow watch EXECUTION_ARN``: an execution's live progress, as ``make run`` shows it.

Against ``stepflow local`` the events come from its server-sent events stream
(:mod:`stepflow.live.sse`); an endpoint without one (a deployed API Gateway
answers the stream's path with 403/404) is followed by paging
``GetExecutionHistory`` with the same in-order driver (:class:`~stepflow.live.tail.Tail`):
the deployed REST API already checks the caller's IAM signature and pages the
log consistently, so the watch needs no second authorizer and sees exactly what
``GetExecutionHistory`` would. Requests are signed with the caller's AWS
credentials for ``execute-api`` (``stepflow local`` reads no signature).

Exit codes: 0 the execution succeeded, 1 it ended otherwise (or the stream
failed), 2 bad input (a malformed or unknown ARN, a bad endpoint).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import click
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from stepflow.api.client import client
from stepflow.live.sse_client import NoLiveStreamError, follow
from stepflow.live.tail import RUNNING, Tail
from stepflow.proxy.signing import sign_request

__all__ = ["DEFAULT_ENDPOINT", "watch_command"]

DEFAULT_ENDPOINT = "http://127.0.0.1:8765"
"""``stepflow local``'s default address."""
_BAD_INPUT = {"ExecutionDoesNotExist", "InvalidArn", "ValidationException"}


@click.command("watch")
@click.argument("execution_arn")
@click.option(
    "--endpoint-url",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    envvar="STEPFLOW_ENDPOINT",
    help="StepFlow's API: stepflow local, or a deployed stack's API URL.",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.05, 60.0),
    default=1.0,
    show_default=True,
    help="Seconds between GetExecutionHistory polls (an endpoint without live streams).",
)
def watch_command(execution_arn: str, endpoint_url: str, poll: float) -> None:
    """Show EXECUTION_ARN's progress live until it ends (exit 0: it succeeded)."""
    if not endpoint_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http(s) URL", param_hint="--endpoint-url")
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[:3] != ["arn", parts[1], "states"] or not parts[3]:
        raise click.BadParameter(f"not an execution ARN: {execution_arn[:200]!r}")
    sfn = client(endpoint_url, region=parts[3], sigv4_api_gateway=True, **_local(endpoint_url))
    definition = json.loads(
        _call(sfn.describe_state_machine_for_execution, executionArn=execution_arn)["definition"]
    )
    from stepflow.cli.progress import Progress  # stepflow.cli registers this command

    progress = Progress(definition, sys.stdout)
    last: dict[str, Any] = {}
    try:
        for event in _events(sfn, endpoint_url, execution_arn, poll):
            progress(event)
            last = event
    except (NoLiveStreamError, ConnectionError, ValueError, RuntimeError) as exc:
        raise click.ClickException(f"the stream of {execution_arn} failed: {exc}") from None
    status = _call(sfn.describe_execution, executionArn=execution_arn)["status"]
    click.echo(f"\n{status}  ({progress.entered} states entered, {len(progress.seen)} events)")
    if status != "SUCCEEDED":
        details = next((v for k, v in last.items() if k.endswith("EventDetails")), None)
        for key in ("error", "cause"):
            if isinstance(details, dict) and details.get(key):
                click.echo(f"{key}: {details[key]}")
        raise click.exceptions.Exit(1)


def _events(sfn: Any, endpoint: str, arn: str, poll: float) -> Iterator[dict[str, Any]]:
    """The execution's events from the start: the live stream, else paged history."""
    given = 0
    try:
        for event in follow(endpoint, arn, sign=_signer(sfn.meta.region_name, _local(endpoint))):
            given = int(event["id"])
            yield event
        return
    except NoLiveStreamError as exc:
        # API Gateway answers a path it has no method for with 403 (the REST API has POST /).
        if exc.status not in (400, 403, 404, 405) or "ExecutionDoesNotExist" in exc.body:
            raise
    tail = Tail(
        _history_reader(sfn, arn),
        after=given,
        interval=poll,
        terminal=lambda: _call(sfn.describe_execution, executionArn=arn)["status"] not in RUNNING,
    )
    yield from tail.events(stop=threading.Event())


def _signer(
    region: str, placeholders: dict[str, str]
) -> Callable[[str, dict[str, str]], dict[str, str]] | None:
    """Signs a stream's requests with the credentials the API client uses (None: none)."""
    credentials = (
        Credentials(placeholders["aws_access_key_id"], placeholders["aws_secret_access_key"])
        if placeholders
        else boto3.Session().get_credentials()
    )
    if credentials is None:
        return None
    frozen = credentials.get_frozen_credentials()

    def sign(url: str, headers: dict[str, str]) -> dict[str, str]:
        return sign_request(frozen, region, "GET", url, headers, b"")

    return sign


def _local(endpoint: str) -> dict[str, str]:
    """``stepflow local``'s placeholder credentials when none are set and the endpoint is local."""
    host = urlsplit(endpoint).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") or boto3.Session().get_credentials():
        return {}
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def _history_reader(sfn: Any, arn: str) -> Any:
    def read(token: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        page = _call(
            sfn.get_execution_history,
            executionArn=arn,
            maxResults=limit,
            **({"nextToken": token} if token else {}),
        )
        events = [
            {**e, "timestamp": e["timestamp"].timestamp()} if "timestamp" in e else e
            for e in page["events"]
        ]
        return events, page.get("nextToken")

    return read


def _call(operation: Any, **params: Any) -> dict[str, Any]:
    """One API call; an unknown or malformed ARN is bad input (exit 2), the rest exit 1."""
    try:
        answer: dict[str, Any] = operation(**params)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if code in _BAD_INPUT:
            raise click.UsageError(f"{code}: {message}") from None
        raise click.ClickException(f"{code}: {message}") from None
    except BotoCoreError as exc:
        raise click.ClickException(str(exc)) from None
    return answer
