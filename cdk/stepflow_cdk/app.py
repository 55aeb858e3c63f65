"""Building the CDK app with its stack and the cdk-nag checks."""

from __future__ import annotations

import json

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stepflow_cdk.stack import StepFlowStack


def build_app(context: dict[str, str] | None = None) -> cdk.App:
    """The app with one ``StepFlow`` stack; cdk-nag runs unless ``stepflow:nag`` is false.

    ``stepflow:accessPolicy`` (a list of rules, or its JSON text) is the stack's
    access policy.
    """
    app = cdk.App(context=context or {})
    bundle = str(app.node.try_get_context("stepflow:bundle")).lower() != "false"
    policy = app.node.try_get_context("stepflow:accessPolicy")
    if isinstance(policy, str):  # -c stepflow:accessPolicy='[...]' arrives as text
        policy = json.loads(policy)
    StepFlowStack(app, "StepFlow", bundle=bundle, access_policy=policy)
    if str(app.node.try_get_context("stepflow:nag")).lower() != "false":
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app
