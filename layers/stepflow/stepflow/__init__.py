"""StepFlow: Amazon States Language workflows on serverless AWS parts.

The public API is re-exported here; everything else is private to its package.
"""

from stepflow.api.client import client
from stepflow.errors import StatesError, StatesErrorName

__all__ = ["StatesError", "StatesErrorName", "__version__", "client"]

__version__ = "0.1.0"
