"""The one ARN parser: machine, execution, express execution and child ARNs."""

from __future__ import annotations

import pytest
from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError
from stepflow.runtime.arns import StatesArn, machine_name, parse_arn

PREFIX = "arn:aws:states:eu-west-1:111122223333"


def test_each_kind_of_arn_is_taken_apart() -> None:
    assert parse_arn(f"{PREFIX}:stateMachine:M:3") == StatesArn(
        "eu-west-1", "111122223333", "stateMachine", ("M", "3")
    )
    assert parse_arn(f"{PREFIX}:express:M:run:id") == StatesArn(
        "eu-west-1", "111122223333", "express", ("M", "run", "id")
    )
    assert machine_name(f"{PREFIX}:execution:M:run#0/2") == "M"
    assert machine_name(f"{PREFIX}:execution:M:run") == "M"


@pytest.mark.parametrize(
    "arn",
    [None, 7, "", "M", f"{PREFIX}:stateMachine:", "arn:aws:sqs:r:a:q:x", f"{PREFIX}:execution::n"],
)
def test_anything_else_is_none_and_the_scope_refuses_it(arn: object) -> None:
    assert parse_arn(arn) is None and machine_name(str(arn)) == ""
    with pytest.raises(ApiError):
        Scope("eu-west-1", "111122223333").parse_machine(arn)  # type: ignore[arg-type]


def test_the_scope_refuses_another_region_or_account() -> None:
    scope = Scope("eu-west-1", "111122223333")
    assert scope.parse_execution(f"{PREFIX}:execution:M:run") == ("M", "run")
    with pytest.raises(ApiError):
        scope.parse_execution("arn:aws:states:us-east-1:111122223333:execution:M:run")
