"""Reach over real state machines: the share whose every Task resource StepFlow can run.

The corpus, ``bench/data/real_task_resources.jsonl``, holds facts about
public state machine definitions (aws-samples/step-functions-workflows-collection,
aws-samples/aws-stepfunctions-examples and other public repositories with
SAM/CDK/Terraform/plain ASL definitions): one line per definition,
``{"repo", "path", "resources", "item_reader"}``, where ``resources`` lists
the ``Resource`` of every Task state (nested Parallel branches and Map
processors included, one entry per state) with deployment placeholders
(``${...}`` DefinitionSubstitutions, Terraform/CloudFormation variables)
normalised to a representative ARN, and ``item_reader`` says whether a Map
state reads its items or writes its results through S3 (``ItemReader`` /
``ResultWriter``). No definition code is stored.

A definition is *runnable now* when it has no ItemReader/ResultWriter and
``default_registry().problem(resource) is None`` for every Task resource
(activities count as runnable). It is *runnable with the next issue* when the
only blockers are what the next issue adds: nested executions
(``states:startExecution*``), ItemReader/ResultWriter and the ``.sync`` forms of
athena, glue, batch and ecs (issue 13 runs their request-response forms).

``--assume`` replaces the registry with the integrations planned for issue 13
(:data:`PLANNED`): a projection, printed as such, for use before the
integration branches are merged.

Run: ``.venv/bin/python bench/integration_reach.py [--assume] [--top 15] [--json]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from stepflow.engine.resources import describe

DATA = Path(__file__).resolve().parent / "data" / "real_task_resources.jsonl"
"""The corpus of Task resources of public state machine definitions."""

REGION = "us-east-1"
ACCOUNT = "123456789012"
LAMBDA_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
"""The representative ARN a placeholder that stands for a function becomes."""
ACTIVITY_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:activity:activity"
"""The representative ARN a placeholder that stands for an activity becomes."""

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}|<[^>]*>|\{\{[^}]*\}\}")
_ACTIVITY_NAME = re.compile(r"ac(i)?tivit", re.IGNORECASE)  # one sample spells "Acitivity"
_MARK = "\x00"

NEXT_ISSUE_SERVICES = frozenset({"states"})
"""Optimized services the next issue adds (nested executions)."""
NEXT_ISSUE_SYNC = frozenset({"athena", "glue", "batch", "ecs"})
"""Services whose ``.sync`` forms the next issue adds (issue 13 runs their request-response)."""

# ---------------------------------------------------------------------------
# Normalisation


def normalise(resource: str) -> str:
    """``resource`` with its deployment placeholders replaced by a representative ARN.

    ``${X}``, ``<X>`` and ``{{X}}`` are placeholders (SAM/CloudFormation
    DefinitionSubstitutions and pseudo parameters, Terraform templates,
    hand-edited samples). A resource that is only a placeholder names a Lambda
    function unless its name says activity; a placeholder partition is
    ``aws``; a Lambda ARN whose region, account or name is a placeholder (or
    missing) gets the representative one; an activity ARN with a placeholder
    becomes the representative activity; a service integration ARN whose
    region or account is a placeholder names none (the state machine's own).
    """
    text = resource.strip()
    if not text.startswith("arn:"):
        return ACTIVITY_ARN if _ACTIVITY_NAME.search(text) else LAMBDA_ARN
    # Placeholders may hold colons (${AWS::Region}): mark them before splitting.
    parts = _PLACEHOLDER.sub(_MARK, text).split(":")
    if len(parts) > 1 and _MARK in parts[1]:
        parts[1] = "aws"
    if len(parts) > 2 and parts[2] == "lambda":
        return _lambda_arn(parts)
    if len(parts) > 5 and parts[2] == "states" and parts[5] == "activity":
        return ACTIVITY_ARN if any(_MARK in p for p in parts) else ":".join(parts)
    if len(parts) > 4 and parts[2] == "states":
        parts[3] = "" if _MARK in parts[3] else parts[3]
        parts[4] = "" if _MARK in parts[4] else parts[4]
    return ":".join(parts).replace(_MARK, "x")


def _lambda_arn(parts: list[str]) -> str:
    # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    if len(parts) < 7 or parts[5] != "function":
        return LAMBDA_ARN
    region = parts[3] if parts[3] and _MARK not in parts[3] else REGION
    account = parts[4] if re.fullmatch(r"\d{12}", parts[4]) else ACCOUNT
    name = parts[6] if parts[6] and _MARK not in parts[6] else "fn"
    tail = [p for p in parts[7:] if p and _MARK not in p]
    return ":".join(["arn", "aws", "lambda", region, account, "function", name, *tail])


# ---------------------------------------------------------------------------
# The corpus


@dataclass(frozen=True, slots=True)
class Definition:
    """One state machine definition's facts: where it is, its Task resources."""

    repo: str
    path: str
    resources: tuple[str, ...]
    item_reader: bool = False


def parse_line(line: str) -> Definition:
    """The definition of one JSONL line (resources normalised)."""
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError(f"not an object: {line[:80]!r}")
    resources = raw.get("resources")
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise ValueError(f"resources must be a list of strings: {line[:80]!r}")
    return Definition(
        repo=str(raw["repo"]),
        path=str(raw["path"]),
        resources=tuple(normalise(r) for r in resources),
        item_reader=bool(raw.get("item_reader", False)),
    )


def load(path: Path = DATA) -> list[Definition]:
    """Every definition of the corpus file, distinct by (repo, path)."""
    seen: set[tuple[str, str]] = set()
    definitions: list[Definition] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            definition = parse_line(line)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
        key = (definition.repo, definition.path)
        if key in seen:
            raise ValueError(f"{path}:{number}: duplicate definition {key}")
        seen.add(key)
        definitions.append(definition)
    return definitions


# ---------------------------------------------------------------------------
# What runs

Problem = Callable[[str], "str | None"]
"""Why a resource cannot run (None: it can): the registry's, or the planned set's."""


def registry_problem() -> Problem:
    """The default registry's verdict (the integrations merged in this checkout)."""
    from stepflow.integrations import default_registry

    registry = default_registry()
    return registry.problem


@dataclass(frozen=True, slots=True)
class Planned:
    """An integration planned for issue 13: its actions (None: any) and patterns."""

    actions: frozenset[str] | None
    patterns: frozenset[str]


_RR = frozenset({"request-response"})
_RR_TOKEN = frozenset({"request-response", "wait-for-token"})

PLANNED: Mapping[str, Planned] = {
    "lambda": Planned(frozenset({"function", "invoke"}), _RR_TOKEN),
    "sqs": Planned(frozenset({"sendMessage"}), _RR_TOKEN),
    "sns": Planned(frozenset({"publish"}), _RR_TOKEN),
    "events": Planned(frozenset({"putEvents"}), _RR_TOKEN),
    "dynamodb": Planned(frozenset({"getItem", "putItem", "updateItem", "deleteItem"}), _RR),
    "apigateway": Planned(frozenset({"invoke"}), _RR_TOKEN),
    "http": Planned(frozenset({"invoke"}), _RR),
    "bedrock": Planned(frozenset({"invokeModel"}), _RR),
    "athena": Planned(None, _RR),
    "glue": Planned(frozenset({"startJobRun"}), _RR),
    "batch": Planned(frozenset({"submitJob"}), _RR),
    "ecs": Planned(frozenset({"runTask"}), _RR_TOKEN),
}
"""The integrations issue 13 plans (``--assume``); aws-sdk:* is checked against botocore."""

SFN_SDK_ALIASES: Mapping[str, str] = {
    "sfn": "stepfunctions",
    "eventbridge": "events",
    "cloudwatchlogs": "logs",
    "elasticloadbalancingv2": "elbv2",
    "elasticloadbalancing": "elb",
    "costexplorer": "ce",
    "databasemigration": "dms",
    "cognitoidentityprovider": "cognito-idp",
    "configservice": "config",
    "marketplacemetering": "meteringmarketplace",
}
"""aws-sdk service names (as Step Functions spells them) whose botocore name differs more than
by hyphens."""


@lru_cache(maxsize=1)
def _botocore_services() -> dict[str, str]:
    import botocore.session

    names = botocore.session.get_session().get_available_services()
    return {name.replace("-", ""): name for name in names}


@lru_cache(maxsize=256)
def _botocore_operations(service: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return frozenset(name.lower() for name in model.operation_names)


def sdk_problem(service: str, action: str) -> str | None:
    """Why ``aws-sdk:<service>:<action>`` is unknown to botocore (None: it is known)."""
    name = SFN_SDK_ALIASES.get(service) or _botocore_services().get(service.replace("-", ""))
    if name is None:
        return f"botocore knows no service {service!r}"
    if action.lower() not in _botocore_operations(name):
        return f"botocore's {name} has no operation {action!r}"
    return None


def planned_problem(resource: str) -> str | None:
    """Why ``resource`` is outside the integrations planned for issue 13 (None: inside)."""
    info = describe(resource)
    if info.kind == "activity":
        return None
    if info.service.startswith("aws-sdk:"):
        if info.pattern not in _RR_TOKEN:
            return f"aws-sdk does not support the {info.pattern} pattern"
        return sdk_problem(info.service.removeprefix("aws-sdk:"), info.action)
    planned = PLANNED.get(info.service)
    if planned is None:
        return f"no integration planned for {info.service!r}"
    if planned.actions is not None and info.action not in planned.actions:
        return f"{info.service}:{info.action} is not planned"
    if info.pattern not in planned.patterns:
        return f"{info.service} does not plan the {info.pattern} pattern"
    return None


# ---------------------------------------------------------------------------
# The report


def next_issue(resource: str) -> bool:
    """Whether the next issue adds ``resource``: nested executions, athena/glue/batch/ecs .sync."""
    info = describe(resource)
    if info.service in NEXT_ISSUE_SERVICES:
        return True
    return info.service in NEXT_ISSUE_SYNC and info.pattern in ("sync", "sync2")


def label(resource: str) -> str:
    """The row of the integrations table ``resource`` counts in (pattern suffix dropped)."""
    info = describe(resource)
    if info.kind == "lambda":
        return "plain Lambda ARNs"
    if info.kind == "activity":
        return "activities"
    if info.service.startswith("aws-sdk:"):
        return "aws-sdk:*"
    return f"{info.service}:{info.action}"


def kind_of(resource: str) -> str:
    """The resource without its ARN prefix, as listed among the unsupported ones."""
    info = describe(resource)
    if info.kind == "lambda":
        return "lambda function ARN"
    if info.kind == "activity":
        return "activity"
    suffix = {
        "request-response": "",
        "wait-for-token": ".waitForTaskToken",
        "sync": ".sync",
        "sync2": ".sync:2",
    }[info.pattern]
    return f"{info.service}:{info.action}{suffix}"


@dataclass(slots=True)
class Reach:
    """The reach figures of a corpus under one verdict."""

    mode: str
    definitions: int = 0
    with_tasks: int = 0
    runnable: int = 0
    runnable_with_tasks: int = 0
    runnable_next: int = 0
    item_reader: int = 0
    wait_for_token_states: int = 0
    task_states: int = 0
    table: dict[str, list[int]] = field(default_factory=dict)
    sdk_services: dict[str, list[int]] = field(default_factory=dict)
    unsupported: dict[str, list[int]] = field(default_factory=dict)
    deferred: dict[str, list[int]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def percent(self, count: int, total: int | None = None) -> float:
        """``count`` as a percentage of the definitions (or of ``total``)."""
        whole = self.definitions if total is None else total
        return 100.0 * count / whole if whole else 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON object."""
        return {
            "mode": self.mode,
            "definitions": self.definitions,
            "definitions_with_tasks": self.with_tasks,
            "task_states": self.task_states,
            "wait_for_token_states": self.wait_for_token_states,
            "item_reader_definitions": self.item_reader,
            "runnable": self.runnable,
            "runnable_percent": round(self.percent(self.runnable), 1),
            "runnable_with_tasks": self.runnable_with_tasks,
            "runnable_with_tasks_percent": round(
                self.percent(self.runnable_with_tasks, self.with_tasks), 1
            ),
            "runnable_with_next_issue": self.runnable_next,
            "runnable_with_next_issue_percent": round(self.percent(self.runnable_next), 1),
            "table": {k: {"states": v[0], "definitions": v[1]} for k, v in self.table.items()},
            "aws_sdk_services": {
                k: {"states": v[0], "definitions": v[1]} for k, v in self.sdk_services.items()
            },
            "unsupported": {
                k: {"states": v[0], "definitions": v[1], "why": self.problems.get(k, "")}
                for k, v in self.unsupported.items()
            },
            "left_to_next_issue": {
                k: {"states": v[0], "definitions": v[1]} for k, v in self.deferred.items()
            },
        }


def _count(rows: dict[str, list[int]], states: Counter[str]) -> None:
    for key, n in states.items():
        row = rows.setdefault(key, [0, 0])
        row[0] += n
        row[1] += 1


def measure(definitions: Iterable[Definition], problem: Problem, mode: str) -> Reach:
    """The reach of ``definitions`` when ``problem`` says which resources cannot run."""
    reach = Reach(mode)
    verdicts: dict[str, str | None] = {}
    for definition in definitions:
        reach.definitions += 1
        reach.with_tasks += bool(definition.resources)
        reach.task_states += len(definition.resources)
        reach.item_reader += definition.item_reader
        blocked = False
        blocked_now_only = True
        unsupported: Counter[str] = Counter()
        deferred: Counter[str] = Counter()
        for resource in definition.resources:
            if resource not in verdicts:
                verdicts[resource] = problem(resource)
            why = verdicts[resource]
            reach.wait_for_token_states += describe(resource).pattern == "wait-for-token"
            if why is None:
                continue
            blocked = True
            if next_issue(resource):
                deferred[kind_of(resource)] += 1
                continue
            blocked_now_only = False
            unsupported[kind_of(resource)] += 1
            reach.problems.setdefault(kind_of(resource), why)
        runnable = not blocked and not definition.item_reader
        reach.runnable += runnable
        reach.runnable_with_tasks += runnable and bool(definition.resources)
        reach.runnable_next += blocked_now_only
        _count(reach.table, Counter(label(r) for r in definition.resources))
        _count(
            reach.sdk_services,
            Counter(
                describe(r).service.removeprefix("aws-sdk:")
                for r in definition.resources
                if describe(r).service.startswith("aws-sdk:")
            ),
        )
        _count(reach.unsupported, unsupported)
        _count(reach.deferred, deferred)
    return reach


def render(reach: Reach, top: int) -> str:
    """The human-readable report."""
    lines = [
        f"mode: {reach.mode}",
        f"definitions: {reach.definitions} ({reach.with_tasks} with Task states, "
        f"{reach.task_states} Task states, {reach.wait_for_token_states} .waitForTaskToken "
        f"= {reach.percent(reach.wait_for_token_states, reach.task_states):.1f}%, "
        f"{reach.item_reader} with ItemReader/ResultWriter)",
        "",
        f"every Task resource runnable:     {reach.runnable:4d} / {reach.definitions} "
        f"= {reach.percent(reach.runnable):5.1f}%",
        f"  of those with Task states:      {reach.runnable_with_tasks:4d} / {reach.with_tasks} "
        f"= {reach.percent(reach.runnable_with_tasks, reach.with_tasks):5.1f}%",
        f"runnable with the next issue:     {reach.runnable_next:4d} / {reach.definitions} "
        f"= {reach.percent(reach.runnable_next):5.1f}%  "
        "(+ states:*, ItemReader/ResultWriter, athena/glue/batch/ecs .sync)",
        "",
        "| integration | states / definitions |",
        "|---|---|",
    ]
    for key, (states, defs) in sorted(reach.table.items(), key=lambda kv: (-kv[1][1], kv[0])):
        lines.append(f"| `{key}` | {states} / {defs} |")
    services = sorted(reach.sdk_services.items(), key=lambda kv: (-kv[1][1], kv[0]))
    lines += [
        "",
        f"aws-sdk services ({len(services)}): "
        + ", ".join(f"{name} {s}/{d}" for name, (s, d) in services),
        "",
        f"top unsupported resources (states / definitions), {reach.mode}:",
    ]
    ranked = sorted(reach.unsupported.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    for key, (states, defs) in ranked[:top]:
        lines.append(f"  {states:4d} / {defs:3d}  {key}  ({reach.problems.get(key, '')})")
    if not ranked:
        lines.append("  (none)")
    lines += ["", "blocked, left to the next issue (states / definitions):"]
    later = sorted(reach.deferred.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    for key, (states, defs) in later[:top]:
        lines.append(f"  {states:4d} / {defs:3d}  {key}")
    if reach.item_reader:
        lines.append(f"     - / {reach.item_reader:3d}  ItemReader/ResultWriter (distributed Map)")
    if not later and not reach.item_reader:
        lines.append("  (none)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the reach of the corpus under the registry (or the planned set with --assume)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the corpus JSONL file")
    parser.add_argument(
        "--assume",
        action="store_true",
        help="PROJECTED: treat the integrations planned for issue 13 as supported "
        "instead of asking the registry",
    )
    parser.add_argument("--top", type=int, default=15, help="unsupported resources to list")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    definitions = load(args.data)
    if args.assume:
        reach = measure(definitions, planned_problem, "PROJECTED (--assume: planned set)")
    else:
        reach = measure(definitions, registry_problem(), "default_registry()")
    if args.json:
        print(json.dumps(reach.as_json(), indent=2, sort_keys=True))
    else:
        print(render(reach, args.top))
        print()
        command = "bench/integration_reach.py" + (" --assume" if args.assume else "")
        print(f"reproduce: .venv/bin/python {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
