"""A boto3 Step Functions client for a StepFlow endpoint."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

API_GATEWAY_SIGNING_NAME = "execute-api"
"""The SigV4 service name API Gateway checks under IAM authorization."""


def client(
    endpoint_url: str,
    *,
    region: str | None = None,
    sigv4_api_gateway: bool = False,
    session: Any = None,
    **kwargs: Any,
) -> Any:
    """``boto3.client("stepfunctions")`` for StepFlow's API at ``endpoint_url``.

    With ``sigv4_api_gateway=True`` (a deployed API behind API Gateway with IAM
    auth) requests are signed for the service ``execute-api`` instead of
    ``states``. ``session`` (a ``boto3.Session``) and ``kwargs`` (``config``,
    credentials, ...) go to boto3.
    """
    maker = session if session is not None else boto3
    # StartSyncExecution's model asks for a ``sync-`` host prefix: right for AWS's
    # endpoint, wrong for one API Gateway (or local) host serving every operation.
    config = Config(inject_host_prefix=False)
    if kwargs.get("config") is not None:
        config = config.merge(kwargs["config"])
    kwargs["config"] = config
    sfn = maker.client("stepfunctions", endpoint_url=endpoint_url, region_name=region, **kwargs)
    if sigv4_api_gateway:
        sfn.meta.events.register("before-sign.sfn", _sign_for_api_gateway)
    return sfn


def _sign_for_api_gateway(request: Any, **_: Any) -> None:
    """Sign the request for API Gateway rather than for Step Functions."""
    request.context.setdefault("signing", {})["signing_name"] = API_GATEWAY_SIGNING_NAME
