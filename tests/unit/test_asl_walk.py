"""``iter_states``: the one walk over a raw definition's states that the checks share."""

from __future__ import annotations

from typing import Any

from stepflow.asl.walk import iter_states

PASS = {"Type": "Pass", "End": True}

DEFINITION: dict[str, Any] = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "a/b", "States": {"a/b": PASS}},
                "not a machine",
                {
                    "StartAt": "Each",
                    "States": {
                        "Each": {
                            "Type": "Map",
                            "Iterator": {
                                "StartAt": "Deep",
                                "States": {"Deep": PASS, "junk": 3},
                            },
                        }
                    },
                },
            ],
            "Next": "Items",
        },
        "Items": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                "StartAt": "In",
                "States": {"In": PASS},
            },
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "Branches": [{"StartAt": "X", "States": {"X": PASS}}]},
    },
}


def test_each_state_once_in_document_order_with_nested_machines_after_their_state() -> None:
    visits = list(iter_states(DEFINITION))
    assert [v.location for v in visits] == [
        "/States/Fan",
        "/States/Fan/Branches/0/States/a~1b",
        "/States/Fan/Branches/2/States/Each",
        "/States/Fan/Branches/2/States/Each/Iterator/States/Deep",
        "/States/Items",
        "/States/Items/ItemProcessor/States/In",
        "/States/Done",  # Branches only on a Parallel state, item processors only on a Map
    ]
    assert [v.name for v in visits][:2] == ["Fan", "a/b"]
    assert visits[1].path == ("States", "Fan", "Branches", 0, "States", "a/b")


def test_scopes_name_the_enclosing_states_and_their_machines_outermost_first() -> None:
    visits = {v.name: v for v in iter_states(DEFINITION)}
    fan, items = DEFINITION["States"]["Fan"], DEFINITION["States"]["Items"]
    assert visits["Fan"].scopes == ()
    deep = visits["Deep"].scopes
    assert [state for state, _ in deep] == [fan, fan["Branches"][2]["States"]["Each"]]
    assert deep[0][1] is fan["Branches"][2]
    assert visits["In"].scopes == ((items, items["ItemProcessor"]),)


def test_anything_but_a_machine_yields_nothing() -> None:
    for raw in (None, [], "x", {"States": []}, {"States": {"A": 1}}):
        assert list(iter_states(raw)) == []
