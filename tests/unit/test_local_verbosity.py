"""``stepflow local``'s levels: what each of quiet, ``-v`` and ``-vv`` lets through."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from stepflow.api import lambda_handler
from stepflow.aws import hooks_lambda, outbox_repair, stepper_lambda, sweeper
from stepflow.cli.local import local_command
from stepflow.local.verbosity import set_verbosity

FUNCTIONS = (lambda_handler, stepper_lambda, outbox_repair, sweeper, hooks_lambda)


@pytest.fixture(autouse=True)
def restore(monkeypatch: Any) -> None:
    """set_verbosity changes process-wide logging: put it back after each test."""
    for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_LOG_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    werkzeug = logging.getLogger("werkzeug")
    monkeypatch.setattr(werkzeug, "level", werkzeug.level)
    for module in FUNCTIONS:
        logger = module.logger._logger
        monkeypatch.setattr(logger, "level", logger.level)


def levels() -> tuple[set[int], bool, int]:
    functions = {module.logger.log_level for module in FUNCTIONS}
    metrics = os.environ.get("POWERTOOLS_METRICS_DISABLED") != "true"
    return functions, metrics, logging.getLogger("werkzeug").level


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0, ({logging.WARNING}, False, logging.ERROR)),
        (1, ({logging.INFO}, False, logging.ERROR)),
        (2, ({logging.INFO}, True, logging.INFO)),
        (5, ({logging.INFO}, True, logging.INFO)),
    ],
)
def test_each_level_lets_through_the_functions_logs_then_metrics_and_moto(
    level: int, expected: tuple[set[int], bool, int]
) -> None:
    set_verbosity(2 if level == 0 else 0)  # from the other end, so each setting is seen to change
    set_verbosity(level)
    assert levels() == expected


def test_v_counts_and_stays_beside_the_stable_flags() -> None:
    params = {p.name: p for p in local_command.params}
    assert params["verbose"].opts == ["-v", "--verbose"]
    context = local_command.make_context("local", ["-vv", "--port", "0"])
    assert context.params["verbose"] == 2
    assert local_command.make_context("local", []).params["verbose"] == 0
    for stable in ("--host", "--port", "--endpoint", "--handlers"):
        assert any(stable in p.opts for p in local_command.params)


def test_the_verbosity_is_put_back_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    before = lambda_handler.logger.log_level
    access = logging.getLogger("werkzeug").level
    restore = set_verbosity(0)
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == "true"
    restore()  # a test run that started a quiet stack keeps its metrics afterwards
    assert "POWERTOOLS_METRICS_DISABLED" not in os.environ
    assert os.environ["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert lambda_handler.logger.log_level == before
    assert logging.getLogger("werkzeug").level == access
