"""Modules split for size keep their public import paths (the moved names are re-exported)."""

import importlib

import pytest

# (module the name was always imported from, name, module it lives in now)
MOVED = [
    ("stepflow.runtime.stepper", "TaskLeaseHeldError", "stepflow.runtime.task_runs"),
    ("stepflow.runtime.stepper", "child_arn", "stepflow.runtime.outbox"),
    ("stepflow.runtime.stepper", "MAX_DELAY_SECONDS", "stepflow.runtime.outbox"),
    ("stepflow.runtime.stepper", "TaskGuard", "stepflow.runtime.stepper_commit"),
    ("stepflow.runtime.map_runs", "THRESHOLD_CAUSE", "stepflow.runtime.map_run_window"),
    ("stepflow.runtime.map_runs", "CHECKS_PER_COMMIT", "stepflow.runtime.map_run_window"),
    ("stepflow.runtime", "TaskLeaseHeldError", "stepflow.runtime.task_runs"),
    ("stepflow.aws.dynamodb_log", "LogUnavailableError", "stepflow.aws.log_table"),
    ("stepflow.aws.dynamodb_log", "LogIntegrityError", "stepflow.aws.log_table"),
    ("stepflow.aws", "LogUnavailableError", "stepflow.aws.log_table"),
    ("stepflow.data.intrinsics", "to_java_string", "stepflow.data.java_text"),
    ("stepflow.data.intrinsics", "to_json_text", "stepflow.data.java_text"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_a_moved_name_is_the_same_object_under_its_old_path(old: str, name: str, new: str) -> None:
    # GIVEN a name moved out of a module that was split
    # WHEN it is imported from its old module
    # THEN it is the very object of its new module (an ``except`` on either catches both)
    moved = getattr(importlib.import_module(new), name)
    assert getattr(importlib.import_module(old), name) is moved


def test_the_stepper_module_declares_its_public_names() -> None:
    stepper = importlib.import_module("stepflow.runtime.stepper")
    for name in stepper.__all__:
        assert hasattr(stepper, name), name
    assert {"Stepper", "TaskLeaseHeldError", "child_arn", "DEFAULT_CHILD_LIMIT"} <= set(
        stepper.__all__
    )


def test_the_alias_operations_are_served_by_the_service() -> None:
    # GIVEN the alias operations moved from Machines to Aliases
    from stepflow.api.aliases import Aliases
    from stepflow.api.machines import Machines

    # THEN each is defined once, on Aliases (the service finds exactly one owner per operation)
    for method in (
        "create_state_machine_alias",
        "describe_state_machine_alias",
        "update_state_machine_alias",
        "delete_state_machine_alias",
        "list_state_machine_aliases",
    ):
        assert hasattr(Aliases, method) and not hasattr(Machines, method), method
