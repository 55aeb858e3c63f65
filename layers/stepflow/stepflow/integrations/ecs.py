"""``arn:aws:states:::ecs:runTask``: run an ECS task (request-response, callback, ``.sync``).

Parameters in Step Functions' PascalCase (``Cluster``, ``TaskDefinition``,
``LaunchType``, ``NetworkConfiguration.AwsvpcConfiguration``,
``Overrides.ContainerOverrides``...) are ECS's camelCase members; the output
is ECS's response in PascalCase (``Tasks``, ``Failures``). With
``.waitForTaskToken`` the workflow passes the token to the container (e.g. an
environment override) and the task waits for SendTaskSuccess. Errors are
``ECS.<Code>`` (``ECS.ClusterNotFoundException``). The ``.sync`` form polls
DescribeTasks (:mod:`.polled`) until the task is STOPPED: its output is the task; a
container that exited non-zero fails the state with ``States.TaskFailed``; stopping
the state stops the task (StopTask).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import Action, BotoIntegration
from stepflow.integrations.polled import ECS_TASK, PolledIntegration

ECS_CALLS = BotoIntegration(
    service="ecs",
    client="ecs",
    prefix="ECS",
    cause_service="AmazonECS",
    actions={
        "runTask": Action("RunTask", frozenset({"request-response", "wait-for-token", "sync"}))
    },
)

ECS = PolledIntegration(ECS_CALLS, {"runTask": ECS_TASK})

INTEGRATIONS: tuple[PolledIntegration, ...] = (ECS,)
