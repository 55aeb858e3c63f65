"""What the signing proxy accepts from its clients, checked before anything is signed.

The proxy signs with its own credentials whatever it forwards, so it forwards
only what the Step Functions JSON protocol needs: ``POST /`` with one
``Content-Length``, one ``Host``, no ``Transfer-Encoding``, no query, and
headers that are plain ``name: value`` lines. Anything a server behind it could
read differently from the proxy (two lengths, a folded or control-character
header, a dot segment normalised away by the signer) is refused with 400
instead of being guessed at.
"""

from __future__ import annotations

import re
from email.message import Message
from urllib.parse import unquote

FORWARDED_HEADERS = frozenset(
    {"content-type", "x-amz-target", "accept", "content-encoding", "user-agent", "x-amz-user-agent"}
)
"""The client's headers the proxy passes on (the JSON protocol's, and who is calling).

Everything else (the client's signature, ``amz-sdk-*`` retry bookkeeping,
cookies, proxies' ``X-Forwarded-*``) stays here; ``Host``, ``Content-Length``
and the signature are the proxy's own.
"""

FORWARDED_PATH = "/"
"""The one request target forwarded: the JSON protocol posts every operation to ``/``."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SINGLE = ("host", "content-length", "x-amz-target", "content-type")


def header_problem(headers: Message) -> str | None:
    """Why ``headers`` (as :mod:`http.server` parsed them) cannot be forwarded; None if fine."""
    if headers.defects or headers.get_payload():
        return "a malformed header line"
    for name, value in headers.items():
        if not _TOKEN.match(name):
            return f"a malformed header name {name!r}"
        if "\r" in value or "\n" in value:
            return f"a folded header ({name})"
        if _CONTROL.search(value):
            return f"a control character in the header {name}"
    for name in _SINGLE:
        if len(headers.get_all(name) or ()) > 1:
            return f"more than one {name} header"
    if headers.get("Transfer-Encoding") is not None:
        return "Transfer-Encoding (send the body with a Content-Length)"
    if headers.get("Host") is None:
        return "no Host header"
    return None


def target_problem(target: str) -> str | None:
    """Why the request target ``target`` is refused: not origin-form, or a dot segment.

    Percent-encoded dots count (``%2e%2e``), however often encoded: a signer or
    server that decodes and normalises the path would see another path.
    """
    if not target.startswith("/") or target.startswith("//"):
        return "the request target must be a path (origin-form)"
    path = target.split("?", 1)[0]
    for _ in range(8):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    else:
        return "a path encoded too many times"
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        return "a dot segment in the path"
    return None


def forwarded_headers(headers: Message) -> dict[str, str]:
    """The allowed headers of ``headers`` (checked by :func:`header_problem`), to be signed."""
    return {k: v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}
