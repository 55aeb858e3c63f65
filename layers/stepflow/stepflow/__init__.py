"""StepFlow: Amazon States Language workflows on serverless AWS parts.

The public API is re-exported here; everything else is private to its package.
"""

from typing import Any

from stepflow.errors import StatesError, StatesErrorName

__all__ = ["StatesError", "StatesErrorName", "__version__", "client"]

__version__ = "0.1.0"


def client(endpoint_url: str, **kwargs: Any) -> Any:
    """``boto3.client("stepfunctions")`` for StepFlow's API: see :func:`stepflow.api.client`."""
    # Imported in the call, not at the top: every ``import stepflow.<core package>`` runs
    # this file first, and the core (asl, data, engine, runtime, activities) must not load
    # boto3 or the API edge.
    from stepflow.api.client import client as api_client

    return api_client(endpoint_url, **kwargs)
