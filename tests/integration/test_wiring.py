"""Settings from the environment and the one build() every process uses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import MissingSigningKeyError, build
from stepflow.runtime.outcome import TaskOutcome

ENV = {
    "TABLE_NAME": "log",
    "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/transitions",
    "TASKS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/tasks",
    "AWS_REGION": "eu-west-1",
    "STEPFLOW_ACCOUNT_ID": "111122223333",
    "STEPFLOW_REPAIR_DELAY_SECONDS": "30",
    "STEPFLOW_SIGNING_KEY": "test-signing-key-" + "0" * 32,
}


KEY = {"STEPFLOW_SIGNING_KEY": ENV["STEPFLOW_SIGNING_KEY"]}


def test_settings_read_the_stacks_variables_and_name_what_is_missing() -> None:
    settings = Settings.from_environ(ENV)
    assert (settings.table_name, settings.region, settings.account) == (
        "log",
        "eu-west-1",
        "111122223333",
    )
    assert settings.repair_delay_seconds == 30 and settings.payload_bucket == ""
    with pytest.raises(ValidationError, match="TABLE_NAME"):
        Settings.from_environ({"QUEUE_URL": "q"})
    with pytest.raises(ValidationError, match="STEPFLOW_REPAIR_DELAY_SECONDS"):
        Settings.from_environ({**ENV, "STEPFLOW_REPAIR_DELAY_SECONDS": "901"})


def test_build_assembles_the_deployed_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    wiring = build(Settings.from_environ(ENV))
    # the transition stepper sends tasks to the runner's queue and runs none itself
    assert wiring.stepper.inline_tasks is False
    assert wiring.stepper.tasks_bus is wiring.tasks_bus is not None
    assert wiring.runner.inline_tasks is False
    # the runner runs a batch's tasks side by side, the others one after the other
    assert wiring.runner.task_concurrency == 10
    assert wiring.stepper.task_concurrency == wiring.api_stepper.task_concurrency == 1
    # the API commits and enqueues, a repair message before each commit
    assert wiring.service.stepper is wiring.api_stepper
    assert wiring.api_stepper.inline_tasks is False and wiring.api_stepper.repair_delay == 30
    assert wiring.stepper.repair_delay == 0
    # the runner fires retries' timers in place; lone tasks travel as groups of one
    assert wiring.runner.task_runner and not (
        wiring.stepper.task_runner or wiring.api_stepper.task_runner
    )
    assert wiring.runner.lone_task_groups and wiring.stepper.lone_task_groups
    # ... but not while records keep their own items (the first deploy of an upgrade)
    off = build(Settings.from_environ({**ENV, "STEPFLOW_CLAIMS_IN_EVENTS": "false"}))
    steppers = (off.runner, off.stepper, off.api_stepper)
    assert not any(s.lone_task_groups for s in steppers)
    # one definition cache and one log for all of them
    assert wiring.stepper.definitions is wiring.api_stepper.definitions is wiring.definitions
    assert wiring.runner.log is wiring.log is wiring.service.stepper.log
    assert wiring.service.scope.account == "111122223333"


def test_a_sweeper_needs_only_the_table() -> None:
    wiring = build(Settings.from_environ({"TABLE_NAME": "log"}), clients={"dynamodb": object()})
    assert wiring.log.table == "log"
    with pytest.raises(ValueError, match="QUEUE_URL"):
        _ = wiring.bus
    # without a tasks queue (in-process tests), the transition stepper may run tasks inline
    assert (
        build(
            Settings.from_environ({"TABLE_NAME": "t", "QUEUE_URL": "q", **KEY}),
            clients={"dynamodb": object(), "sqs": object(), "lambda": object()},
        ).stepper.inline_tasks
        is True
    )


def test_stepflow_local_and_the_api_take_the_limits_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepflow.local.stack import _environment_limits

    monkeypatch.setenv("STEPFLOW_MAX_ERROR_LENGTH", "7")
    assert _environment_limits().max_error_length == 7
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    wiring = build(Settings.from_environ({**ENV, "STEPFLOW_MAX_PAYLOAD_BYTES": "1048576"}))
    assert wiring.service.limits.max_payload_bytes == 1_048_576
    assert wiring.api_stepper.limits is wiring.service.limits


def test_build_wires_the_access_settings_into_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepflow.api.pass_role import IamPassRoleChecker, StaticPassRoles

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    rules = '[{"principals": ["*"], "actions": ["states:Describe*"], "stateMachines": ["*"]}]'
    deployed = build(
        Settings.from_environ(
            {**ENV, "STEPFLOW_PASS_ROLE_CHECK": "iam", "STEPFLOW_ACCESS_POLICY": rules}
        )
    )
    access = deployed.service.access
    assert isinstance(access.pass_role, IamPassRoleChecker)
    assert access.policy is not None and len(access.policy.rules) == 1
    assert deployed.client("iam") is access.pass_role._client
    table = build(Settings.from_environ({**ENV, "STEPFLOW_PASS_ROLE_CHECK": '{"*": ["*"]}'}))
    assert isinstance(table.service.access.pass_role, StaticPassRoles)
    default = build(Settings.from_environ(ENV)).service.access
    assert (default.policy, default.pass_role, default.active) == (None, None, False)


def test_no_signing_key_is_a_startup_error_never_accept_all() -> None:
    # GIVEN settings with queues but neither a signing secret nor a raw key
    wiring = build(
        Settings.from_environ({"TABLE_NAME": "t", "QUEUE_URL": "q"}),
        clients={"dynamodb": object(), "sqs": object()},
    )
    # THEN no bus (hence no stepper, API or runner) can be built
    with pytest.raises(MissingSigningKeyError, match="STEPFLOW_SIGNING_SECRET_ARN"):
        _ = wiring.bus
    with pytest.raises(MissingSigningKeyError):
        _ = wiring.stepper
    # AND the raw key never shows in the settings' repr
    assert "test-signing-key" not in repr(Settings.from_environ(ENV))


def test_every_stepper_checks_task_parameters_with_the_invokers_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    wiring = build(Settings.from_environ(ENV))
    check = wiring.integrations.parameters_problem
    for stepper in (wiring.stepper, wiring.runner, wiring.api_stepper):
        assert stepper.check_parameters == check
    bad = {"ApiEndpoint": "h", "Method": "GET", "Headers": {"a": "b"}}
    assert wiring.stepper.check_parameters is not None
    assert "'Headers'" in str(wiring.stepper.check_parameters(APIGW, bad))
    # a given invoker replaces the integrations: it alone knows what it runs
    replaced = build(Settings.from_environ(ENV), invoker=lambda body: TaskOutcome.succeeded(1))
    assert replaced.stepper.check_parameters is None
    mine = build(Settings.from_environ(ENV), check_parameters=lambda r, p: "no")
    assert mine.api_stepper.check_parameters is mine.check_parameters


APIGW = "arn:aws:states:::apigateway:invoke"
