"""The API Lambda: API Gateway REST (v1 proxy) events in, Step Functions JSON out.

The service is built lazily on the first invocation by
:func:`stepflow.aws.wiring.build` from the environment's
:class:`~stepflow.aws.settings.Settings` and reused by the container; tests
and ``stepflow local`` inject their own with :func:`configure`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepflow.api.access import Caller
from stepflow.api.protocol import CONTENT_TYPE
from stepflow.api.service import StepFunctionsService
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build

SERVICE = "stepflow-api"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)
tracer = Tracer(service=SERVICE)

_service: StepFunctionsService | None = None


def configure(service: StepFunctionsService | None) -> None:
    """Use ``service`` for the following invocations (None: build one from the environment)."""
    global _service
    _service = service


def get_service() -> StepFunctionsService:
    """The container's service, built by :func:`build_service` on first use."""
    global _service
    if _service is None:
        _service = build_service()
    return _service


def build_service(environ: Mapping[str, str] | None = None) -> StepFunctionsService:
    """The service of :func:`stepflow.aws.wiring.build` on the settings of ``environ``.

    ``environ`` defaults to the process environment.
    """
    return build(Settings.from_environ(environ)).service


def respond(event: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy response to one proxy event (no Lambda context needed)."""
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        # surrogatepass: a lone surrogate in the event becomes bytes the JSON parser refuses
        text = str(raw).encode("utf-8", "surrogatepass")
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else text
    except (binascii.Error, ValueError, TypeError):
        body = b"\x00"  # not JSON: answered as a SerializationException
    target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
    context = event.get("requestContext")
    identity = context.get("identity") if isinstance(context, Mapping) else None
    service = get_service()
    forged = service.signer.forged if service.signer is not None else 0
    status, out_headers, out_body = service.handle(
        method=str(event.get("httpMethod", "")),
        path=str(event.get("path", "/")),
        headers=headers,
        body=body,
        on_error=lambda exc: logger.exception("request failed", extra={"target": target}),
        caller=Caller.from_identity(identity if isinstance(identity, Mapping) else None),
    )
    operation = target.rpartition(".")[2] or "unknown"
    if service.signer is not None and service.signer.forged > forged:
        # GetActivityTask dropped task messages StepFlow did not sign (activity queues)
        metrics.add_metric(
            name="ForgedMessages", unit=MetricUnit.Count, value=service.signer.forged - forged
        )
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    if status >= 400:
        metrics.add_metric(
            name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1
        )
    logger.info("request", extra={"operation": operation, "status": status})
    return {
        "statusCode": status,
        "headers": out_headers,
        "body": out_body,
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Lambda entry point: ``{"statusCode", "headers", "body"}``."""
    return respond(event)


__all__ = ["CONTENT_TYPE", "build_service", "configure", "handler", "respond"]
