import pytest
from stepflow.data.jsonpath import (
    PathNotFoundError,
    PathSyntaxError,
    compile_path,
    is_reference_path,
)
from stepflow.data.scope import Scope

DOC = {"a": {"b": [10, 20, {"c": "x"}]}, "odd key": 1, "items": [{"p": 5}, {"p": 15}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.a.b[1]", 20),
        ("$.a.b[-1].c", "x"),
        ("$['odd key']", 1),
        ('$["a"]["b"][0]', 10),
    ],
)
def test_reference_paths_select_one_value(path: str, expected: object) -> None:
    assert compile_path(path).find(DOC) == expected


def test_general_paths_select_lists() -> None:
    assert compile_path("$.items[*].p").find(DOC) == [5, 15]
    assert compile_path("$.items[?(@.p > 10)].p").find(DOC) == [15]
    assert compile_path("$.missing[*]").find(DOC) == []


def test_missing_reference_path_raises_with_normalized_path() -> None:
    with pytest.raises(PathNotFoundError) as info:
        compile_path("$.a.nope").find(DOC)
    assert info.value.path.normalized == "$['a']['nope']"


def test_put_copies_only_along_the_path() -> None:
    path = compile_path("$.a.new.deep")
    out = path.put(DOC, 1)
    assert out["a"]["new"] == {"deep": 1}
    assert "new" not in DOC["a"]
    assert out["items"] is DOC["items"]


def test_put_into_a_non_object_fails() -> None:
    with pytest.raises(PathNotFoundError):
        compile_path("$.a.b.c").put(DOC, 1)


def test_roots_context_and_variables() -> None:
    scope = Scope({"x": 1}, {"Execution": {"Id": "e"}}, {"v": {"k": 2}})
    assert scope.read(compile_path("$$.Execution.Id")) == "e"
    assert scope.read(compile_path("$v.k")) == 2
    with pytest.raises(PathNotFoundError):
        scope.read(compile_path("$undefined"))


@pytest.mark.parametrize("text", ["a.b", "", "$.a[", "$..[?(", 5])
def test_invalid_paths_are_rejected(text: object) -> None:
    with pytest.raises(PathSyntaxError):
        compile_path(text)  # type: ignore[arg-type]


def test_reference_path_detection() -> None:
    assert is_reference_path("$.a[0]['b']")
    assert not is_reference_path("$.a[*]")
    assert not is_reference_path("nope")
