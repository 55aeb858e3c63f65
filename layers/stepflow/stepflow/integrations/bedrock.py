"""``arn:aws:states:::bedrock:invokeModel``: one Bedrock Runtime InvokeModel call.

Parameters as Step Functions spells them: ``ModelId``, ``Body`` (JSON, sent as
compact JSON text; a string is sent as is), ``ContentType`` and ``Accept`` (default
``application/json``), ``Input.S3Uri`` (the body read from S3 instead),
``Trace``, ``GuardrailIdentifier``, ``GuardrailVersion``. The output is
``{"Body": <the model's response, parsed when JSON>, "ContentType": ...}``;
errors are ``Bedrock.<Code>`` (``Bedrock.ValidationException``).
``Output.S3Uri`` (writing the response to S3) is refused: not supported yet.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from stepflow.integrations.base import TaskRequest
from stepflow.integrations.boto_calls import Action, BotoIntegration
from stepflow.integrations.http_common import JSON, BadParameters
from stepflow.runtime.clients import TaskClients


def _prepare(request: TaskRequest, clients: TaskClients, api: dict[str, Any]) -> dict[str, Any]:
    api = dict(api)
    if "Output" in api:
        raise BadParameters("Output", "(S3Uri output) is not supported by StepFlow yet")
    source = api.pop("Input", None)
    if source is not None:
        if not isinstance(source, dict) or not isinstance(source.get("S3Uri"), str):
            raise BadParameters("Input")
        if "body" in api:
            raise BadParameters("Input", "cannot be given with Body")
        location = urlsplit(source["S3Uri"])
        if location.scheme != "s3" or not location.netloc:
            raise BadParameters("Input")
        s3 = request.client(clients, "s3")
        obj = s3.get_object(Bucket=location.netloc, Key=location.path.lstrip("/"))
        api["body"] = obj["Body"].read()
    elif "body" not in api:  # a Body is JSON text already (a string as it is)
        raise BadParameters("Body", "is required (or Input.S3Uri)")
    api.setdefault("contentType", JSON)
    api.setdefault("accept", JSON)
    return api


def _finish(response: dict[str, Any]) -> Any:
    content_type = str(response.get("contentType") or JSON)
    raw = response["body"]  # read by the call
    text = raw.decode("utf-8", errors="replace")
    body: Any = text
    if "json" in content_type.lower():
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = text
    return {"Body": body, "ContentType": content_type}


BEDROCK = BotoIntegration(
    service="bedrock",
    client="bedrock-runtime",
    prefix="Bedrock",
    cause_service="BedrockRuntime",
    actions={"invokeModel": Action("InvokeModel", prepare=_prepare, finish=_finish)},
)

INTEGRATIONS: tuple[BotoIntegration, ...] = (BEDROCK,)
