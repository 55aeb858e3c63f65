"""Runs one AWS-recorded Task case against moto in process, as the LocalStack test ran it on AWS.

Per case: a fresh ``moto.mock_aws()``; the case's :class:`~tests.conformance.task_cases.Spec`
creates its resources there and names them; the placeholders of the recorded input
(``<sqs_queue_url>``, ``arn:<partition>:sns:<region>:111111111111:<resource:1>``, ...)
become those names; the Lambda functions are Python stand-ins bound by name
(``handlers=``); everything else runs through the real integrations
(:class:`~stepflow.integrations.IntegrationInvoker` over :func:`default_registry`,
its clients on moto); a ``.waitForTaskToken`` task is answered by the spec's worker,
which reads the queue as the test's worker does and calls SendTaskSuccess /
SendTaskFailure through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from stepflow.asl import DefinitionError
from stepflow.engine.resources import describe
from stepflow.integrations import IntegrationInvoker, Registry, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.testing import WorkflowEnvironment
from stepflow.testing.handlers import Handler, find_handler, task_invoker

from tests.conformance.runner import invalid, report_of
from tests.conformance.task_standins import ApiStandIn, StandIn, answer_task_tokens

START = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's account: the recorded ``111111111111`` becomes it."""

MAX_WORKER_ROUNDS = 10
"""How often a worker may answer tasks before the case is given up as stuck."""

MAX_POLLS = 120
"""Seconds a polling worker (``Spec.polls``) polls before the run goes on without it."""

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_OVERRIDES = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    *(f"AWS_ENDPOINT_URL_{s}" for s in ("DYNAMODB", "S3", "SQS", "SNS", "LAMBDA", "SFN", "EVENTS")),
)

BOTO_NAMES = {"sfn": "stepfunctions", "states": "stepfunctions"}
"""Service names of Task resources whose boto3 client is named otherwise."""


class MotoClients(FixedClients):
    """Task clients on moto: one boto3 client per service, made on first use, any role.

    The ``stepfunctions`` client answers task-token calls through the environment
    (:func:`~tests.conformance.task_standins.answer_task_tokens`).
    """

    def __init__(self, case: CaseContext) -> None:
        super().__init__()
        self.case = case

    def for_task(
        self,
        service: str,
        role_arn: str,
        region: str | None = None,
        *,
        execution: str = "",
        via: str = "",
    ) -> Any:
        """The moto client of ``service`` (the roles are not checked: moto has no IAM)."""
        return self.case.client(BOTO_NAMES.get(service, service), region)


@dataclass
class CaseContext:
    """One case's moto resources, its environment and its API stand-in."""

    api: ApiStandIn | None = None
    env: WorkflowEnvironment | None = None
    values: dict[str, str] = field(default_factory=dict)
    """Resources the set-up made that a worker reads (queue URLs, ...)."""
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, region: str | None = None) -> Any:
        """The boto3 client of ``service`` on moto (cached)."""
        import boto3

        key = (service, region or REGION)
        if key not in self._clients:
            made = boto3.client(service, region_name=key[1])
            if service == "stepfunctions":
                answer_task_tokens(made, self.activities)
            self._clients[key] = made
        return self._clients[key]

    def activities(self) -> Any:
        """The environment's activity service (the Step Functions task-token API)."""
        assert self.env is not None
        return self.env.activities

    def environment(self) -> WorkflowEnvironment:
        """The case's environment (made once the resources are)."""
        assert self.env is not None
        return self.env

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the environment's clock during a task's call.

        The environment goes on meanwhile (its timers fire: a task's timeout
        runs out while a slow Lambda still works), as the service does while
        a function runs.
        """
        assert self.env is not None
        self.env.advance(seconds)


Worker = Callable[["CaseContext"], bool]
"""Answers the open ``.waitForTaskToken`` tasks as the test's worker; False: nothing to do."""


def combined_invoker(handlers: Mapping[str, Handler], integrations: TaskInvoker) -> TaskInvoker:
    """Bound handlers first (Lambda stand-ins by function name), else the integrations.

    The one place that decides how the two combine: when the environment
    combines them itself (an ``aws=`` option), pass ``handlers`` and the
    clients to it instead.
    """
    by_handler = task_invoker(handlers)

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        if find_handler(handlers, str(body.get("resource", "")), body.get("input")) is not None:
            return by_handler(body)
        return integrations(body)

    return invoke


@contextmanager
def moto_case() -> Iterator[CaseContext]:
    """A fresh moto (in process, fake credentials, no endpoint overrides) for one case."""
    from moto import mock_aws

    saved = {name: os.environ.pop(name) for name in _OVERRIDES if name in os.environ}
    try:
        with mock.patch.dict(os.environ, FAKE_ENV), mock_aws():
            yield CaseContext()
    finally:
        os.environ.update(saved)


def substitute(value: Any, exact: Mapping[str, str], parts: Mapping[str, str]) -> Any:
    """``value`` with each string equal to a key of ``exact`` replaced whole, then every
    occurrence of a key of ``parts`` (longest first) replaced inside strings."""
    if isinstance(value, dict):
        return {k: substitute(v, exact, parts) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, exact, parts) for v in value]
    if not isinstance(value, str):
        return value
    if value in exact:
        return exact[value]
    for key in sorted(parts, key=len, reverse=True):
        value = value.replace(key, parts[key])
    return value


GENERIC = {"arn:<partition>:": "arn:aws:", "<region>": REGION, "111111111111": ACCOUNT}
"""The snapshot's partition, region and account placeholders."""


def unregistered(resources: tuple[str, ...]) -> list[str]:
    """The resources of ``resources`` that no registered integration runs yet, with why."""
    registry = default_registry()
    found = []
    for resource in resources:
        problem = registry.problem(resource)
        if problem is not None:
            found.append(f"{resource} ({describe(resource).service}: {problem})")
    return found


def report(env: WorkflowEnvironment, arn: str) -> dict[str, Any]:
    """The execution in the oracle's runner shape."""
    return report_of(env.result(arn))


Setup = Callable[[CaseContext], dict[str, str]]
"""Creates a case's resources in moto; returns placeholder -> real value."""

Check = Callable[[CaseContext, dict[str, Any]], "str | None"]
"""What is wrong with a case's runner-shaped result beyond the oracle's view (None: nothing)."""


@dataclass(frozen=True)
class Spec:
    """How one case's test ran it.

    ``setup`` creates the resources (and names them for the input's placeholders);
    ``functions`` maps a function-name placeholder of the input to its stand-in;
    ``worker`` answers callback tasks; ``calls`` are the resources that reach the
    integrations (None: the case's ``needs`` except ``lambda:invoke`` when its
    functions are bound here); ``exact`` replaces input strings equal to a key
    (the snapshot's literal names, e.g. ``sqs_queue_url``); ``machines`` maps a
    state-machine-name placeholder of the input to the definition registered under
    it (the targets of ``states:startExecution``); ``names`` maps other placeholders
    to fixed text; ``check`` finds what the oracle cannot see in a recording with
    placeholders (the output, what was written), once the run ended; ``polls``: the
    worker polls every second from the start (the test's worker does) rather than
    answering when the run stalls.
    """

    setup: Setup = lambda _case: {}
    functions: Mapping[str, Callable[[CaseContext], StandIn]] = field(default_factory=dict)
    worker: Worker | None = None
    calls: tuple[str, ...] | None = None
    exact: tuple[str, ...] = ()
    machines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    check: Check | None = None
    polls: bool = False


def _poll(spec: Spec, context: CaseContext, env: WorkflowEnvironment, arn: str) -> None:
    """The worker polls once a (virtual) second while the execution runs, as the test's
    worker does, instead of answering only once the run stalls: a ``.sync`` child that
    waits keeps the clock moving, and the answer must come while it waits."""
    assert spec.worker is not None
    for _ in range(MAX_POLLS):
        env.run_until_idle()
        if env.describe(arn)["status"] != "RUNNING":
            return
        spec.worker(context)
        env.advance(1)


def machine_name(placeholder: str) -> str:
    """The name a placeholder's target state machine (or function) is registered under."""
    return "conform-" + placeholder.strip("<>").replace("_", "-").replace(":", "-")


def run_spec(
    spec: Spec,
    case: Mapping[str, Any],
    *,
    api: ApiStandIn | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Run ``case`` as ``spec`` says its test did, on a fresh moto; the runner-shaped outcome.

    ``api`` serves the API Gateway cases (one server for many cases); ``registry``
    (default: :func:`default_registry`) holds the integrations the tasks reach.
    """
    with moto_case() as context:
        context.api = api
        parts = dict(GENERIC)
        parts.update(spec.setup(context))
        handlers: dict[str, StandIn] = {}
        for placeholder, make in spec.functions.items():
            name = machine_name(placeholder)
            parts[placeholder] = name
            handlers[name] = make(context)
        parts.update(spec.names)
        for placeholder in spec.machines:
            parts[placeholder] = machine_name(placeholder)
        exact = {k: parts.pop(k) for k in spec.exact if k in parts}
        value = substitute(case["input"], exact, parts)
        registry = registry or default_registry()
        clients = MotoClients(context)
        invoker = combined_invoker(handlers, IntegrationInvoker(registry, clients))
        nested: dict[str, Any] = {"nested": True}  # states:startExecution: the env's own API
        env = WorkflowEnvironment(
            handlers=handlers,
            invoker=invoker,
            aws=clients,  # a distributed Map's ItemReader/ResultWriter reach moto's S3
            start_time=START,
            account=ACCOUNT,
            check_parameters=registry.parameters_problem,
            **nested,
        )
        context.env = env
        for placeholder, definition in spec.machines.items():
            env.register(definition, parts[placeholder])
        try:
            arn = env.start(case["definition"], value, name="conform", state_machine="conform")
        except DefinitionError as exc:
            return invalid(exc)
        if spec.polls:
            _poll(spec, context, env, arn)
        for _ in range(MAX_WORKER_ROUNDS):
            env.run(arn)
            if env.describe(arn)["status"] != "RUNNING" or spec.worker is None:
                break
            if not spec.worker(context):
                break
        result = report(env, arn)
        problem = spec.check(context, result) if spec.check is not None else None
        if problem is not None:
            result["problem"] = problem
        return result


def score(oracle: Any, case: Mapping[str, Any], result: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``result`` matches AWS, by the oracle's own ``compare`` and ``history_matches``.

    A case passes when both agree and its spec's ``check`` found nothing (``problem``);
    the reason names what differs.
    """
    reported = {"ok": True, **result, "history_types": [e["type"] for e in result["history"]]}
    ok, why = oracle.compare(case, reported)
    if not ok:
        got = f"got {result['status']} {result['error']!s}: {str(result['cause'])[:200]}"
        return False, f"{why} ({got})"
    if not oracle.history_matches(case, reported):
        return False, f"history {reported['history_types']} != AWS {case['history_types']}"
    if result.get("problem"):
        return False, f"the oracle agrees, but {result['problem']}"
    return True, why
