"""``stepflow local --demo`` on a YAML definition: registered through the API and run."""

from __future__ import annotations

import io
import json
from pathlib import Path

from stepflow.local import LocalStack
from stepflow.local.demo import run_demo

HELLO = """\
StartAt: Greet
States:
  Greet:
    Type: Pass
    Parameters:
      message.$: States.Format('hello {}', $.name)
      id: $.name
    End: true
"""


def test_a_yaml_demo_runs_through_the_local_api(tmp_path: Path) -> None:
    path = tmp_path / "hello.asl.yaml"
    path.write_text(HELLO, encoding="utf-8")
    out = io.StringIO()
    with LocalStack(port=0, handlers={}) as stack:
        assert run_demo(stack, str(path), {"name": "Ada"}, out) == 0
        sfn = stack.stepfunctions()
        machines = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
        (arn,) = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
        validated = sfn.validate_state_machine_definition(
            definition=sfn.describe_state_machine(stateMachineArn=arn)["definition"],
            severity="WARNING",
        )
    assert machines == ["hello"]  # registered once
    printed = out.getvalue()
    summary = printed[printed.index("\nSUCCEEDED") :]
    output = json.loads(summary[summary.index("{") :])
    assert output == {"message": "hello Ada", "id": "$.name"}  # `id` without .$: plain text
    assert [d["code"] for d in validated["diagnostics"]] == ["NO_DOLLAR"]
