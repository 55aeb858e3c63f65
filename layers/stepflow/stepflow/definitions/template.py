"""A state machine read from a SAM or CloudFormation template.

The resource (``AWS::Serverless::StateMachine`` or
``AWS::StepFunctions::StateMachine``) gives the definition (``Definition``,
``DefinitionUri`` — a path next to the template — or ``DefinitionString``) and
its ``DefinitionSubstitutions``. Substitution values that are intrinsic
functions are worked out where they can be without a stack: ``!Ref`` of a
parameter (its ``Default``) or of a pseudo parameter, ``!Ref``/``!GetAtt .Arn``
of a function in the template (a Lambda name or ARN, which ``--handlers`` can
answer), ``!Sub`` over those. Anything else is kept as :class:`Unresolved`,
reported only if the definition uses it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepflow.definitions.substitute import Unresolved
from stepflow.definitions.yaml_load import CFN_TAGS

MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
ACCOUNT = "123456789012"
"""The account pseudo parameters stand for (the in-memory runs' account)."""

_SUB_VARIABLE = re.compile(r"\$\{([^{}!]*)\}")


class TemplateError(ValueError):
    """A template without a usable state machine resource."""


@dataclass(frozen=True, slots=True)
class TemplateMachine:
    """One state machine resource: its definition (raw, or a file) and substitutions."""

    logical_id: str
    definition: Any
    """The definition as JSON values, ``None`` when it is in :attr:`definition_file`."""
    definition_file: Path | None
    substitutions: dict[str, str | Unresolved]


def machine_from_template(
    template: Mapping[str, Any], folder: Path, logical_id: str | None, file: Path | None
) -> TemplateMachine:
    """The state machine ``logical_id``, or the one whose file is ``file``, or the only one."""
    resources = template.get("Resources")
    if not isinstance(resources, Mapping):
        raise TemplateError("the template has no Resources")
    machines = {
        str(name): body
        for name, body in resources.items()
        if isinstance(body, Mapping) and body.get("Type") in MACHINE_TYPES
    }
    if not machines:
        raise TemplateError(f"the template has no {' or '.join(MACHINE_TYPES)} resource")
    chosen = _choose(machines, folder, logical_id, file)
    properties = machines[chosen].get("Properties")
    properties = properties if isinstance(properties, Mapping) else {}
    definition, definition_file = _definition(chosen, properties, folder)
    raw = properties.get("DefinitionSubstitutions", {})
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{chosen}: DefinitionSubstitutions must be a mapping")
    resolver = _Resolver(template)
    if definition is not None:
        definition = _inline(chosen, definition, resolver)
    substitutions = {str(key): resolver.text(value) for key, value in raw.items()}
    return TemplateMachine(chosen, definition, definition_file, substitutions)


def _choose(
    machines: Mapping[str, Any], folder: Path, logical_id: str | None, file: Path | None
) -> str:
    if logical_id is not None:
        if logical_id not in machines:
            known = ", ".join(sorted(machines))
            raise TemplateError(f"no state machine {logical_id!r} in the template ({known})")
        return logical_id
    if file is not None:
        for name, body in machines.items():
            uri = (body.get("Properties") or {}).get("DefinitionUri")
            if isinstance(uri, str) and _same(folder / uri, file):
                return name
    if len(machines) == 1:
        return next(iter(machines))
    known = ", ".join(sorted(machines))
    raise TemplateError(f"the template has several state machines ({known}): name one")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _definition(name: str, properties: Mapping[str, Any], folder: Path) -> tuple[Any, Path | None]:
    if "Definition" in properties:
        return properties["Definition"], None
    uri = properties.get("DefinitionUri")
    if isinstance(uri, str):
        if uri.startswith("s3://"):
            raise TemplateError(f"{name}: DefinitionUri {uri} is in S3: give the file instead")
        return None, folder / uri
    if uri is not None:
        raise TemplateError(f"{name}: DefinitionUri is not a local path: give the file instead")
    text = properties.get("DefinitionString")
    if isinstance(text, str):
        try:
            return json.loads(text), None
        except ValueError as exc:
            raise TemplateError(f"{name}: DefinitionString is not valid JSON: {exc}") from None
    if text is not None:
        raise TemplateError(
            f"{name}: DefinitionString is built with intrinsic functions: give the definition file"
        )
    raise TemplateError(f"{name} has no Definition, DefinitionUri or DefinitionString")


_INTRINSICS = ("Ref", "Condition", *(f"Fn::{name}" for name in CFN_TAGS))


def _inline(name: str, definition: Any, resolver: _Resolver) -> Any:
    """An inline ``Definition`` with its intrinsic functions resolved (or refused, naming each)."""
    problems: list[str] = []

    def walk(value: Any, at: str) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1 and next(iter(value)) in _INTRINSICS:
                text = resolver.text(value)
                if isinstance(text, Unresolved):
                    problems.append(f"{at or '/'}: {text.why}")
                return text
            return {key: walk(item, f"{at}/{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{at}/{index}") for index, item in enumerate(value)]
        return value

    resolved = walk(definition, "")
    if problems:
        raise TemplateError(
            f"{name}: cannot resolve in the Definition locally: {'; '.join(problems)} "
            "(use a ${Key} placeholder and --sub KEY=VALUE)"
        )
    return resolved


class _Resolver:
    """Intrinsic functions worked out from the template alone."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        parameters = template.get("Parameters")
        resources = template.get("Resources")
        self.parameters = parameters if isinstance(parameters, Mapping) else {}
        self.resources = resources if isinstance(resources, Mapping) else {}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.region = region or "us-east-1"
        self.pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "stepflow-local",
        }

    def text(self, value: Any) -> str | Unresolved:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, Mapping) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and isinstance(argument, str):
                return self.ref(argument)
            if function == "Fn::GetAtt":
                return self.get_att(argument)
            if function == "Fn::Sub":
                return self.sub(argument)
            return Unresolved(f"{_short(function)} is not worked out locally")
        return Unresolved(f"the value {json.dumps(value)[:60]} is not text")

    def ref(self, name: str) -> str | Unresolved:
        if name in self.pseudo:
            return self.pseudo[name]
        parameter = self.parameters.get(name)
        if isinstance(parameter, Mapping):
            if "Default" in parameter:
                default = parameter["Default"]
                return ",".join(map(str, default)) if isinstance(default, list) else str(default)
            return Unresolved(f"!Ref {name}: the parameter has no Default")
        function = self._function(name)
        if function is not None:
            return function
        if name in self.resources:
            return Unresolved(f"!Ref {name}: a resource's physical id exists only once deployed")
        return Unresolved(f"!Ref {name}: no such parameter or resource")

    def get_att(self, argument: Any) -> str | Unresolved:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2):
            return Unresolved("!GetAtt needs RESOURCE.ATTRIBUTE")
        name, attribute = (str(part) for part in argument)
        function = self._function(name)
        if function is not None and attribute == "Arn":
            return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{function}"
        return Unresolved(f"!GetAtt {name}.{attribute} exists only once deployed")

    def sub(self, argument: Any) -> str | Unresolved:
        variables: Mapping[str, Any] = {}
        if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], Mapping):
            argument, variables = argument
        if not isinstance(argument, str):
            return Unresolved("!Sub needs a string")
        problems: list[str] = []

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                value = self.text(variables[name])
            elif "." in name:
                value = self.get_att(name)
            else:
                value = self.ref(name)
            if isinstance(value, Unresolved):
                problems.append(value.why)
                return match.group(0)
            return value

        result = _SUB_VARIABLE.sub(fill, argument)
        return Unresolved("; ".join(problems)) if problems else result.replace("${!", "${")

    def _function(self, name: str) -> str | None:
        """The name of the Lambda function ``name`` in the template, if it is one."""
        body = self.resources.get(name)
        if not isinstance(body, Mapping) or body.get("Type") not in FUNCTION_TYPES:
            return None
        properties = body.get("Properties")
        given = properties.get("FunctionName") if isinstance(properties, Mapping) else None
        return given if isinstance(given, str) else name


def _short(function: str) -> str:
    return "!" + function.removeprefix("Fn::")
