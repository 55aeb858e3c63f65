"""The Step Functions-compatible API: the JSON protocol over StepFlow's runtime.

:class:`StepFunctionsService` answers requests; ``stepflow.api.lambda_handler``
adapts it to API Gateway proxy events; :func:`client` is a boto3 client for it.
"""

from stepflow.api.arns import Scope
from stepflow.api.client import client
from stepflow.api.errors import ApiError
from stepflow.api.service import OPERATIONS, StepFunctionsService

__all__ = ["OPERATIONS", "ApiError", "Scope", "StepFunctionsService", "client"]
