"""Definition files as people keep them: JSON or YAML, with SAM/CloudFormation substitutions.

:func:`load_definition` is the one reader of definition files: ``stepflow run``,
``stepflow validate``, ``stepflow local --demo`` and the graph use it, and so
can a test or a script before ``create_state_machine``::

    definition = load_definition("order.asl.yaml", {"TableName": "orders"})
    sfn.create_state_machine(name="order", definition=json.dumps(definition), roleArn=role)

See docs/definitions.md.
"""

from stepflow.definitions.files import (
    DefinitionFileError,
    is_yaml,
    load_definition,
    read_document,
)
from stepflow.definitions.substitute import (
    SubstitutionError,
    Unresolved,
    missing_keys,
    parse_substitutions,
    placeholders,
    substitute,
)
from stepflow.definitions.yaml_load import YamlError, load_yaml

__all__ = [
    "DefinitionFileError",
    "SubstitutionError",
    "Unresolved",
    "YamlError",
    "is_yaml",
    "load_definition",
    "load_yaml",
    "missing_keys",
    "parse_substitutions",
    "placeholders",
    "read_document",
    "substitute",
]
