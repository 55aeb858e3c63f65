"""Who may act on what through the API: the caller, the access policy, iam:PassRole.

The caller of a request is a :class:`Caller` (its principal ARN). In the
deployed stack API Gateway authenticates every request with IAM (SigV4) and
puts the principal in the proxy event's ``requestContext.identity``; in
``stepflow local`` the gateway derives it from the access key of the SigV4
``Authorization`` header (:mod:`stepflow.local.gateway`; local has no IAM and
checks no signature). :meth:`StepFunctionsService.handle` binds the caller for
the request (:func:`bound_caller`), and :func:`guard` wraps every operation:

- an optional :class:`AccessPolicy` (rules of principal ARN patterns, actions
  and state machine name patterns) decides every operation that names a state
  machine, version, alias, execution or map run; List* operations show only
  what the caller may describe. Without a policy IAM decides alone;
- CreateStateMachine, UpdateStateMachine and TestState (with a ``roleArn``) ask a
  :class:`~stepflow.api.pass_role.PassRoleChecker` whether the caller may pass
  the role, as Step Functions does.

A denial is AWS's ``AccessDeniedException`` (400), raised before the operation
runs, so a denied call writes nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError
from stepflow.api.globs import glob
from stepflow.api.pass_role import PassRoleChecker, PassRoleCheckError

Operation = Callable[[dict[str, Any]], dict[str, Any]]

STATES = "states:"


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal a request is made by: its ARN, account and access key (if known)."""

    arn: str
    account: str = ""
    access_key: str = ""

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any] | None) -> Caller | None:
        """The caller of an API Gateway ``requestContext.identity`` (None: unauthenticated)."""
        if not identity:
            return None
        arn = identity.get("userArn")
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            return None
        return cls(arn, str(identity.get("accountId") or ""), str(identity.get("accessKey") or ""))


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "stepflow_caller", default=None
)


@contextlib.contextmanager
def bound_caller(caller: Caller | None) -> Iterator[None]:
    """Make ``caller`` the current request's caller within the block."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def current_principal() -> str | None:
    """The current request's principal ARN (None: not known, e.g. an in-process call)."""
    caller = _caller.get()
    return None if caller is None else caller.arn


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Principals matching ``principals`` may do ``actions`` on ``state_machines``.

    Each entry is a pattern (``*`` matches any run of characters): principal
    ARNs, actions as ``states:<Operation>`` (``states:Describe*``, ``states:*``),
    state machine names.
    """

    principals: tuple[str, ...]
    actions: tuple[str, ...]
    state_machines: tuple[str, ...]

    def allows(self, principal: str, action: str, machine: str) -> bool:
        """Whether this rule lets ``principal`` do ``action`` on state machine ``machine``."""
        return (
            any(glob(p, principal) for p in self.principals)
            and any(glob(a, action) for a in self.actions)
            and any(glob(m, machine) for m in self.state_machines)
        )


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Allow rules; anything no rule allows is denied (for operations naming a machine)."""

    rules: tuple[AccessRule, ...]

    @classmethod
    def from_json(cls, text: str) -> AccessPolicy | None:
        """The policy of ``STEPFLOW_ACCESS_POLICY`` (None when empty).

        ``[{"principals": [...], "actions": [...], "stateMachines": [...]}, ...]``
        or ``{"rules": [...]}``. Raises ValueError on anything else.
        """
        if not text.strip():
            return None
        document = json.loads(text)
        if isinstance(document, dict):
            document = document.get("rules")
        if not isinstance(document, list):
            raise ValueError("the access policy must be a list of rules")
        rules = []
        for rule in document:
            if not isinstance(rule, dict):
                raise ValueError(f"an access rule must be an object: {rule!r}")
            fields = []
            for key in ("principals", "actions", "stateMachines"):
                value = rule.get(key)
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"access rule {key!r} must be a list of strings: {rule!r}")
                fields.append(tuple(value))
            unknown = set(rule) - {"principals", "actions", "stateMachines", "sid"}
            if unknown:
                raise ValueError(f"unknown access rule keys: {sorted(unknown)}")
            rules.append(AccessRule(*fields))
        return cls(tuple(rules))

    def allows(self, principal: str | None, action: str, machine: str) -> bool:
        """Whether some rule lets ``principal`` do ``action`` on ``machine`` (unknown: no)."""
        if principal is None:
            return False
        return any(rule.allows(principal, action, machine) for rule in self.rules)


def access_denied(principal: str | None, action: str, resource: str, why: str) -> ApiError:
    """AWS's AccessDeniedException for ``principal`` doing ``action`` on ``resource``."""
    who = principal or "an unauthenticated caller"
    return ApiError(
        "AccessDeniedException",
        f"User: {who} is not authorized to perform: {action} on resource: {resource} {why}",
    )


@dataclass(frozen=True, slots=True)
class AccessControl:
    """The policy (None: IAM decides alone) and the PassRole check (None: not checked)."""

    policy: AccessPolicy | None = None
    pass_role: PassRoleChecker | None = None

    @property
    def active(self) -> bool:
        """Whether anything is checked."""
        return self.policy is not None or self.pass_role is not None


def guard(
    operations: Mapping[str, Operation], scope: Scope, access: AccessControl
) -> dict[str, Operation]:
    """``operations`` with the access policy and the PassRole check in front of each."""
    if not access.active:
        return dict(operations)
    return {name: _guarded(name, op, scope, access) for name, op in operations.items()}


def _guarded(name: str, operation: Operation, scope: Scope, access: AccessControl) -> Operation:
    action = STATES + name

    def call(p: dict[str, Any]) -> dict[str, Any]:
        principal = current_principal()
        policy = access.policy
        if policy is not None:
            for machine, resource in machines_named(name, p, scope):
                if not policy.allows(principal, action, machine):
                    raise access_denied(
                        principal,
                        action,
                        resource,
                        f"because no StepFlow access policy rule allows the {action} action",
                    )
        if access.pass_role is not None and name in PASS_ROLE_OPERATIONS and "roleArn" in p:
            check_pass_role(access.pass_role, principal, str(p["roleArn"]))
        result = operation(p)
        if policy is not None and name == "ListStateMachines":
            visible = [
                m
                for m in result.get("stateMachines", [])
                if policy.allows(principal, STATES + "DescribeStateMachine", m["name"])
            ]
            result = {**result, "stateMachines": visible}
        return result

    return call


PASS_ROLE_OPERATIONS = ("CreateStateMachine", "UpdateStateMachine", "TestState")
"""The operations that pass a ``roleArn`` to Step Functions (as in AWS; TestState runs its
state with the role)."""


def check_pass_role(checker: PassRoleChecker, principal: str | None, role_arn: str) -> None:
    """AccessDeniedException unless ``principal`` may pass ``role_arn`` to states.amazonaws.com.

    A failure of the check itself is answered as a 503 and never allows.
    """
    action = "iam:PassRole"
    if principal is None:
        raise access_denied(None, action, role_arn, "because the caller is not known")
    try:
        allowed = checker.may_pass(principal, role_arn)
    except PassRoleCheckError as exc:
        if exc.denied:
            raise access_denied(principal, action, role_arn, f"because {exc}") from None
        raise ApiError(
            "ServiceUnavailable", f"could not check iam:PassRole on {role_arn}: {exc}", 503
        ) from None
    if not allowed:
        raise access_denied(
            principal, action, role_arn, "because no identity-based policy allows it"
        )


_ARN_KEYS = (
    "stateMachineArn",
    "stateMachineVersionArn",
    "stateMachineAliasArn",
    "executionArn",
    "mapRunArn",
)


def machines_named(name: str, p: Mapping[str, Any], scope: Scope) -> list[tuple[str, str]]:
    """``(state machine name, resource ARN)`` of each resource the request names.

    An execution resolves to its state machine (the name is in its ARN), a map
    run to its parent's; CreateStateMachine names its new machine and
    CreateStateMachineAlias the machine of its versions. A malformed ARN is
    the operation's own InvalidArn, raised here so no check is skipped.
    """
    found: list[tuple[str, str]] = []
    if name == "CreateStateMachine" and isinstance(p.get("name"), str):
        found.append((p["name"], scope.machine_arn(p["name"])))
    if name == "CreateStateMachineAlias":
        for route in p.get("routingConfiguration") or []:
            arn = route.get("stateMachineVersionArn") if isinstance(route, dict) else None
            if isinstance(arn, str):
                found.append((scope.parse_machine(arn, "state machine version")[0], arn))
    resource = p.get("resourceArn")  # the tag operations: a state machine's are checked
    if isinstance(resource, str) and resource.split(":")[5:6] == ["stateMachine"]:
        found.append((scope.parse_machine(resource)[0], resource))
    for key in _ARN_KEYS:
        arn = p.get(key)
        if not isinstance(arn, str):
            continue
        if key == "executionArn":
            found.append((scope.parse_execution(arn)[0], arn))
        elif key == "mapRunArn":
            found.append((_map_run_machine(arn, scope), arn))
        else:
            found.append((scope.parse_machine(arn)[0], arn))
    return found


def _map_run_machine(arn: str, scope: Scope) -> str:
    """The state machine of ``arn:...:mapRun:<machine>/<label>:<id>`` (InvalidArn otherwise)."""
    parts = arn.split(":")
    if len(parts) != 8 or ":".join(parts[:5]) != scope.prefix or parts[5] != "mapRun":
        raise ApiError("InvalidArn", f"Invalid Arn: '{arn}' is not a valid map run ARN")
    return parts[6].partition("/")[0]
