"""The ``SdkHttpMetadata`` / ``SdkResponseMetadata`` fields optimized integrations return.

Step Functions performs an optimized integration with the AWS SDK for Java and
adds the HTTP metadata of the service's response (as that SDK reports it) to
the output: ``SdkHttpMetadata`` (the HTTP headers and status) and
``SdkResponseMetadata`` (the request id).
"""

from __future__ import annotations

from typing import Any


def sdk_metadata(
    response: dict[str, Any], status: int | None = None, *, aws_header_names: bool = True
) -> dict[str, Any]:
    """``{"SdkHttpMetadata": ..., "SdkResponseMetadata": ...}`` of a boto3 ``response``.

    ``status`` is the HTTP status code when the response has none (default 200).
    ``aws_header_names`` spells the headers as AWS sends them (``Content-Type``,
    ``x-amzn-RequestId``); else as botocore reports them (lower case).
    """
    metadata = response.get("ResponseMetadata") or {}
    spell = _header_name if aws_header_names else str
    headers = {spell(str(k)): str(v) for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    code = int(metadata.get("HTTPStatusCode") or (status if status is not None else 200))
    return {
        "SdkHttpMetadata": {
            "AllHttpHeaders": {k: [v] for k, v in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": code,
        },
        "SdkResponseMetadata": {"RequestId": str(metadata.get("RequestId") or "")},
    }


def _header_name(name: str) -> str:
    if name.lower() == "x-amzn-requestid":
        return "x-amzn-RequestId"
    if name.lower().startswith("x-"):
        return name.lower()
    return "-".join(part.capitalize() for part in name.split("-"))
