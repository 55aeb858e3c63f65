"""Filters as AWS (Jayway JsonPath) applies them, over ``jsonpath-ng``'s parse tree.

``jsonpath-ng`` applies a filter ``[?(...)]`` to the *members* of whatever it
meets: an array's items, and an object's values. Jayway, which Step Functions
uses, tests an object *itself* against the filter (so ``$[?(@.a > 0)]`` on
``{"a": 1}`` selects the whole input) and keeps filtering an array's items. A
recursive descent (``$..[?(...)]``) tests every object it reaches, in document
order, and every item of an array that is not an object, each once.

Imported only when a path has a filter, wildcard or descent (as ``jsonpath-ng``).
"""

from __future__ import annotations

from typing import Any

from jsonpath_ng import DatumInContext, Descendants, Fields, Index, JSONPath
from jsonpath_ng.ext.filter import Filter


def jayway_filters(node: Any) -> Any:
    """``node`` (a parsed path) with each filter replaced by its Jayway twin."""
    if isinstance(node, Descendants) and isinstance(node.right, Filter):
        return ScanFilter(jayway_filters(node.left), node.right.expressions)
    if isinstance(node, Filter):
        return ObjectFilter(node.expressions)
    for side in ("left", "right"):
        child = getattr(node, side, None)
        if isinstance(child, JSONPath):
            setattr(node, side, jayway_filters(child))
    return node


def _accepts(expressions: list[Any], datum: DatumInContext) -> bool:
    return all(expression.find(datum) for expression in expressions)


class ObjectFilter(Filter):
    """A filter that tests an object itself, and an array's items as ``jsonpath-ng`` does."""

    def find(self, datum: Any) -> list[DatumInContext]:
        """The object itself if it passes; the passing items of an array; else nothing."""
        datum = DatumInContext.wrap(datum)
        if isinstance(datum.value, dict):
            return [datum] if _accepts(self.expressions, datum) else []
        found: list[DatumInContext] = super().find(datum)  # type: ignore[no-untyped-call]
        return found


class ScanFilter(JSONPath):
    """``left..[?(...)]``: every object below ``left`` (itself included) that passes, once."""

    def __init__(self, left: Any, expressions: list[Any]) -> None:
        self.left = left
        self.expressions = expressions

    def find(self, datum: Any) -> list[DatumInContext]:
        """The passing objects and non-object array items, in document order."""
        found: list[DatumInContext] = []
        for start in self.left.find(datum):
            # (node, whether it is an array's item, which the filter tests unless an object)
            stack: list[tuple[DatumInContext, bool]] = [(DatumInContext.wrap(start), False)]
            while stack:
                node, item = stack.pop()
                if isinstance(node.value, dict):
                    if _accepts(self.expressions, node):
                        found.append(node)
                    children = [
                        DatumInContext(value, path=Fields(key), context=node)
                        for key, value in node.value.items()
                    ]
                    stack.extend((child, False) for child in reversed(children))
                    continue
                if item and _accepts(self.expressions, node):
                    found.append(node)
                if isinstance(node.value, list):
                    children = [
                        DatumInContext(value, path=Index(index), context=node)
                        for index, value in enumerate(node.value)
                    ]
                    stack.extend((child, True) for child in reversed(children))
        return found

    def __str__(self) -> str:
        return f"{self.left}..{Filter(self.expressions)}"

    def __repr__(self) -> str:
        return f"ScanFilter({self.left!r}, {self.expressions!r})"
