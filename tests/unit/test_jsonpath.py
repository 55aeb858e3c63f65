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


# --- a dot before a bracket, as AWS (Jayway JsonPath) reads it ---------------------------


@pytest.mark.parametrize(
    ("path", "same_as"),
    [
        ("$.[?(@.p > 10)]", "$[?(@.p > 10)]"),
        ("$.items.[?(@.p > 10)].p", "$.items[?(@.p > 10)].p"),
        ("$.a.b.[1]", "$.a.b[1]"),
        ("$.['odd key']", "$['odd key']"),
        ("$.a.['b'].[2].c", "$.a.b[2].c"),
    ],
)
def test_a_dot_before_a_bracket_is_the_bracket(path: str, same_as: str) -> None:
    doc = {**DOC, "p": 0}
    items = DOC["items"]
    for value in (doc, items):
        assert compile_path(path).get(value) == compile_path(same_as).get(value)
    assert compile_path(path).is_reference == compile_path(same_as).is_reference


def test_a_root_filter_selects_the_matching_items_of_an_array_input() -> None:
    path = compile_path("$.[?(@.x > 0)]")
    assert path.find([{"x": 1}, {"x": -1}, {"x": 3}, {"y": 1}]) == [{"x": 1}, {"x": 3}]
    assert not path.is_reference


# --- a filter on an object, as AWS (Jayway JsonPath) applies it ----------------------------

NESTED = {"a": 1, "b": {"a": 2}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.[?(@.a > 0)]", [NESTED]),  # the object itself passes, not its values
        ("$[?(@.a > 0)]", [NESTED]),
        ("$[?(@.a > 5)]", []),
        ("$.b[?(@.a > 0)]", [{"a": 2}]),
        ("$.b.[?(@.a > 1)]", [{"a": 2}]),
        ("$[?(@.a > 0)].b.a", [2]),
        ("$[?($.b.a == 2)]", [NESTED]),
        ("$..[?(@.a > 0)]", [NESTED, {"a": 2}]),  # each object reached, once, in order
    ],
)
def test_a_filter_tests_an_object_itself(path: str, expected: list[object]) -> None:
    assert compile_path(path).find(NESTED) == expected


def test_a_filter_still_selects_an_arrays_items_each_once() -> None:
    doc = {"xs": [{"a": 1}, 5, {"a": 0}, [{"a": 3}], 7]}
    assert compile_path("$.xs[?(@.a > 0)]").find(doc) == [{"a": 1}]
    assert compile_path("$.xs.[?(@ > 1)]").find(doc) == [5, 7]
    assert compile_path("$..[?(@.a > 0)]").find(doc) == [{"a": 1}, {"a": 3}]
    assert compile_path("$..[?(@ > 1)]").find(doc) == [
        5,
        7,
    ]  # not the 3 of {"a": 3}: an object is tested whole
    assert compile_path("$[?(@.a > 0)]").find([NESTED, {"a": 0}]) == [NESTED]


def test_dots_inside_quotes_filters_and_descents_stay() -> None:
    assert compile_path("$['a.[b']").find({"a.[b": 1}) == 1
    assert compile_path("$.items[?(@.n == '.[')].n").find({"items": [{"n": ".["}]}) == [".["]
    assert compile_path("$..[0]").find({"a": [1, 2]}) == [1]
