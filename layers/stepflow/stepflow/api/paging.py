"""Page sizes and opaque page tokens of the list operations."""

from __future__ import annotations

import base64
import binascii

from stepflow.api.errors import ApiError

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def page_size(max_results: int | None) -> int:
    """``maxResults`` as a page size (0 or absent: the default), or ValidationException."""
    if max_results is None or max_results == 0:
        return DEFAULT_PAGE
    if not 1 <= max_results <= MAX_PAGE:
        raise ApiError("ValidationException", f"maxResults must be 0 to {MAX_PAGE}")
    return max_results


def write_token(kind: str, position: str | None) -> dict[str, str]:
    """``{"nextToken": ...}`` for ``position`` (nothing at the end)."""
    if position is None:
        return {}
    return {"nextToken": base64.urlsafe_b64encode(f"{kind}|{position}".encode()).decode()}


def read_token(token: str | None, kind: str) -> str | None:
    """The position a token of ``kind`` carries, or InvalidToken."""
    if token is None:
        return None
    try:
        found, sep, position = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
    except (binascii.Error, UnicodeError, ValueError):
        found, sep, position = "", "", ""
    if found != kind or not sep:
        raise ApiError("InvalidToken", f"Invalid Token: '{token}'")
    return position
