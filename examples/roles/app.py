r"""A CDK app deploying the role the order example runs with (``examples/order.asl.json``).

Deploy StepFlow first, then::

    cd examples/roles && npx cdk deploy \
        -c stepperRole=<StepperRoleArn output> -c runnerRole=<RunnerRoleArn output>

Without the context values the app imports the StepFlow stack's exports
(``<stepflowStack>-StepperRoleArn``/``-RunnerRoleArn``; ``stepflowStack`` defaults to
``StepFlow``). Start executions with the ``OrderWorkflowRoleArn`` output as ``roleArn``.
The functions are read from the order definition, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from workflow_role import WorkflowRole

ORDER = Path(__file__).resolve().parents[1] / "order.asl.json"


def lambda_functions(definition: object) -> list[str]:
    """The names of the Lambda functions a definition's Task states invoke (sorted, once each)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            resource = node.get("Resource")
            if node.get("Type") == "Task" and isinstance(resource, str):
                parts = resource.split(":")
                if parts[:3] == ["arn", "aws", "lambda"] and len(parts) >= 7:
                    found.add(parts[6])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition)
    return sorted(found)


def build_app(context: dict[str, str] | None = None) -> cdk.App:
    """The app with one stack, ``StepFlowOrderRole``."""
    app = cdk.App(context=context or {})
    stepflow = str(app.node.try_get_context("stepflowStack") or "StepFlow")
    stack = cdk.Stack(app, "StepFlowOrderRole", description="The order example's workflow role")
    trusted = [
        str(app.node.try_get_context(key) or cdk.Fn.import_value(f"{stepflow}-{export}"))
        for key, export in (("stepperRole", "StepperRoleArn"), ("runnerRole", "RunnerRoleArn"))
    ]
    role = WorkflowRole(
        stack,
        "OrderWorkflow",
        trusted_role_arns=trusted,
        functions=lambda_functions(json.loads(ORDER.read_text())),
    )
    cdk.CfnOutput(stack, "OrderWorkflowRoleArn", value=role.role.role_arn)
    return app


if __name__ == "__main__":
    build_app().synth()
