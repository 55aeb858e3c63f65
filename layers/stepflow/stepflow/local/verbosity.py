"""How much ``stepflow local`` prints besides its banner: 0 quiet, 1 the stack's logs, 2 all.

The deployed stack's functions log JSON lines and emit metrics (EMF) on every
request, and moto's server logs each of the many requests the pollers make
(about 500 lines a minute with nothing running), which drowned what a user
needs. So by default the stack prints its banner, warnings and errors only;
``-v`` adds the functions' JSON logs (API, stepper, runner, repair, hooks),
``-vv`` also their metrics and moto's access log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

__all__ = ["ACCESS_LOG", "METRICS", "QUIET", "STACK_LOGS", "set_verbosity"]

QUIET, STACK_LOGS, METRICS, ACCESS_LOG = 0, 1, 2, 2
"""The levels: nothing but warnings and errors; the functions' logs; also metrics and moto's."""

_METRICS_DISABLED = "POWERTOOLS_METRICS_DISABLED"


def set_verbosity(level: int) -> Callable[[], None]:
    """Make this process's stack print at ``level`` (0, 1 or 2; more counts as 2).

    It sets process-wide logging (the stack's functions run in this process,
    as their Lambda handlers' module-level loggers); call it before the stack starts.
    Returns what puts everything back as it was (the stack calls it when it stops,
    so a process that runs stacks and other code, like a test run, keeps its metrics).
    """
    from stepflow.api import lambda_handler
    from stepflow.aws import hooks_lambda, outbox_repair, stepper_lambda, sweeper

    modules = (lambda_handler, stepper_lambda, outbox_repair, sweeper, hooks_lambda)
    werkzeug = logging.getLogger("werkzeug")
    levels = [(m.logger, m.logger.log_level) for m in modules]
    access_level = werkzeug.level
    saved = {name: os.environ.get(name) for name in ("POWERTOOLS_LOG_LEVEL", _METRICS_DISABLED)}

    def restore() -> None:
        for logger, was in levels:
            logger.setLevel(was)
        werkzeug.setLevel(access_level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    functions = logging.INFO if level >= STACK_LOGS else logging.WARNING
    for module in modules:
        module.logger.setLevel(functions)
    os.environ["POWERTOOLS_LOG_LEVEL"] = logging.getLevelName(functions)
    if level >= METRICS:
        os.environ.pop(_METRICS_DISABLED, None)
    else:
        os.environ[_METRICS_DISABLED] = "true"
    # moto's server logs every request through werkzeug's logger.
    access = logging.INFO if level >= ACCESS_LOG else logging.ERROR
    werkzeug.setLevel(access)
    return restore
