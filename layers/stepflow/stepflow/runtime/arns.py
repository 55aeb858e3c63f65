"""Step Functions ARNs taken apart: the one parser (the API's :class:`Scope` checks on it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StatesArn", "machine_name", "parse_arn"]


@dataclass(frozen=True, slots=True)
class StatesArn:
    """``arn:aws:states:<region>:<account>:<kind>:<names>``, taken apart.

    ``names`` are the non-empty parts after the kind: a state machine's name (and its
    version or alias), an execution's machine and name, an express execution's
    machine, name and id.
    """

    region: str
    account: str
    kind: str
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first name: the state machine's, for machines and executions."""
        return self.names[0]


def parse_arn(arn: object) -> StatesArn | None:
    """``arn`` taken apart (see :class:`StatesArn`); None if it is not a Step Functions ARN."""
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) < 7 or parts[:3] != ["arn", "aws", "states"] or not all(parts[5:]):
        return None
    return StatesArn(parts[3], parts[4], parts[5], tuple(parts[6:]))


def machine_name(arn: str) -> str:
    """The state machine's name in a machine or execution ARN ("" if it names none).

    A child execution's ``#``-suffix is ignored.
    """
    parsed = parse_arn(arn.split("#")[0])
    return "" if parsed is None else parsed.name
