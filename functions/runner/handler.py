"""The task runner Lambda's entry point (``functions/runner/handler.handler``).

A thin adapter: the work is in :func:`stepflow.aws.stepper_lambda.runner_handler`,
which the ``stepflow`` layer ships.
"""

from stepflow.aws.stepper_lambda import runner_handler as handler

__all__ = ["handler"]
