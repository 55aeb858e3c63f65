"""The Task resources AWS Step Functions accepts, as data: what validation rejects as AWS does.

:data:`OPTIMIZED` lists the optimized integrations AWS documents, with the
patterns each action accepts, including those StepFlow cannot run (those get
an ``UNSUPPORTED_INTEGRATION`` warning, see :mod:`.validation`). An
``aws-sdk:<service>:<action>`` resource is accepted when botocore has the
service and the operation (request-response or ``.waitForTaskToken`` only).
Anything else under ``arn:<partition>:states:::`` is refused with AWS's
message.
"""

from __future__ import annotations

from typing import Final

from stepflow.engine.resources import Pattern, describe

RR: Final[frozenset[Pattern]] = frozenset({"request-response"})
RR_TOKEN: Final[frozenset[Pattern]] = frozenset({"request-response", "wait-for-token"})
RR_SYNC: Final[frozenset[Pattern]] = frozenset({"request-response", "sync"})
ALL_THREE: Final[frozenset[Pattern]] = frozenset({"request-response", "sync", "wait-for-token"})

OPTIMIZED: Final[dict[str, dict[str, frozenset[Pattern]]]] = {
    "apigateway": {"invoke": RR_TOKEN},
    "athena": {
        "startQueryExecution": RR_SYNC,
        "stopQueryExecution": RR,
        "getQueryExecution": RR,
        "getQueryResults": RR,
    },
    "batch": {"submitJob": RR_SYNC},
    "bedrock": {
        "invokeModel": RR,
        "createModelCustomizationJob": ALL_THREE,
    },
    "codebuild": {
        "startBuild": RR_SYNC,
        "stopBuild": RR,
        "batchDeleteBuilds": RR,
        "batchGetReports": RR,
        "startBuildBatch": RR_SYNC,
        "stopBuildBatch": RR,
        "retryBuildBatch": RR_SYNC,
        "deleteBuildBatch": RR,
    },
    "databrew": {"startJobRun": RR_SYNC},
    "dynamodb": {"getItem": RR, "putItem": RR, "updateItem": RR, "deleteItem": RR},
    "ecs": {"runTask": ALL_THREE},
    "eks": {
        "createCluster": RR_SYNC,
        "deleteCluster": RR_SYNC,
        "createFargateProfile": RR_SYNC,
        "deleteFargateProfile": RR_SYNC,
        "createNodegroup": RR_SYNC,
        "deleteNodegroup": RR_SYNC,
        "runJob": ALL_THREE,
        "call": RR,
    },
    "elasticmapreduce": {
        "createCluster": RR_SYNC,
        "terminateCluster": RR_SYNC,
        "addStep": RR_SYNC,
        "cancelStep": RR,
        "setClusterTerminationProtection": RR,
        "modifyInstanceFleetByName": RR,
        "modifyInstanceGroupByName": RR,
    },
    "emr-containers": {
        "createVirtualCluster": RR,
        "deleteVirtualCluster": RR_SYNC,
        "startJobRun": RR_SYNC,
    },
    "emr-serverless": {
        "createApplication": RR_SYNC,
        "startApplication": RR_SYNC,
        "stopApplication": RR_SYNC,
        "deleteApplication": RR_SYNC,
        "startJobRun": RR_SYNC,
        "cancelJobRun": RR_SYNC,
    },
    "events": {"putEvents": RR_TOKEN},
    "glue": {"startJobRun": RR_SYNC},
    "http": {"invoke": RR},
    "lambda": {"invoke": RR_TOKEN},
    "mediaconvert": {"createJob": RR_SYNC},
    "sagemaker": {
        "createEndpoint": RR,
        "createEndpointConfig": RR,
        "createHyperParameterTuningJob": RR_SYNC,
        "createLabelingJob": RR_SYNC,
        "createModel": RR,
        "createProcessingJob": RR_SYNC,
        "createTrainingJob": RR_SYNC,
        "createTransformJob": RR_SYNC,
        "updateEndpoint": RR,
    },
    "sns": {"publish": RR_TOKEN},
    "sqs": {"sendMessage": RR_TOKEN},
    "states": {
        "startExecution": frozenset({"request-response", "sync", "sync2", "wait-for-token"}),
    },
}
"""AWS's optimized integrations: service -> action -> the patterns AWS accepts for it."""


def not_recognized(resource: str) -> str:
    """AWS's validation message for a Task resource it does not know."""
    return (
        f"The resource provided {resource} is not recognized. The value is not a valid "
        "resource ARN, or the resource is not available in this region."
    )


def aws_problem(resource: str) -> str | None:
    """AWS's message when it refuses ``resource`` at validation (None: AWS accepts it).

    Only resources of Step Functions' own ARN form (``arn:<partition>:states:...``,
    not an activity) are judged: function ARNs, activities and other resource
    strings are left to the engine's own checks.
    """
    parts = resource.split(":")
    if not resource.startswith("arn:") or len(parts) < 7 or parts[2] != "states":
        return None
    info = describe(resource)
    if info.kind != "service":
        return None
    if info.service.startswith("aws-sdk:"):
        from stepflow.integrations import aws_sdk

        service = info.service.removeprefix("aws-sdk:")
        known = info.pattern in aws_sdk.PATTERNS and aws_sdk.problem(service, info.action) is None
        return None if known else not_recognized(resource)
    if info.service == "stepflow":  # StepFlow's own resources (cells) are the engine's to judge
        return None
    patterns = OPTIMIZED.get(info.service, {}).get(info.action)
    return None if patterns is not None and info.pattern in patterns else not_recognized(resource)
