"""JSON text as Step Functions writes it in history events and outputs."""

from __future__ import annotations

import json
from typing import Any

import orjson

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """JSON text as Step Functions records it in history and output (compact)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
        return _ENCODE(value)
