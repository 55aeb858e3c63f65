"""The hooks dispatcher's entry point (``functions/hooks/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.aws.hooks_lambda`, which the
``stepflow`` layer ships.
"""

from stepflow.aws.hooks_lambda import handler

__all__ = ["handler"]
