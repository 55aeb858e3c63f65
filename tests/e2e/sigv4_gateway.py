"""A stand-in for API Gateway with IAM auth: it REQUIRES SigV4 for ``execute-api``.

Each request's signature is recomputed by hand from the secret of its access
key (:func:`canonical_request`, :func:`signature`: not botocore, the signer
under test; tests/unit/test_sigv4_gateway_vectors.py pins them to AWS's
published test vectors); unsigned requests, another service's scope, another
region, an unknown key or a wrong signature get 403 as API Gateway answers
them. A verified request under the stage path (``/v1``) goes, stage stripped,
to the API behind it (``stepflow local``). Every verified request is counted
by X-Amz-Target, with the access key that signed it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

STAGE = "/v1"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
    r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$"
)
_UNRESERVED = "-_.~"


def canonical_request(
    method: str, target: str, headers: Mapping[str, str], signed: Sequence[str], body: bytes
) -> str:
    """SigV4's canonical request, computed here by hand from AWS's specification.

    Not botocore's: a canonicalisation bug of the signer under test must not be
    repeated by its verifier. ``target`` is the request line's path and query as
    received; the path is URI-encoded once more (every service but S3), the
    query's names and values decoded, re-encoded and sorted.
    """
    path, _, query = target.partition("?")
    uri = quote(path or "/", safe="/" + _UNRESERVED)
    pairs = []
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        pairs.append((_encode(name), _encode(value)))
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(" ".join(value.split()))
    lines = "".join(f"{name}:{','.join(lowered.get(name, []))}\n" for name in signed)
    return "\n".join(
        [
            method,
            uri,
            "&".join(f"{name}={value}" for name, value in sorted(pairs)),
            lines,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def _encode(text: str) -> str:
    return quote(unquote(text), safe=_UNRESERVED)


def signature(secret: str, stamp: str, scope: str, canonical: str) -> str:
    """The hex SigV4 signature of ``canonical`` (``scope``: date/region/service/aws4_request)."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def refusal(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    region: str,
) -> str | None:
    """Why API Gateway would refuse this request (None: the signature is good)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    found = _AUTHORIZATION.match(lowered.get("authorization", ""))
    if found is None:
        return "Missing Authentication Token"
    key, date, scope_region, service, signed, given = found.groups()
    if service != "execute-api":
        return "Credential should be scoped to correct service: 'execute-api'."
    if scope_region != region:
        return f"Credential should be scoped to a valid region, not '{scope_region}'."
    if key not in secrets:
        return "The security token included in the request is invalid."
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names or names != sorted(set(names)):
        return "host and x-amz-date must be signed, the signed headers sorted"
    stamp = lowered.get("x-amz-date", "")
    if not stamp.startswith(date):
        return "the credential's date is not the request's"
    canonical = canonical_request(method, path, headers, names, body)
    expected = signature(
        secrets[key], stamp, f"{date}/{region}/execute-api/aws4_request", canonical
    )
    if not hmac.compare_digest(expected, given):
        return "The request signature we calculated does not match the signature you provided."
    return None


class SigV4Gateway:
    """Serves on 127.0.0.1 (any port) in front of ``api_url``; ``url`` includes the stage."""

    def __init__(self, api_url: str, secrets: Mapping[str, str], region: str) -> None:
        self.api = urlsplit(api_url)
        self.secrets, self.region = dict(secrets), region
        self.targets: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{STAGE}/"

    def __enter__(self) -> SigV4Gateway:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def passed(self, target: str, key: str) -> None:
        """Count a verified request."""
        with self._lock:
            self.targets[target.rpartition(".")[2]] += 1
            self.keys[key] += 1

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """Send the verified request, stage stripped, to the API behind."""
        connection = http.client.HTTPConnection(self.api.hostname or "", self.api.port, timeout=70)
        connection.request(method, path[len(STAGE) :] or "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()


def _handler(gateway: SigV4Gateway) -> type[BaseHTTPRequestHandler]:
    class _Verify(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            why = refusal(self.command, self.path, headers, body, gateway.secrets, gateway.region)
            if why is None and not self.path.startswith(STAGE + "/"):
                why = "Missing Authentication Token"
            if why is not None:
                gateway.refused.append(why)
                self._answer(
                    403,
                    [("Content-Type", "application/json")],
                    json.dumps({"message": why}).encode(),
                )
                return
            key = headers["Authorization"].split("Credential=")[1].split("/")[0]
            gateway.passed(headers.get("X-Amz-Target", "-"), key)
            sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
            status, answer_headers, answer = gateway.forward(self.command, self.path, sent, body)
            kept = [
                (k, v)
                for k, v in answer_headers
                if k.lower() not in ("content-length", "connection", "transfer-encoding")
            ]
            self._answer(status, kept, answer)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return _Verify
