"""The Step Functions-compatible API: the JSON protocol over StepFlow's runtime.

:class:`StepFunctionsService` answers requests; ``stepflow.api.lambda_handler``
adapts it to API Gateway proxy events; :func:`client` is a boto3 client for it.
The service (and with it the engine) is imported on first use, so that
``stepflow.client`` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stepflow.api.arns import Scope
from stepflow.api.client import client
from stepflow.api.errors import ApiError

if TYPE_CHECKING:
    from stepflow.api.service import OPERATIONS, StepFunctionsService

__all__ = ["OPERATIONS", "ApiError", "Scope", "StepFunctionsService", "client"]


def __getattr__(name: str) -> Any:
    if name in ("OPERATIONS", "StepFunctionsService"):
        return getattr(importlib.import_module("stepflow.api.service"), name)
    raise AttributeError(f"module 'stepflow.api' has no attribute {name!r}")
