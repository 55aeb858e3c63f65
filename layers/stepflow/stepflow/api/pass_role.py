"""Whether a principal may pass a role to Step Functions (``iam:PassRole``).

:class:`IamPassRoleChecker` asks IAM (``iam:SimulatePrincipalPolicy`` on the
caller's principal, action ``iam:PassRole``, resource the role, context key
``iam:PassedToService = states.amazonaws.com``), the deployed stack's check.
:class:`StaticPassRoles` is its in-memory twin: a table of which principals
may pass which roles (tests, and ``stepflow local --check-roles`` on moto,
which does not implement SimulatePrincipalPolicy).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from stepflow.api.globs import glob

PASSED_TO_SERVICE = "states.amazonaws.com"
CACHE_SECONDS = 60.0
"""How long an answer of IAM is reused for the same principal and role."""


class PassRoleCheckError(Exception):
    """The check could not be made. ``denied``: it never can be (answered as a denial)."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


class StartChecker(Protocol):
    """Decides whether ``principal`` (a task's role) may ``states:StartExecution`` on a machine."""

    def may_start(self, principal: str, machine_arn: str) -> bool:
        """True if allowed, False if denied; raises :class:`PassRoleCheckError` if unknown."""
        ...


class PassRoleChecker(Protocol):
    """Decides whether ``principal`` may pass ``role_arn`` to states.amazonaws.com."""

    def may_pass(self, principal: str, role_arn: str) -> bool:
        """True if allowed, False if denied; raises :class:`PassRoleCheckError` if unknown."""
        ...


def policy_source(principal: str) -> tuple[str, str | None]:
    """``(kind, ARN)`` of the IAM entity whose policies decide for ``principal``.

    ``kind`` is ``user``, ``role`` (an assumed-role session: the role's name,
    whose ARN with its path IAM must supply: the ARN is None), ``root``, or
    ``other`` (federated users and service principals cannot be simulated).
    """
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return "other", None
    service, account, resource = parts[2], parts[4], parts[5]
    if service == "iam" and resource == "root":
        return "root", principal
    if service == "iam" and resource.startswith(("user/", "role/")):
        return resource.partition("/")[0], principal
    if service == "sts" and resource.startswith("assumed-role/"):
        role_name = resource.split("/")[1]
        return "role", f"{account}/{role_name}"
    return "other", None


class IamPassRoleChecker:
    """Asks IAM through ``iam:SimulatePrincipalPolicy``; answers are cached briefly.

    An assumed-role session is simulated as its role (``iam:GetRole`` supplies
    the role's ARN with its path). The account root may pass any role. Any
    other principal, or any failure of IAM, is a :class:`PassRoleCheckError`:
    a check that could not be made never allows.
    """

    def __init__(
        self,
        client: Any,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, str], tuple[bool, float]] = {}
        self._roles: dict[str, str] = {}

    def may_pass(self, principal: str, role_arn: str) -> bool:
        """Whether IAM allows ``principal`` to pass ``role_arn`` to Step Functions."""
        context = [
            {
                "ContextKeyName": "iam:PassedToService",
                "ContextKeyValues": [PASSED_TO_SERVICE],
                "ContextKeyType": "string",
            }
        ]
        return self._allowed(principal, "iam:PassRole", role_arn, context)

    def may_start(self, principal: str, machine_arn: str) -> bool:
        """Whether IAM allows ``principal`` (a task's role) StartExecution on ``machine_arn``.

        A nested start's check (:class:`stepflow.api.nested.ApiExecutionStarter`): on AWS
        the task's role calls StartExecution, so IAM decides on that role's policies.
        """
        return self._allowed(principal, "states:StartExecution", machine_arn, [])

    def _allowed(
        self, principal: str, action: str, resource: str, context: list[dict[str, Any]]
    ) -> bool:
        now = self._clock()
        key = (principal, action, resource)
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        allowed = self._simulate(principal, action, resource, context)
        with self._lock:
            if len(self._answers) > 10_000:
                self._answers.clear()
            self._answers[key] = (allowed, now + self._ttl)
        return allowed

    def _simulate(
        self, principal: str, action: str, resource: str, context: list[dict[str, Any]]
    ) -> bool:
        kind, source = policy_source(principal)
        if kind == "root":
            return True
        if kind == "other" or source is None:
            raise PassRoleCheckError(
                f"{action} cannot be checked for principal {principal}", denied=True
            )
        if kind == "role" and not source.startswith("arn:"):
            source = self._role_arn(source.partition("/")[2])
        request: dict[str, Any] = {
            "PolicySourceArn": source,
            "ActionNames": [action],
            "ResourceArns": [resource],
        }
        if context:
            request["ContextEntries"] = context
        try:
            answer = self._client.simulate_principal_policy(**request)
        except Exception as exc:  # botocore's errors: IAM down, throttled, not permitted
            raise _failed("SimulatePrincipalPolicy", exc) from exc
        results = answer.get("EvaluationResults") or []
        if not results:
            raise PassRoleCheckError("IAM SimulatePrincipalPolicy returned no result")
        return all(r.get("EvalDecision") == "allowed" for r in results)

    def _role_arn(self, name: str) -> str:
        with self._lock:
            known = self._roles.get(name)
        if known is not None:
            return known
        try:
            arn = str(self._client.get_role(RoleName=name)["Role"]["Arn"])
        except Exception as exc:
            raise _failed(f"GetRole {name}", exc) from exc
        with self._lock:
            self._roles[name] = arn
        return arn


def _failed(call: str, exc: Exception) -> PassRoleCheckError:
    """The error of a failed IAM call.

    A principal IAM does not know (``NoSuchEntity``, e.g. a session of another
    account's role) is denied; anything else is a failure of the check.
    """
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    if code == "NoSuchEntity":
        return PassRoleCheckError(f"IAM {call}: the principal is not known", denied=True)
    return PassRoleCheckError(f"IAM {call} failed: {exc}")


class StaticPassRoles:
    """The in-memory twin: ``{principal ARN pattern: [role ARN patterns]}`` (``*`` globs)."""

    def __init__(self, grants: Mapping[str, list[str] | tuple[str, ...]]) -> None:
        self.grants = {str(k): tuple(v) for k, v in grants.items()}
        self.calls = 0

    def may_pass(self, principal: str, role_arn: str) -> bool:
        """Whether a grant whose principal pattern matches lets it pass ``role_arn``."""
        self.calls += 1
        return any(
            glob(who, principal) and any(glob(role, role_arn) for role in roles)
            for who, roles in self.grants.items()
        )


class MapRunStarts:
    """A distributed Map's check (``runtime.map_run_access``): the role may start its children.

    ``checker``'s answer; a check that never can be made (``denied``) is a denial, any
    other failure raises (the run's start is delivered again, never allowed unchecked).
    """

    def __init__(self, checker: StartChecker) -> None:
        self.checker = checker

    def may_start(self, principal: str, machine_arn: str) -> bool:
        """Whether ``principal`` may ``states:StartExecution`` on ``machine_arn``."""
        try:
            return self.checker.may_start(principal, machine_arn)
        except PassRoleCheckError as exc:
            if exc.denied:
                return False
            raise


def start_checker_from_setting(setting: str, iam_client: Callable[[], Any]) -> StartChecker | None:
    """The nested-start checker ``STEPFLOW_NESTED_START_CHECK`` names.

    ``off`` (or empty): none (``stepflow local``, tests: no real IAM); ``iam``:
    :class:`IamPassRoleChecker` on ``iam_client()`` (the deployed stack's stepper
    and runner). Raises ValueError on anything else.
    """
    text = setting.strip()
    if text in ("", "off"):
        return None
    if text == "iam":
        return IamPassRoleChecker(iam_client())
    raise ValueError("STEPFLOW_NESTED_START_CHECK: off or iam")


def checker_from_setting(setting: str, iam_client: Callable[[], Any]) -> PassRoleChecker | None:
    """The checker ``STEPFLOW_PASS_ROLE_CHECK`` names.

    ``off`` (or empty): none; ``iam``: :class:`IamPassRoleChecker` on the
    client ``iam_client()`` returns; a JSON object: :class:`StaticPassRoles`.
    Raises ValueError on anything else.
    """
    text = setting.strip()
    if text in ("", "off"):
        return None
    if text == "iam":
        return IamPassRoleChecker(iam_client())
    grants = json.loads(text)
    if not isinstance(grants, dict) or not all(
        isinstance(v, list) and all(isinstance(r, str) for r in v) for v in grants.values()
    ):
        raise ValueError("STEPFLOW_PASS_ROLE_CHECK: off, iam, or {principal: [role patterns]}")
    return StaticPassRoles(grants)
