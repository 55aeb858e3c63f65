"""State machine aliases: CreateStateMachineAlias and the other alias operations.

An alias is a registry document ``A#<alias>`` of its state machine, routing
executions to one or two of its versions by weight (resolved by
:meth:`stepflow.api.machines.Machines.resolve`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepflow.api.arns import Scope, check_alias_name
from stepflow.api.errors import ApiError, invalid_arn, validation
from stepflow.api.machines import Machines, version_key
from stepflow.api.paging import page_size, read_token, write_token
from stepflow.runtime.registry import HEAD, RegistryConflictError, StateMachineRegistry


class Aliases:
    """The alias operations, over the registry of :class:`~stepflow.api.machines.Machines`."""

    def __init__(self, machines: Machines) -> None:
        self.machines = machines

    @property
    def registry(self) -> StateMachineRegistry:
        """The registry the aliases are stored in (the machines')."""
        return self.machines.registry

    @property
    def scope(self) -> Scope:
        """The region and account of the ARNs (the machines')."""
        return self.machines.scope

    @property
    def clock(self) -> Callable[[], float]:
        """The clock of creation and update dates (the machines')."""
        return self.machines.clock

    def create_state_machine_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        """CreateStateMachineAlias (idempotent for an identical alias)."""
        alias = check_alias_name(p["name"])
        routing = self._routing(p["routingConfiguration"])
        name = self.scope.parse_machine(routing[0]["stateMachineVersionArn"])[0]
        now = self.clock()
        doc = {
            "rev": 1,
            "name": alias,
            "routingConfiguration": routing,
            "creationDate": now,
            "updateDate": now,
        }
        if "description" in p:
            doc["description"] = p["description"]
        arn = self.scope.machine_arn(name, alias)
        try:
            self.registry.put(name, f"A#{alias}", doc, expected_rev=None)
        except RegistryConflictError:
            old = self.registry.get(name, f"A#{alias}") or {}
            if old.get("routingConfiguration") != routing or old.get("description") != doc.get(
                "description"
            ):
                raise ApiError("ConflictException", f"Alias {arn} exists already") from None
            return {"stateMachineAliasArn": arn, "creationDate": old["creationDate"]}
        return {"stateMachineAliasArn": arn, "creationDate": now}

    def describe_state_machine_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeStateMachineAlias."""
        name, alias = self._alias_arn(p["stateMachineAliasArn"])
        doc = self.machines.alias(name, alias)
        keys = ("name", "description", "routingConfiguration", "creationDate", "updateDate")
        return {
            "stateMachineAliasArn": p["stateMachineAliasArn"],
            **{k: doc[k] for k in keys if k in doc},
        }

    def update_state_machine_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        """UpdateStateMachineAlias: description and/or routing."""
        name, alias = self._alias_arn(p["stateMachineAliasArn"])
        if "description" not in p and "routingConfiguration" not in p:
            raise validation("Either description or routingConfiguration must be given")
        routing = (
            self._routing(p["routingConfiguration"], name) if "routingConfiguration" in p else None
        )
        for _ in range(10):
            doc = self.machines.alias(name, alias)
            new = {**doc, "rev": doc["rev"] + 1, "updateDate": self.clock()}
            if routing is not None:
                new["routingConfiguration"] = routing
            if "description" in p:
                new["description"] = p["description"]
            try:
                self.registry.put(name, f"A#{alias}", new, expected_rev=doc["rev"])
            except RegistryConflictError:
                continue
            return {"updateDate": new["updateDate"]}
        raise ApiError("ConflictException", "the alias is being updated concurrently")

    def delete_state_machine_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        """DeleteStateMachineAlias."""
        name, alias = self._alias_arn(p["stateMachineAliasArn"])
        self.machines.alias(name, alias)
        self.registry.delete(name, f"A#{alias}")
        return {}

    def list_state_machine_aliases(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListStateMachineAliases, by name, paged."""
        name = self.machines.unqualified(p["stateMachineArn"])
        if self.registry.get(name, HEAD) is None:
            raise ApiError("ResourceNotFound", f"State Machine Does Not Exist: {name}")
        docs, after = self.registry.query(
            name,
            "A#",
            after=read_token(p.get("nextToken"), "a"),
            limit=page_size(p.get("maxResults")),
        )
        aliases = [
            {
                "stateMachineAliasArn": self.scope.machine_arn(name, doc["name"]),
                "creationDate": doc["creationDate"],
            }
            for _, doc in docs
        ]
        return {"stateMachineAliases": aliases, **write_token("a", after)}

    def _alias_arn(self, arn: str) -> tuple[str, str]:
        name, qualifier = self.scope.parse_machine(arn, "state machine alias")
        if qualifier is None or qualifier.isdigit():
            raise invalid_arn(arn, "state machine alias")
        return name, qualifier

    def _routing(self, routing: list[dict[str, Any]], name: str | None = None) -> list[Any]:
        """Checked routing: 1 or 2 existing versions of one state machine, weights summing 100."""
        if not 1 <= len(routing) <= 2:
            raise validation("routingConfiguration must have one or two entries")
        names = set()
        for route in routing:
            machine, qualifier = self.scope.parse_machine(
                route["stateMachineVersionArn"], "state machine version"
            )
            if qualifier is None or not qualifier.isdigit():
                raise invalid_arn(route["stateMachineVersionArn"], "state machine version")
            if not 0 <= route["weight"] <= 100:
                raise validation("routing weights must be between 0 and 100")
            if self.registry.get(machine, version_key(int(qualifier))) is None:
                raise ApiError(
                    "ResourceNotFound", f"Version not found: {route['stateMachineVersionArn']}"
                )
            names.add(machine)
        if len(names) != 1 or (name is not None and names != {name}):
            raise validation("routed versions must belong to the alias's state machine")
        if len({r["stateMachineVersionArn"] for r in routing}) != len(routing):
            raise validation("routed versions must differ")
        if sum(r["weight"] for r in routing) != 100:
            raise validation("routing weights must sum to 100")
        return [
            {"stateMachineVersionArn": r["stateMachineVersionArn"], "weight": r["weight"]}
            for r in routing
        ]
