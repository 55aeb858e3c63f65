"""The stepper Lambda's entry point (``functions/stepper/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.aws.stepper_lambda`, which the
``stepflow`` layer ships.
"""

from stepflow.aws.stepper_lambda import handler

__all__ = ["handler"]
