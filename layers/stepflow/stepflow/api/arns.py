"""ARNs and names as Step Functions forms and checks them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from stepflow.api.errors import ApiError, invalid_arn
from stepflow.runtime.arns import parse_arn
from stepflow.runtime.clients import ROLE_ARN

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
MAX_NAME = 80

# Characters AWS rejects in state machine and execution names: white space,
# brackets, wildcards, these specials, control characters and lone surrogates.
_FORBIDDEN = re.compile(r'[\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]')
_ALIAS = re.compile(r"^(?=.*[a-zA-Z_\-.])[a-zA-Z0-9_\-.]+$")


@dataclass(frozen=True, slots=True)
class Scope:
    """The region and account the service's ARNs live in."""

    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Scope:
        """``AWS_REGION`` (or ``AWS_DEFAULT_REGION``) and ``STEPFLOW_ACCOUNT_ID``."""
        env = os.environ if env is None else env
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return cls(region, env.get("STEPFLOW_ACCOUNT_ID") or DEFAULT_ACCOUNT)

    @property
    def prefix(self) -> str:
        """``arn:aws:states:<region>:<account>``."""
        return f"arn:aws:states:{self.region}:{self.account}"

    def machine_arn(self, name: str, qualifier: str | None = None) -> str:
        """A state machine ARN, with a version number or alias name as ``qualifier``."""
        arn = f"{self.prefix}:stateMachine:{name}"
        return arn if qualifier is None else f"{arn}:{qualifier}"

    def execution_arn(self, machine: str, name: str) -> str:
        """An execution ARN."""
        return f"{self.prefix}:execution:{machine}:{name}"

    def parse_machine(self, arn: str, kind: str = "state machine") -> tuple[str, str | None]:
        """``(name, qualifier)`` of a state machine, version or alias ARN of this scope."""
        parsed = parse_arn(arn)
        if (
            parsed is None
            or (parsed.region, parsed.account) != (self.region, self.account)
            or parsed.kind != "stateMachine"
            or len(parsed.names) not in (1, 2)
        ):
            raise invalid_arn(str(arn), kind)
        return parsed.names[0], parsed.names[1] if len(parsed.names) == 2 else None

    def parse_execution(self, arn: str) -> tuple[str, str]:
        """``(state machine name, execution name)`` of an execution ARN of this scope."""
        parsed = parse_arn(arn)
        if (
            parsed is None
            or (parsed.region, parsed.account) != (self.region, self.account)
            or parsed.kind != "execution"
            or len(parsed.names) != 2
        ):
            raise invalid_arn(str(arn), "execution")
        return parsed.names[0], parsed.names[1]


def check_name(name: str, what: str = "name") -> str:
    """``name`` if AWS accepts it as a state machine or execution name, else InvalidName."""
    if not 1 <= len(name) <= MAX_NAME or _FORBIDDEN.search(name):
        raise ApiError("InvalidName", f"Invalid {what}: '{name}'")
    return name


def check_role_arn(role_arn: str) -> str:
    """``role_arn`` if it has the shape of an IAM role ARN, else InvalidArn (as AWS answers)."""
    if not ROLE_ARN.fullmatch(role_arn):
        raise ApiError("InvalidArn", f"Invalid Arn: '{role_arn[:256]}' is not a valid role ARN")
    return role_arn


def check_alias_name(name: str) -> str:
    """``name`` if it is a valid alias name (not only digits: those name versions)."""
    if not 1 <= len(name) <= MAX_NAME or not _ALIAS.match(name):
        raise ApiError("InvalidName", f"Invalid alias name: '{name}'")
    return name
