"""State machines and handlers shared by the graph tests."""

from __future__ import annotations

from typing import Any

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:"
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"


class Boom(Exception):
    """A task error the workflows below catch (or not)."""


def task(name: str, **fields: Any) -> dict[str, Any]:
    """A Lambda Task state running function ``name``."""
    return {"Type": "Task", "Resource": LAMBDA + name, **fields}


def fulfil_machine() -> dict[str, Any]:
    """Parallel (a task; a Map of a task) caught on Boom, then a Choice with rules and Default."""
    return {
        "StartAt": "Fulfil",
        "States": {
            "Fulfil": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Charge", "States": {"Charge": task("charge", End=True)}},
                    {
                        "StartAt": "PackAll",
                        "States": {
                            "PackAll": {
                                "Type": "Map",
                                "ItemsPath": "$.items",
                                "ItemProcessor": {
                                    "StartAt": "Pack",
                                    "States": {"Pack": task("pack", End=True)},
                                },
                                "End": True,
                            }
                        },
                    },
                ],
                "Catch": [{"ErrorEquals": ["Boom", "States.Timeout"], "Next": "Recover"}],
                "ResultPath": "$.fulfilment",
                "Next": "Route",
            },
            "Recover": {"Type": "Pass", "Result": {"n": 1, "kind": "plain"}, "Next": "Route"},
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 3, "Next": "Big"},
                    {
                        "And": [
                            {"Variable": "$.kind", "StringEquals": "gift"},
                            {"Not": {"Variable": "$.wrapped", "IsPresent": True}},
                        ],
                        "Next": "Wrap",
                    },
                ],
                "Default": "Done",
            },
            "Big": {"Type": "Fail", "Error": "TooBig"},
            "Wrap": {"Type": "Pass", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }


def pack(item: Any) -> Any:
    """The Pack handler: fails with Boom on the item "bad"."""
    if item == "bad":
        raise Boom("cannot pack")
    return item
