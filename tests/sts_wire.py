"""A recorder of STS AssumeRole requests as sent: which role, signed with which key.

moto does not evaluate trust policies; role chaining is proved by the key that
signs each AssumeRole (the ``Authorization`` header at botocore's
``before-send``, after signing) and the role each issued key is a session of.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


def denied() -> ClientError:
    """STS's refusal of an AssumeRole the trust policy does not allow."""
    error = {"Code": "AccessDenied", "Message": "not authorized to perform sts:AssumeRole"}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}, "AssumeRole")


class Wire:
    """Every AssumeRole request as sent: ``(RoleArn, RoleSessionName, signing access key)``.

    StepFlow's own STS client and each STS client signing with an assumed
    session are hooked (botocore's ``before-send`` event: signed, not yet sent).
    With ``refuse`` set, every hooked AssumeRole is refused (AccessDenied).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.issued: dict[str, str] = {}
        """Access key of each assumed session -> the role it is a session of."""
        self.refuse = False
        self.attempts: list[str] = []
        """The RoleArn of every AssumeRole attempted, refused ones too."""

    def hook(self, client: Any) -> Any:
        """Record ``client``'s AssumeRole requests from now on; ``client``."""
        for event, handler in self._handlers():
            client.meta.events.register(event, handler)
        return client

    def unhook(self, client: Any) -> None:
        """Stop recording ``client``'s requests."""
        for event, handler in self._handlers():
            client.meta.events.unregister(event, handler)

    def _handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-send.sts.AssumeRole", self._record),
            ("after-call.sts.AssumeRole", self._issued),
            ("before-call.sts.AssumeRole", self._attempt),
            ("before-call.sts.AssumeRole", self._refuse),
        ]

    def _record(self, request: Any, **_: Any) -> None:
        fields = dict(pair.split("=", 1) for pair in _text(request.body).split("&") if "=" in pair)
        found = CREDENTIAL.search(str(request.headers.get("Authorization", "")))
        key = found.group(1) if found else ""
        self.requests.append((unquote(fields["RoleArn"]), fields["RoleSessionName"], key))

    def _issued(self, parsed: Mapping[str, Any], **_: Any) -> None:
        user = parsed["AssumedRoleUser"]["Arn"]
        self.issued[parsed["Credentials"]["AccessKeyId"]] = user

    def _attempt(self, params: Mapping[str, Any], **_: Any) -> None:
        self.attempts.append(str(params["body"]["RoleArn"]))

    def _refuse(self, **_: Any) -> None:
        if self.refuse:
            raise denied()

    def signers(self) -> list[str]:
        """The role each AssumeRole was signed as (``process`` for StepFlow's own key)."""
        return [self.issued.get(key, "process") for _, _, key in self.requests]


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes) else str(body or "")
