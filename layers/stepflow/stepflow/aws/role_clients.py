"""The one client factory of task integrations: calls run with the task's role.

Every integration (Lambda invoke, the ``.waitForTaskToken`` sends, and the
service integrations to come) gets its boto3 client from
:meth:`RoleClients.for_task`, never from the process. With ``assume_roles``
on (the deployed stack), the factory calls STS ``AssumeRole`` on the task's
role and caches the credentials until shortly before they expire, so a busy
role costs one AssumeRole an hour per process. The execution's ``roleArn`` (the
role the API checked ``iam:PassRole`` on) is assumed directly; a different
``Credentials.RoleArn`` is assumed *with the execution role's credentials*
(role chaining, as on AWS): the target must trust the execution role, and the
execution role must be allowed ``sts:AssumeRole`` on it, so a workflow author
cannot borrow a role merely because it trusts StepFlow. Sessions are cached
per ``(via, role)``. With ``assume_roles`` off (``stepflow local``, tests: no
real IAM), the ARNs' shapes are still checked and the process's own
credentials are used.

A role that cannot be assumed fails the task (``States.TaskFailed``, the cause
naming the role) rather than the stepper.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from stepflow.errors import StatesErrorName
from stepflow.runtime.clients import ROLE_ARN, TaskCallRefused

SESSION_SECONDS = 3600
"""How long assumed credentials last (AssumeRole's default; the role's maximum is at least this)."""

TASK_CLIENT_CONFIG = Config(
    connect_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 1},
)
"""Task clients make each call once: a retried SNS publish or SQS send would be a second
effect, and retrying is the state's ``Retry``, counted in its history."""

CHAINED_SESSION_SECONDS = 3600
"""The longest session STS grants a role assumed with another role's session (role chaining)."""

REFRESH_MARGIN_SECONDS = 300
"""Cached credentials are replaced this long before they expire (a call may take minutes)."""


@dataclass(frozen=True, slots=True)
class _Session:
    credentials: Mapping[str, str]
    expires_at: float


def session_name(execution: str) -> str:
    """``stepflow-<hash>``: the RoleSessionName naming the execution that assumed the role.

    CloudTrail records it on every call made with the session; a hash keeps it
    within STS's 64 characters and alphabet whatever the ARN.
    """
    digest = hashlib.sha256(execution.encode()).hexdigest()[:24]
    return f"stepflow-{digest}"


def check_role_arn(role_arn: str) -> None:
    """Raise :class:`TaskCallRefused` unless ``role_arn`` has the shape of a role ARN."""
    if not ROLE_ARN.fullmatch(role_arn):
        raise TaskCallRefused(
            StatesErrorName.TASK_FAILED,
            f"The role {role_arn!r} is not a valid IAM role ARN, so the task could not run.",
        )


class RoleClients:
    """Clients per (service, region, role), with credentials from STS AssumeRole (cached).

    ``assume_roles`` off: the ARN is checked and the process's credentials are
    used (``clients`` overrides them by service name, e.g. moto's clients).
    ``configs`` gives a botocore ``Config`` per service (default
    :data:`TASK_CLIENT_CONFIG`: one attempt per call; e.g. Lambda's long read
    timeout); ``endpoint_url`` points every client at moto or LocalStack, and
    ``credentials`` (``aws_access_key_id``/``aws_secret_access_key``), when
    given, replace the process's for the clients made without a role (and STS).
    ``service_endpoints`` overrides ``endpoint_url`` per service (``stepflow local``:
    ``stepfunctions`` is its own API, ``dynamodb`` DynamoDB Local); it is read at
    each client's creation, so the caller may fill it once its servers are up.
    """

    def __init__(
        self,
        *,
        assume_roles: bool,
        region: str,
        sts: Any = None,
        clients: Mapping[str, Any] | None = None,
        configs: Mapping[str, Config] | None = None,
        endpoint_url: str | None = None,
        credentials: Mapping[str, str] | None = None,
        service_endpoints: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        session_seconds: int = SESSION_SECONDS,
    ) -> None:
        self.assume_roles = assume_roles
        self.region = region
        self._sts = sts
        self.clients_given = dict(clients or {})
        """Clients used when ``assume_roles`` is off, by service (moto's, a test's)."""
        self._configs = dict(configs or {})
        self._endpoint = endpoint_url
        self._service_endpoints = service_endpoints if service_endpoints is not None else {}
        self._credentials = dict(credentials or {})
        self._clock = clock
        self._session_seconds = session_seconds
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._clients: dict[tuple[str, str, str, str, float], Any] = {}
        self._lock = threading.Lock()
        self.assume_calls: list[tuple[str, str]] = []
        """``(RoleArn, RoleSessionName)`` of each AssumeRole call so far (each a cache miss)."""

    def for_task(
        self,
        service: str,
        role_arn: str,
        region: str | None = None,
        *,
        execution: str = "",
        via: str = "",
    ) -> Any:
        """The client of ``service`` in ``region`` acting as ``role_arn``.

        ``via`` is the execution's role. When ``role_arn`` differs from it, ``via``
        is assumed first and ``role_arn`` with its credentials (role chaining).
        With ``assume_roles`` on, an empty ``via`` (a task message older than
        chaining) is refused: the role it would be assumed through is unknown.
        Raises :class:`TaskCallRefused` for a malformed ARN, a missing execution
        role or a refused AssumeRole at either step.
        """
        check_role_arn(role_arn)
        if via:
            check_role_arn(via)
        region = region or self.region
        if not self.assume_roles:
            return self._process_client(service, region)
        if not via:
            raise TaskCallRefused(
                StatesErrorName.TASK_FAILED,
                f"The task names no execution role to assume the role {role_arn} through "
                "(its message predates role chaining), so StepFlow did not assume it; "
                "a retry of the task runs it (see docs/security-roles.md).",
            )
        chained = "" if role_arn == via else via
        if chained:
            first = self._session("", via, execution)
            session = self._session(via, role_arn, execution, first.credentials)
        else:
            session = self._session("", role_arn, execution)
        key = (service, region, chained, role_arn, session.expires_at)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                # Clients of replaced credentials go: one per (service, region, via, role) at most.
                stale = [k for k in self._clients if k[:4] == key[:4]]
                for old in stale:
                    del self._clients[old]
                client = boto3.session.Session(
                    aws_access_key_id=session.credentials["AccessKeyId"],
                    aws_secret_access_key=session.credentials["SecretAccessKey"],
                    aws_session_token=session.credentials["SessionToken"],
                    region_name=region,
                ).client(
                    service,
                    endpoint_url=self.endpoint_of(service),
                    config=self._configs.get(service, TASK_CLIENT_CONFIG),
                )
                self._clients[key] = client
        return client

    def endpoint_of(self, service: str) -> str | None:
        """The endpoint ``service``'s clients call (None: AWS's own)."""
        return self._service_endpoints.get(service, self._endpoint)

    def _session(
        self,
        via: str,
        role_arn: str,
        execution: str,
        via_credentials: Mapping[str, str] | None = None,
    ) -> _Session:
        """The cached session of ``role_arn`` assumed by ``via`` ("": StepFlow itself).

        ``via_credentials`` (``via``'s session) sign the AssumeRole of a chained role.
        """
        # One lock for the whole refresh: concurrent tasks of one role assume it once.
        with self._lock:
            cached = self._sessions.get((via, role_arn))
            if cached is not None and cached.expires_at - REFRESH_MARGIN_SECONDS > self._clock():
                return cached
            name = session_name(execution)
            self.assume_calls.append((role_arn, name))
            sts = self._sts_client() if via_credentials is None else self._sts_as(via_credentials)
            # Timed from before the request on this process's clock: the credentials
            # live at least this long, whatever the skew between the clocks.
            requested_at = self._clock()
            # AWS caps a chained session at one hour, whatever the role's maximum.
            seconds = (
                self._session_seconds
                if via_credentials is None
                else min(self._session_seconds, CHAINED_SESSION_SECONDS)
            )
            try:
                response = sts.assume_role(
                    RoleArn=role_arn, RoleSessionName=name, DurationSeconds=seconds
                )
            except Exception as exc:
                refused = _refused(role_arn, exc, via)
                if refused is None:
                    raise
                raise refused from exc
            credentials = response["Credentials"]
            expires_at = requested_at + seconds
            if via_credentials is not None:
                # A chained session cannot outlive the one that assumed it.
                outer = self._sessions.get(("", via))
                if outer is not None:
                    expires_at = min(expires_at, outer.expires_at)
            session = _Session(credentials, expires_at)
            self._sessions[(via, role_arn)] = session
            return session

    def _sts_as(self, credentials: Mapping[str, str]) -> Any:
        """An STS client signing with ``credentials`` (an assumed role's session)."""
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region,
        ).client("sts", endpoint_url=self.endpoint_of("sts"))

    def _sts_client(self) -> Any:
        if self._sts is None:
            self._sts = boto3.client(
                "sts", region_name=self.region, endpoint_url=self._endpoint, **self._credentials
            )
        return self._sts

    def _process_client(self, service: str, region: str) -> Any:
        if service in self.clients_given and region == self.region:
            return self.clients_given[service]
        key = (service, region, "", "", 0.0)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = boto3.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_of(service),
                    config=self._configs.get(service, TASK_CLIENT_CONFIG),
                    **self._credentials,
                )
            return self._clients[key]


def _refused(role_arn: str, exc: Exception, via: str = "") -> TaskCallRefused | None:
    """A refused AssumeRole as a task failure naming the role (None: not an AWS error)."""
    by = f"The execution role {via}" if via else "StepFlow"
    trust = (
        f"The role must trust the execution role {via}, and that role must be allowed "
        "sts:AssumeRole on it"
        if via
        else "The role must trust StepFlow's stepper and runner roles"
    )
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = str(response["Error"].get("Code", "AccessDenied"))
        message = str(response["Error"].get("Message", exc))
        return TaskCallRefused(
            StatesErrorName.TASK_FAILED,
            f"{by} could not assume the role {role_arn} to run the task "
            f"({code}: {message}). {trust} (see docs/security-roles.md).",
        )
    if type(exc).__module__.startswith("botocore"):
        return TaskCallRefused(
            StatesErrorName.TASK_FAILED, f"{by} could not assume the role {role_arn}: {exc}"
        )
    return None
