"""The outbox repair Lambda's entry point (``functions/repair/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.aws.outbox_repair`, which the
``stepflow`` layer ships.
"""

from stepflow.aws.outbox_repair import handler

__all__ = ["handler"]
