"""``StepFlowWorker``: an activity's handler on a Fargate service, built with no Docker at synth.

The service runs ``python -m stepflow worker --activity NAME module:function
--api <the stack's ApiUrl>``: the worker signs its calls for ``execute-api``
with the task role. ``code`` is a directory (its contents go on the worker's
``sys.path``, as a Lambda function's code does), zipped with stepflow and the
wheels of its ``requirements.txt`` into an S3 asset; the service itself is
:class:`stepflow_cdk.fargate.WorkerService`, shared with the cells worker.

IAM: the task role may invoke the API's one method (``POST /``) and read its
bundle, plus the ``grants`` given. Narrower is not possible: every Step Functions
operation is ``POST /`` (the operation is the ``X-Amz-Target`` header, which IAM
cannot see), and the stack's access policy governs state machines, not
activities. See docs/deploy.md.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct
from stepflow.api.arns import MAX_NAME
from stepflow.runtime.arns import parse_arn

from stepflow_cdk.cells_source import (
    MAX_MODULE_BYTES,
    CellsBundling,
    dependency_modules,
    fingerprint,
    source_files,
)
from stepflow_cdk.fargate import (
    HEALTH_PORT,
    MAX_STOP_SECONDS,
    Grant,
    WorkerService,
    add_grants,
    check_size,
    invoke_statement,
)
from stepflow_cdk.stack import StepFlowStack

__all__ = ["HandlerCode", "StepFlowWorker", "WorkerCodeError", "handler_code"]

STOP_MARGIN_SECONDS = 30
"""Between the end of ``--grace`` and SIGKILL: time to release the tasks still in hand."""
MAX_GRACE_SECONDS = MAX_STOP_SECONDS - STOP_MARGIN_SECONDS
MAX_CONCURRENCY = 1000
_HANDLER = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)", re.ASCII)
_FORBIDDEN = re.compile(r'[\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]')
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_?KEY", re.I)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
RESERVED_ENVIRONMENT = frozenset(
    {"PYTHONPATH", "TMPDIR", "AWS_DEFAULT_REGION", "STEPFLOW_ENDPOINT", "AWS_ENDPOINT_URL"}
)
"""Variables the service sets or must not set (``STEPFLOW_ENDPOINT`` would clash with ``--api``)."""


class WorkerCodeError(ValueError):
    """The worker's props cannot be deployed (the message says why)."""


@dataclass(frozen=True, slots=True)
class HandlerCode:
    """A checked handler directory: ``path``, the ``module`` and ``function`` to run."""

    path: Path
    module: str
    function: str
    requirements: Path | None

    @property
    def spec(self) -> str:
        """``module:function``, as ``stepflow worker`` takes it."""
        return f"{self.module}:{self.function}"

    def fingerprint(self, *extra: str) -> str:
        """A hash of the directory's files, its requirements and ``extra`` (the asset hash)."""
        return fingerprint(self.path, [*source_files(self.path), self.requirements], extra)

    def copy_into(self, target: Path) -> None:
        """Copy the directory's contents into ``target`` (the worker's ``sys.path``)."""
        shutil.copytree(self.path, target, dirs_exist_ok=True, ignore=_IGNORED)

    def verify(self) -> None:
        """Import the module here and check the function's signature (a worker's handler)."""
        from stepflow.worker.signature import HandlerSignatureError, as_handler

        tops = _top_level_names(self.path)
        sys.path.insert(0, str(self.path))
        _forget(tops)
        try:
            module = importlib.import_module(self.module)
            if not hasattr(module, self.function):
                raise WorkerCodeError(f"module {self.module!r} has no {self.function!r}")
            as_handler(getattr(module, self.function), repr(self.spec))
        except HandlerSignatureError as exc:
            raise WorkerCodeError(str(exc)) from None
        except WorkerCodeError:
            raise
        except Exception as exc:  # the user's code: whatever it raises is the reason
            raise WorkerCodeError(
                f"handler {self.spec} does not load from {self.path}: {type(exc).__name__}: "
                f"{exc} (verify=False skips this check when its requirements are not "
                "installed where cdk synth runs)"
            ) from exc
        finally:
            sys.path.remove(str(self.path))
            _forget(tops)


def handler_code(
    code: str | Path, handler: str, *, requirements: str | Path | None = None
) -> HandlerCode:
    """The handler ``module:function`` in directory ``code``, checked (no import).

    ``requirements``: a pip requirements file (default: ``code/requirements.txt`` if
    there is one).
    """
    if not isinstance(handler, str) or not (found := _HANDLER.fullmatch(handler)):
        raise WorkerCodeError(
            f"handler {handler!r} is not module:function (a dotted module name, ':', "
            "a function name)"
        )
    module, function = found.group(1), found.group(2)
    path = Path(code).resolve()
    if not path.is_dir():
        why = "is not a directory" if path.exists() else "does not exist"
        raise WorkerCodeError(f"worker code {code} {why} (give the handlers' directory)")
    parts = module.split(".")
    where = path.joinpath(*parts)
    if not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
        raise WorkerCodeError(
            f"module {module!r} is not in {code} (no {'/'.join(parts)}.py nor "
            f"{'/'.join(parts)}/__init__.py)"
        )
    size = sum(f.stat().st_size for f in source_files(path))
    if size > MAX_MODULE_BYTES:
        raise WorkerCodeError(
            f"worker code {code} holds {size // 2**20} MB of files; at most "
            f"{MAX_MODULE_BYTES // 2**20} MB: keep data out of it"
        )
    shadowing = sorted(
        top
        for top in _top_level_names(path)
        if top == "stepflow" or top in sys.stdlib_module_names or top in dependency_modules()
    )
    if shadowing:
        raise WorkerCodeError(
            f"worker code {code}: {', '.join(shadowing)} would shadow the standard library, "
            "stepflow or its dependencies (they share the worker's sys.path): rename them"
        )
    chosen: Path | None = None
    if requirements is not None:
        chosen = Path(requirements).resolve()
        if not chosen.is_file():
            raise WorkerCodeError(f"requirements file {requirements} does not exist")
    elif (path / "requirements.txt").is_file():
        chosen = path / "requirements.txt"
    return HandlerCode(path, module, function, chosen)


def check_activity(activity: str) -> str:
    """``activity`` if it is an activity name (as Step Functions names) or an activity ARN."""
    if not isinstance(activity, str):
        raise WorkerCodeError(f"activity must be a name or an ARN, not {activity!r}")
    if activity.startswith("arn:"):
        parsed = parse_arn(activity)
        if parsed is None or parsed.kind != "activity" or len(parsed.names) != 1:
            raise WorkerCodeError(f"activity {activity!r} is not an activity ARN")
        return activity
    if not 1 <= len(activity) <= MAX_NAME or _FORBIDDEN.search(activity):
        raise WorkerCodeError(
            f"activity {activity!r} is not a valid activity name (1-{MAX_NAME} characters, "
            "no white space, brackets, wildcards or special characters)"
        )
    return activity


class StepFlowWorker(WorkerService):
    """An activity worker service for ``stepflow``, a :class:`StepFlowStack`.

    ``code``: the handlers' directory; ``handler``: ``module:function`` in it
    (``handler(input)`` or ``handler(input, context)``, docs/workers.md);
    ``activity``: the activity's name (create it before the service starts, or the
    tasks exit and the deployment rolls back) or ARN. ``requirements``: pip
    requirements (default ``code/requirements.txt``). ``verify``: import the
    handler at synth and check its signature (turn off when its requirements are
    not installed where ``cdk synth`` runs). ``grants``: what the handler may do,
    as policy statements or ``grant_*`` callables (nothing else is granted).
    ``concurrency``: tasks in hand per container; ``grace_seconds``: how long a
    stopping container lets them finish (then releases the rest; SIGKILL comes
    30 s later). ``environment``: more variables for the handler (no secrets:
    grant access to a secret and read it at run time).

    Attributes: ``code`` (the checked :class:`HandlerCode`), ``task_role``,
    ``service``, ``task_definition``, ``container``, ``bundle``, ``log_group``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stepflow: StepFlowStack,
        code: str | Path,
        handler: str,
        activity: str,
        requirements: str | Path | None = None,
        verify: bool = True,
        grants: Sequence[Grant] = (),
        environment: Mapping[str, str] | None = None,
        concurrency: int = 8,
        grace_seconds: int = 30,
        desired_count: int = 1,
        cpu: int = 512,
        memory_mib: int = 1024,
        vpc: ec2.IVpc | None = None,
        image: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        source = handler_code(code, handler, requirements=requirements)
        check_activity(activity)
        if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise WorkerCodeError(f"concurrency must be 1-{MAX_CONCURRENCY}, not {concurrency!r}")
        if type(grace_seconds) is not int or not 1 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise WorkerCodeError(
                f"grace_seconds must be 1-{MAX_GRACE_SECONDS} (Fargate kills a task "
                f"{MAX_STOP_SECONDS} s after SIGTERM at most), not {grace_seconds!r}"
            )
        extra = check_environment(environment or {})
        if verify:
            source.verify()
        if type(desired_count) is not int or desired_count < 0:
            raise WorkerCodeError(f"desired_count must be 0 or more, not {desired_count!r}")
        try:
            check_size(cpu, memory_mib)
        except ValueError as exc:
            raise WorkerCodeError(str(exc)) from None
        api = stepflow.api.rest_api
        super().__init__(
            scope,
            construct_id,
            code=str(source.path),
            asset_hash=source.fingerprint("activity-worker", str(stepflow.bundle)),
            bundling=CellsBundling(source, subdir="", with_stepflow=True, install=stepflow.bundle),
            command=worker_command(
                activity, source.spec, api.url, concurrency=concurrency, grace=grace_seconds
            ),
            environment=extra,
            description="StepFlow activity worker: no inbound; outbound HTTPS",
            desired_count=desired_count,
            cpu=cpu,
            memory_mib=memory_mib,
            stop_seconds=grace_seconds + STOP_MARGIN_SECONDS,
            vpc=vpc,
            image=image,
            log_retention=log_retention,
        )
        self.code = source
        self.task_role.add_to_principal_policy(invoke_statement(api))
        add_grants(self.task_role, grants)


def check_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` as a dict, unless it sets a reserved variable or looks like a secret.

    The task definition shows its variables to whoever may describe it, so a secret is
    read at run time instead (its ARN here, ``secretsmanager:GetSecretValue`` granted).
    """
    given = dict(environment)
    for name, value in given.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise WorkerCodeError(f"environment must map names to strings, not {name!r}: {value!r}")
    clashing = sorted(RESERVED_ENVIRONMENT.intersection(given))
    if clashing:
        raise WorkerCodeError(f"environment may not set {', '.join(clashing)}")
    secret = sorted(n for n in given if _SECRET_NAME.search(n) and not n.upper().endswith("_ARN"))
    if secret:
        raise WorkerCodeError(
            f"environment {', '.join(secret)} looks like a secret: task definitions show their "
            "variables, so pass the secret's ARN and grant read access to it instead"
        )
    return given


def worker_command(
    activity: str, handler: str, api_url: str, *, concurrency: int, grace: int
) -> list[str]:
    """What the worker container execs once its bundle is unpacked."""
    return [
        "python", "-m", "stepflow", "worker",
        "--activity", activity, handler,
        "--api", api_url,
        "--concurrency", str(concurrency),
        "--grace", str(grace),
        "--health-port", str(HEALTH_PORT),
    ]  # fmt: skip


def _top_level_names(path: Path) -> list[str]:
    """The modules and packages directly in ``path`` (what it adds to ``sys.path``)."""
    return sorted(
        child.stem if child.is_file() else child.name
        for child in path.iterdir()
        if not child.name.startswith(".")
        and (
            (child.is_file() and child.suffix == ".py")
            or (child.is_dir() and (child / "__init__.py").is_file())
        )
    )


def _forget(tops: Sequence[str]) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in tops]:
        del sys.modules[name]
