"""The sweeper Lambda's entry point (``functions/sweeper/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.aws.sweeper`, which the
``stepflow`` layer ships.
"""

from stepflow.aws.sweeper import handler

__all__ = ["handler"]
