"""SQS's message size limit on a boto3 client, for moto (which takes up to 1 MiB).

:func:`refuse_oversize` makes ``SendMessage`` and ``SendMessageBatch`` refuse a message
over 256 KiB as SQS counts it (the body's UTF-8 bytes plus each message attribute's
name, type and value), before the request leaves the client, with SQS's error code.
Written from SQS's documented rule, not from :mod:`stepflow.runtime.wire`: a test on it
checks the code's counting, it does not repeat it.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

LIMIT = 262_144


class Refusals:
    """The messages a client refused: ``sizes`` in bytes, in order."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.sizes)


def sqs_size(entry: dict[str, Any]) -> int:
    """Bytes SQS counts for one message: body and attributes."""
    size = len(str(entry["MessageBody"]).encode("utf-8"))
    for name, value in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode())
    return size


def refuse_oversize(client: Any) -> Refusals:
    """Make ``client`` refuse messages over :data:`LIMIT`; returns what it refused."""
    refused = Refusals()

    def check(params: dict[str, Any], **_: Any) -> None:
        entries = params.get("Entries") or [params]
        for entry in entries:
            size = sqs_size(entry)
            if size > LIMIT:
                refused.sizes.append(size)
                error = {
                    "Code": "InvalidParameterValue",
                    "Message": "One or more parameters are invalid. Reason: Message must be "
                    f"shorter than {LIMIT} bytes.",
                }
                raise ClientError({"Error": error}, "SendMessage")

    client.meta.events.register("provide-client-params.sqs.SendMessage", check)
    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", check)
    return refused
