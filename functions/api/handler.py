"""The API Lambda's entry point (``functions/api/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.api.lambda_handler`, which the
``stepflow`` layer ships.
"""

from stepflow.api.lambda_handler import handler

__all__ = ["handler"]
