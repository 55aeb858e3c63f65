"""The ``SdkHttpMetadata`` / ``SdkResponseMetadata`` fields optimized integrations return.

Step Functions adds the HTTP metadata of the service's response (as the AWS
SDK for Java reports it) to the output of optimized integrations such as
``lambda:invoke`` and ``sqs:sendMessage``.
"""

from __future__ import annotations

from typing import Any


def sdk_metadata(response: dict[str, Any], status: int | None = None) -> dict[str, Any]:
    """``{"SdkHttpMetadata": ..., "SdkResponseMetadata": ...}`` of a boto3 ``response``.

    ``status`` overrides the HTTP status code (default: the response's, else 200).
    """
    metadata = response.get("ResponseMetadata") or {}
    headers = {str(k): str(v) for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    code = int(metadata.get("HTTPStatusCode", status if status is not None else 200))
    return {
        "SdkHttpMetadata": {
            "AllHttpHeaders": {k: [v] for k, v in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": code,
        },
        "SdkResponseMetadata": {"RequestId": str(metadata.get("RequestId", ""))},
    }


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """The fields of a boto3 ``response`` other than its ``ResponseMetadata``."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}
