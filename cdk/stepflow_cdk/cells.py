"""``StepFlowCells``: ship a cells module with a StepFlow stack, inline or on a worker service.

``mode="lambda"``: the module becomes a Lambda layer of the functions that run
tasks (runner, stepper, and the API for StartSyncExecution), named by
``STEPFLOW_CELLS``, so ``stepflow:cell:*`` tasks run inline in them. Their
effects call AWS with the execution's role, as every task does (the stepper and
runner hold no integration right of their own): the construct's ``role`` is that
role, under ``/stepflow/``, trusted by the stepper and runner, and given the
``grants`` and nothing else. Start the cells' executions with ``roleArn`` set to
it (its ARN is the ``<id>RoleArn`` output).

``mode="worker"``: the cells run on a Fargate service, ``stepflow worker --cells``
(see :mod:`stepflow_cdk.cells_worker`); the functions route the cells to its
queue (``STEPFLOW_CELL_QUEUES``), and the worker's task role gets the grants.

See docs/cells-deploy.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from aws_cdk import AssetHashType, BundlingOptions, CfnOutput, DockerImage, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from stepflow.cells.queues import COMPENSATE, EVERYTHING, CellQueueError, CellQueues

from stepflow_cdk.cells_source import CellsBundling, CellsModuleError, CellsSource, cells_source
from stepflow_cdk.cells_worker import CellsWorker
from stepflow_cdk.compute import ARCHITECTURE, EXECUTION_ROLE_PATH, RUNTIME
from stepflow_cdk.fargate import Grant, add_grants
from stepflow_cdk.stack import StepFlowStack

CELLS_ENV_VAR = "STEPFLOW_CELLS"
"""The cells modules a process loads (comma-separated; read by stepflow.aws.settings)."""
CELL_QUEUES_ENV_VAR = "STEPFLOW_CELL_QUEUES"
"""Which cells run on which worker queue: ``name[:major]=queue,...`` or ``*=queue``."""

Mode = Literal["lambda", "worker"]

__all__ = [
    "CELLS_ENV_VAR",
    "CELL_QUEUES_ENV_VAR",
    "CellsModuleError",
    "Grant",
    "Mode",
    "StepFlowCells",
]


class StepFlowCells(Construct):
    """A cells module shipped with ``stepflow``, a :class:`StepFlowStack` (scope: inside it).

    ``module``: a ``.py`` file or a package directory (``import_name`` names a
    submodule of a package instead). ``requirements``: its pip requirements
    (default: a package's ``requirements.txt``). ``grants``: what the cells'
    effects may do, as policy statements or ``grant_*`` callables (least
    privilege: nothing else is granted for them). ``verify``: import the module
    at synth and require at least one cell (turn off when its requirements are
    not installed where ``cdk synth`` runs).

    Worker mode: ``queue`` (the activity ``stepflow-cells-<queue>``), ``cells``
    (the routing selectors sent there: ``*``, a name, ``name:major`` or
    ``saga:compensate``; see stepflow.cells.queues),
    ``desired_count``, ``vpc`` (default: a new VPC with public subnets only, no
    NAT), ``image``.

    Attributes: ``source`` (the checked module), ``cell_keys`` (its cells'
    ``name@version``, when verified), ``role`` (the identity the effects run with),
    ``layer`` (lambda mode) or ``worker`` (worker mode).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stepflow: StepFlowStack,
        module: str | Path,
        mode: Mode = "lambda",
        grants: Sequence[Grant] = (),
        import_name: str | None = None,
        requirements: str | Path | None = None,
        verify: bool = True,
        queue: str = "default",
        cells: Sequence[str] = ("*",),
        desired_count: int = 1,
        vpc: ec2.IVpc | None = None,
        image: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if Stack.of(self) is not stepflow:
            raise CellsModuleError(
                "StepFlowCells must be created inside the StepFlow stack it ships cells to "
                "(its functions' layers, environment and roles are changed)"
            )
        if mode not in ("lambda", "worker"):
            raise CellsModuleError(f"mode must be 'lambda' or 'worker', not {mode!r}")
        self.source: CellsSource = cells_source(
            module, import_name=import_name, requirements=requirements
        )
        self.cell_keys: list[str] = self.source.cell_keys() if verify else []
        self.mode = mode
        self.layer: lambda_.LayerVersion | None = None
        self.worker: CellsWorker | None = None
        task_functions = (stepflow.compute.runner, stepflow.compute.stepper, stepflow.compute.api)
        if mode == "lambda":
            self.role: iam.IRole = self._inline(stepflow, task_functions)
        else:
            self.role = self._on_worker(
                stepflow, task_functions, queue, cells, desired_count, vpc, image
            )
        add_grants(self.role, grants)

    def _inline(self, stepflow: StepFlowStack, functions: Sequence[lambda_.Function]) -> iam.IRole:
        """The layer on ``functions``, ``STEPFLOW_CELLS``, and the execution role."""
        shipped = _registered(stepflow, "cells_layers")
        if self.source.top_level in shipped:
            raise CellsModuleError(
                f"a cells module named {self.source.top_level!r} is already shipped inline "
                "in this stack: the layers would overwrite each other's files"
            )
        shipped.append(self.source.top_level)
        self.layer = self._layer(stepflow.bundle)
        modules = _registered(stepflow, "cells_modules")
        modules.append(self.source.import_name)
        for function in functions:
            function.add_layers(self.layer)
            function.add_environment(CELLS_ENV_VAR, ",".join(modules))
        trusted = [f.role for f in (stepflow.compute.stepper, stepflow.compute.runner)]
        role = iam.Role(
            self,
            "ExecutionRole",
            path=EXECUTION_ROLE_PATH,
            assumed_by=iam.CompositePrincipal(
                *(iam.ArnPrincipal(r.role_arn) for r in trusted if r is not None)
            ),
            description=f"Runs the effects of the cells of {self.source.top_level} "
            "(assumed by StepFlow's stepper and runner)",
        )
        CfnOutput(self, "RoleArn", value=role.role_arn)
        return role

    def _on_worker(
        self,
        stepflow: StepFlowStack,
        functions: Sequence[lambda_.Function],
        queue: str,
        cells: Sequence[str],
        desired_count: int,
        vpc: ec2.IVpc | None,
        image: str | None,
    ) -> iam.IRole:
        """The worker service, and ``STEPFLOW_CELL_QUEUES`` on ``functions``."""
        routes = _routes(queue, cells, self.cell_keys)
        queues = _registered(stepflow, "cell_queues")
        try:  # with the other worker constructs' routes: one queue per selector
            CellQueues.parse(",".join([*queues, *routes]))
        except CellQueueError as exc:
            raise CellsModuleError(str(exc)) from None
        self.worker = CellsWorker(
            self,
            "Worker",
            stepflow=stepflow,
            source=self.source,
            queue=queue,
            desired_count=desired_count,
            vpc=vpc,
            image=image,
        )
        queues.extend(routes)
        for function in functions:
            function.add_environment(CELL_QUEUES_ENV_VAR, ",".join(queues))
        return self.worker.task_role

    def _layer(self, bundle: bool) -> lambda_.LayerVersion:
        source = self.source
        return lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(source.path if source.path.is_dir() else source.path.parent),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=source.fingerprint("layer", source.import_name, str(bundle)),
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("unused-local-bundling"),
                    local=CellsBundling(
                        source, subdir="python", with_stepflow=False, install=bundle
                    ),
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"StepFlow cells module {source.import_name}",
        )


def _registered(stack: StepFlowStack, name: str) -> list[str]:
    """A per-stack list the constructs share (each writes the whole list to the functions)."""
    found: list[str] | None = getattr(stack, f"_stepflow_{name}", None)
    if found is None:
        found = []
        setattr(stack, f"_stepflow_{name}", found)
    return found


def _routes(queue: str, cells: Sequence[str], keys: Sequence[str]) -> list[str]:
    """``selector=queue`` for each of ``cells``; a named cell must be one of the module's.

    The format is checked by the steppers' own parser (stepflow.cells.queues).
    """
    if not cells:
        raise CellsModuleError("cells must name at least one cell (or '*')")
    routes = [f"{selector}={queue}" for selector in cells]
    try:  # each pair alone: a ',' or '=' inside one must not read as another route
        for selector in cells:
            CellQueues.parse({selector: queue})
    except CellQueueError as exc:
        raise CellsModuleError(str(exc)) from None
    names = {key.split("@")[0] for key in keys}
    for selector in cells:
        name = selector.partition(":")[0]
        if keys and selector not in (EVERYTHING, COMPENSATE) and name not in names:
            raise CellsModuleError(
                f"cell {name!r} is not in the module (its cells: {', '.join(keys)})"
            )
    return routes
