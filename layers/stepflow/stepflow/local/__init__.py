"""The local stack: ``stepflow local`` (moto or LocalStack, the real handlers in-process)."""

from stepflow.local import demo
from stepflow.local.stack import LocalStack, free_port

__all__ = ["LocalStack", "demo", "free_port"]
