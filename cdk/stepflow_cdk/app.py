"""Building the CDK app with its stack and the cdk-nag checks."""

from __future__ import annotations

import json

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stepflow_cdk.hooks_config import HooksConfig
from stepflow_cdk.stack import StepFlowStack


def build_app(context: dict[str, str] | None = None) -> cdk.App:
    """The app with one ``StepFlow`` stack; cdk-nag runs unless ``stepflow:nag`` is false.

    ``stepflow:accessPolicy`` (a list of rules, or its JSON text) is the stack's
    access policy. ``stepflow:cells`` (a cells module's path) ships that module
    with :class:`~stepflow_cdk.cells.StepFlowCells`, in ``stepflow:cellsMode``
    (``lambda``, the default, or ``worker``) on ``stepflow:cellsQueue`` (worker
    mode; default ``default``); without it the stack is unchanged. ``stepflow:hooks``
    (``metrics``, the default, ``eventbridge``, ``webhooks``, comma-separated, or
    ``none``) and its settings (``stepflow:eventBus``, ``stepflow:webhookUrls``,
    ``stepflow:webhookSecretArn``, ``stepflow:hooksStartingPosition``) configure the
    hooks dispatcher (docs/hooks.md). ``stepflow:live=true`` adds the live WebSocket
    API (docs/live.md). ``stepflow:claimsInEvents=false`` keeps every task group's lease in
    its own item (the first of two deploys of an upgrade, docs/deploy.md).
    ``stepflow:worker`` (a handlers directory), with ``stepflow:workerActivity`` and
    ``stepflow:workerHandler`` (``module:function``), adds an activity worker service
    (:class:`~stepflow_cdk.workers.StepFlowWorker`).
    """
    app = cdk.App(context=context or {})
    bundle = str(app.node.try_get_context("stepflow:bundle")).lower() != "false"
    policy = app.node.try_get_context("stepflow:accessPolicy")
    if isinstance(policy, str):  # -c stepflow:accessPolicy='[...]' arrives as text
        policy = json.loads(policy)
    stack = StepFlowStack(
        app,
        "StepFlow",
        bundle=bundle,
        access_policy=policy,
        hooks=HooksConfig.from_context(app.node),
        live=str(app.node.try_get_context("stepflow:live")).lower() == "true",
        claims_in_events=str(app.node.try_get_context("stepflow:claimsInEvents")).lower()
        != "false",
    )
    module = app.node.try_get_context("stepflow:cells")
    if module:
        from stepflow_cdk.cells import StepFlowCells

        mode = str(app.node.try_get_context("stepflow:cellsMode") or "lambda")
        if mode not in ("lambda", "worker"):
            raise ValueError(f"stepflow:cellsMode must be 'lambda' or 'worker', not {mode!r}")
        StepFlowCells(
            stack,
            "Cells",
            stepflow=stack,
            module=str(module),
            mode="worker" if mode == "worker" else "lambda",
            queue=str(app.node.try_get_context("stepflow:cellsQueue") or "default"),
        )
    code = app.node.try_get_context("stepflow:worker")
    if code:
        from stepflow_cdk.workers import StepFlowWorker

        activity = app.node.try_get_context("stepflow:workerActivity")
        handler = app.node.try_get_context("stepflow:workerHandler")
        if not activity or not handler:
            raise ValueError(
                "stepflow:worker needs stepflow:workerActivity (the activity's name) and "
                "stepflow:workerHandler (module:function)"
            )
        StepFlowWorker(
            stack,
            "Worker",
            stepflow=stack,
            code=str(code),
            activity=str(activity),
            handler=str(handler),
        )
    if str(app.node.try_get_context("stepflow:nag")).lower() != "false":
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app
