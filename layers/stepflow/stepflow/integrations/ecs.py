"""``arn:aws:states:::ecs:runTask``: run an ECS task (request-response, ``.waitForTaskToken``).

Parameters in Step Functions' PascalCase (``Cluster``, ``TaskDefinition``,
``LaunchType``, ``NetworkConfiguration.AwsvpcConfiguration``,
``Overrides.ContainerOverrides``...) are ECS's camelCase members; the output
is ECS's response in PascalCase (``Tasks``, ``Failures``). With
``.waitForTaskToken`` the workflow passes the token to the container (e.g. an
environment override) and the task waits for SendTaskSuccess. Errors are
``ECS.<Code>`` (``ECS.ClusterNotFoundException``). ``.sync`` is the next issue's.
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import Action, BotoIntegration

ECS = BotoIntegration(
    service="ecs",
    client="ecs",
    prefix="ECS",
    cause_service="AmazonECS",
    actions={
        "runTask": Action("RunTask", frozenset({"request-response", "wait-for-token", "sync"}))
    },
)

INTEGRATIONS: tuple[BotoIntegration, ...] = (ECS,)
