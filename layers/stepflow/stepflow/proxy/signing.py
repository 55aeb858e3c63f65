"""SigV4 for ``execute-api``: the one signer of every StepFlow client of a deployed API.

A deployed stack's API sits behind API Gateway with IAM authorization, which
checks that a request is signed for the service ``execute-api`` in the API's
region. boto3's ``stepfunctions`` client signs for ``states``; :func:`sign_client`
registers a ``before-sign`` handler that changes the service name (and the
region) in botocore's signing context, so the rest of botocore's signing
(credential chain, refresh, retries) is untouched. :func:`sign_request` signs a
request built by hand (the proxy's, ReleaseTask's) with botocore's ``SigV4Auth``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

if TYPE_CHECKING:
    from stepflow.worker.client import ReleasingClient

SIGNING_NAME = "execute-api"
"""The SigV4 service name API Gateway checks under IAM authorization."""

_EXECUTE_API_HOST = re.compile(r"^[^.]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")

SIGNATURE_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
"""The headers a SigV4 signature adds (a client's own are dropped before re-signing)."""


def region_of(api_url: str) -> str | None:
    """The region in an API Gateway URL's host (``<id>.execute-api.<region>.amazonaws.com``).

    None for any other host (a custom domain, a local endpoint).
    """
    found = _EXECUTE_API_HOST.match((urlparse(api_url).hostname or "").lower())
    return found.group(1) if found else None


def is_api_gateway(api_url: str | None) -> bool:
    """True for an API Gateway URL (``https://<id>.execute-api.<region>.amazonaws.com/...``)."""
    return region_of(api_url or "") is not None


def signing_region(api_url: str, region: str | None, default: str | None = None) -> str:
    """The region to sign for: ``region`` if given, else the URL's, else ``default``.

    Raises ValueError when none is known (a custom domain without ``--region``).
    """
    chosen = region or region_of(api_url) or default
    if not chosen:
        raise ValueError(
            f"cannot tell the API's region from {api_url!r}: give the region "
            "(--region or AWS_DEFAULT_REGION)"
        )
    return chosen


def sign_client(client: Any, region: str | None = None) -> Any:
    """Make boto3 ``client`` (``stepfunctions``) sign every request for ``execute-api``.

    ``region`` (None: the client's ``region_name``) is the credential scope's
    region. Returns ``client``.
    """

    def before_sign(request: Any, **_: Any) -> None:
        signing = request.context.setdefault("signing", {})
        signing["signing_name"] = SIGNING_NAME
        if region:
            signing["region"] = region

    client.meta.events.register("before-sign.sfn", before_sign)
    return client


def api_client(
    api_url: str,
    *,
    region: str | None = None,
    session: Any = None,
    config: Any = None,
    **kwargs: Any,
) -> Any:
    """A boto3 ``stepfunctions`` client of the deployed API at ``api_url``, signed for it.

    The region is ``region``, else the URL's, else the session's default
    (ValueError if none). ``session`` is a ``boto3.Session`` (None: boto3's
    default credential chain: environment, profile, SSO, instance role);
    ``config`` and ``kwargs`` go to boto3.
    """
    import boto3
    from botocore.config import Config

    maker = session if session is not None else boto3.session.Session()
    chosen = signing_region(api_url, region, maker.region_name)
    # StartSyncExecution's model asks for a ``sync-`` host prefix: right for AWS's
    # endpoint, wrong for one API Gateway host serving every operation.
    merged = Config(inject_host_prefix=False)
    if config is not None:
        merged = merged.merge(config)
    sfn = maker.client(
        "stepfunctions", endpoint_url=api_url, region_name=chosen, config=merged, **kwargs
    )
    return sign_client(sfn, chosen)


def sign_request(
    credentials: Any,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, str]:
    """``headers`` (minus any old signature) plus a SigV4 signature for ``execute-api``.

    ``credentials`` are botocore's (``ReadOnlyCredentials`` or any object with
    ``access_key``, ``secret_key`` and ``token``).
    """
    kept = {k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS}
    request = AWSRequest(method=method, url=url, data=body, headers=kept)
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


def worker_client(
    api_url: str, *, region: str | None = None, session: Any = None
) -> ReleasingClient:
    """``stepflow worker --api URL``'s client: every call signed for ``execute-api``.

    A :class:`~stepflow.worker.client.ReleasingClient` over :func:`api_client`
    (GetActivityTask's 60 s long poll fits its read timeout), so ReleaseTask,
    sent by hand, is signed with the same credentials, service and region.
    """
    import boto3

    from stepflow.worker.client import ReleasingClient

    maker = session if session is not None else boto3.session.Session()
    sfn = api_client(api_url, region=region, session=maker, config=worker_config())
    return ReleasingClient(sfn, maker.get_credentials(), signing_name=SIGNING_NAME)


def worker_config() -> Any:
    """The botocore ``Config`` of a worker's client (GetActivityTask long-polls for 60 s)."""
    from botocore.config import Config

    return Config(read_timeout=70, retries={"mode": "standard"})
