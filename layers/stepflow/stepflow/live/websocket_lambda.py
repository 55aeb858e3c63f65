"""The live WebSocket API's function (``functions/live/handler.handler``): every route.

The management endpoint the backlog is pushed to is the API's own, read from the
event (``https://<domainName>/<stage>``); the table and bucket from the
environment (``TABLE_NAME``, ``PAYLOAD_BUCKET``), as every StepFlow function, and
the API's access policy (``STEPFLOW_ACCESS_POLICY``) the subscriptions are checked by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from stepflow.api.access import AccessPolicy
from stepflow.aws.wiring import Wiring, build
from stepflow.live.push import api_poster
from stepflow.live.websocket import Subscriptions, handle

SERVICE = "stepflow-live"
logger = Logger(service=SERVICE)

_wiring: Wiring | None = None
_subscriptions: dict[str, Subscriptions] = {}


def configure(wiring: Wiring | None) -> None:
    """Use ``wiring`` (tests); None: build it from the environment on first use."""
    global _wiring
    _wiring = wiring
    _subscriptions.clear()


def subscriptions_for(event: Mapping[str, Any]) -> Subscriptions:
    """The container's subscriptions, posting to the event's API (one per endpoint)."""
    global _wiring
    context = event.get("requestContext") or {}
    endpoint = f"https://{context.get('domainName', '')}/{context.get('stage', '')}"
    if endpoint not in _subscriptions:
        if _wiring is None:
            _wiring = build()
        management = boto3.client(
            "apigatewaymanagementapi", endpoint_url=endpoint, region_name=_wiring.settings.region
        )
        _subscriptions[endpoint] = Subscriptions(
            _wiring.settings.table_name,
            _wiring.client("dynamodb"),
            _wiring.log,
            api_poster(management),
            policy=AccessPolicy.from_json(_wiring.settings.access_policy),
        )
    return _subscriptions[endpoint]


@logger.inject_lambda_context
def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """A WebSocket route's event -> ``{"statusCode": ..., "body": ...}``."""
    left = getattr(context, "get_remaining_time_in_millis", None)
    remaining = (lambda: left() / 1000) if callable(left) else None
    answer = handle(event, subscriptions_for(event), remaining)
    logger.info(
        "live route",
        extra={
            "route": (event.get("requestContext") or {}).get("routeKey"),
            "status": answer["statusCode"],
        },
    )
    return answer
