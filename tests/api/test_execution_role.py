"""Histories and ``$$.Execution.RoleArn`` name the state machine's role (issue 17).

GIVEN state machines with their own ``roleArn``, WHEN they run through
StartExecution (a version, and after an update of the role), StartSyncExecution
and TestState (with its ``roleArn``), THEN ExecutionStarted and the context
object carry that role, never the default ``role/StepFlowExecutionRole``.
"""

from __future__ import annotations

import json

from tests.api.conftest import ROLE, SCOPE, Api

OTHER = f"arn:aws:iam::{SCOPE.account}:role/Other"
ROLE_OUT = json.dumps(
    {
        "StartAt": "R",
        "States": {
            "R": {"Type": "Pass", "Parameters": {"role.$": "$$.Execution.RoleArn"}, "End": True}
        },
    }
)


def started_role(api: Api, execution: str) -> str:
    events = api("GetExecutionHistory", executionArn=execution)["events"]
    started = [e for e in events if e["type"] == "ExecutionStarted"]
    assert len(started) == 1
    return str(started[0]["executionStartedEventDetails"]["roleArn"])


def test_start_execution_runs_with_the_machines_role(api: Api) -> None:
    arn = api.machine("M", ROLE_OUT, publish=True)
    first = api("StartExecution", stateMachineArn=arn)["executionArn"]
    api("UpdateStateMachine", stateMachineArn=arn, roleArn=OTHER)
    second = api("StartExecution", stateMachineArn=arn)["executionArn"]
    version = api("StartExecution", stateMachineArn=f"{arn}:1")["executionArn"]
    api.drain()
    for execution, role in ((first, ROLE), (second, OTHER), (version, ROLE)):
        assert started_role(api, execution) == role
        output = api("DescribeExecution", executionArn=execution)["output"]
        assert json.loads(output) == {"role": role}


def test_sync_executions_and_test_state_run_with_their_role(api: Api) -> None:
    arn = api.machine("E", ROLE_OUT, type="EXPRESS")
    api("UpdateStateMachine", stateMachineArn=arn, roleArn=OTHER)
    done = api("StartSyncExecution", stateMachineArn=arn)
    assert json.loads(done["output"]) == {"role": OTHER}
    state = json.dumps(
        {"Type": "Pass", "Parameters": {"role.$": "$$.Execution.RoleArn"}, "End": True}
    )
    tested = api("TestState", definition=state, roleArn=ROLE)
    assert json.loads(tested["output"]) == {"role": ROLE}
