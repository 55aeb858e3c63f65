"""A boto3 Step Functions client for a StepFlow endpoint."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from stepflow.proxy.signing import SIGNING_NAME as API_GATEWAY_SIGNING_NAME
from stepflow.proxy.signing import region_of, sign_client

__all__ = ["API_GATEWAY_SIGNING_NAME", "client"]


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
    ``states`` (:func:`stepflow.proxy.signing.sign_client`), in ``region`` or
    else the one an ``execute-api`` URL names. ``session`` (a ``boto3.Session``)
    and ``kwargs`` (``config``, credentials, ...) go to boto3.
    """
    maker = session if session is not None else boto3
    # StartSyncExecution's model asks for a ``sync-`` host prefix: right for AWS's
    # endpoint, wrong for one API Gateway (or local) host serving every operation.
    config = Config(inject_host_prefix=False)
    if kwargs.get("config") is not None:
        config = config.merge(kwargs["config"])
    kwargs["config"] = config
    if sigv4_api_gateway:
        region = region or region_of(endpoint_url)
    sfn = maker.client("stepfunctions", endpoint_url=endpoint_url, region_name=region, **kwargs)
    return sign_client(sfn) if sigv4_api_gateway else sfn
