"""Building the CDK app with its stack and the cdk-nag checks."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stepflow_cdk.stack import StepFlowStack


def build_app(context: dict[str, str] | None = None) -> cdk.App:
    """The app with one ``StepFlow`` stack; cdk-nag runs unless ``stepflow:nag`` is false."""
    app = cdk.App(context=context or {})
    bundle = str(app.node.try_get_context("stepflow:bundle")).lower() != "false"
    StepFlowStack(app, "StepFlow", bundle=bundle)
    if str(app.node.try_get_context("stepflow:nag")).lower() != "false":
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app
