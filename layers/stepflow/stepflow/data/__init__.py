"""The ASL data-flow layer: JSONPath, payload templates and intrinsic functions."""

from stepflow.data.jsonpath import Path, PathNotFoundError, PathSyntaxError, compile_path
from stepflow.data.scope import Scope
from stepflow.data.template import Template, TemplateSyntaxError

__all__ = [
    "Path",
    "PathNotFoundError",
    "PathSyntaxError",
    "Scope",
    "Template",
    "TemplateSyntaxError",
    "compile_path",
]
