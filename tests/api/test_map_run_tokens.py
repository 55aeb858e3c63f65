"""ListMapRuns page tokens: forged positions are InvalidToken (second reading of issue 14)."""

from __future__ import annotations

import pytest
from stepflow.api.errors import ApiError
from stepflow.api.paging import write_token

from tests.api.conftest import Api


@pytest.mark.parametrize("position", ["-5", "-1", "x", "1e3", ""])
def test_a_forged_list_map_runs_token_is_invalid(api: Api, position: str) -> None:
    machine = api.machine()
    execution = api("StartExecution", stateMachineArn=machine)["executionArn"]
    token = write_token("mr", position)["nextToken"]
    with pytest.raises(ApiError) as info:
        api("ListMapRuns", executionArn=execution, nextToken=token)
    assert info.value.code == "InvalidToken"
