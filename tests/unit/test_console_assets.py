"""The console's files: every page path answers the page; nothing outside static/ is served."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from stepflow.console import ConsoleAssets, ConsoleRoute
from stepflow.console.assets import LAYOUT_LIBRARY
from stepflow.local.routes import route_for

ARN = "arn:aws:states:us-east-1:000000000000:execution:m:run-1"


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/?status=FAILED",
        "/console/index.html",
        f"/console/executions/{quote(ARN, safe='')}",
        "/console/state-machines/arn%3Aaws%3Astates%3Aus-east-1%3A0%3AstateMachine%3Am",
    ],
)
def test_every_page_path_answers_the_page(path: str) -> None:
    reply = ConsoleAssets().response(path)
    assert reply.status == 200 and reply.content_type.startswith("text/html")
    assert b'<svg id="graph"' in reply.body and b"/console/static/console.js" in reply.body


def test_static_files_have_their_types() -> None:
    assets = ConsoleAssets()
    script = assets.response("/console/static/console.js")
    style = assets.response("/console/static/console.css")
    assert (script.status, style.status) == (200, 200)
    assert script.content_type.startswith("text/javascript")
    assert style.content_type.startswith("text/css")
    assert b"innerHTML" not in script.body  # every text goes in through textContent
    drawing = assets.response("/console/static/graph.js")
    assert drawing.status == 200 and b"innerHTML" not in drawing.body


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../api.py",
        "/console/static/%2e%2e/api.py",
        "/console/static/%2E%2E%2Fapi.py",
        "/console/static/vendor/../../api.py",
        "/console/static/..%2f..%2f__init__.py",
        "/console/static/api.py",
        "/console/static/",
        "/console/static/.hidden.js",
        "/console/static/" + "a" * 5000 + ".js",
        "/console/executions/a/b",
        "/console/nothing",
        "/consolex/",
        "/",
    ],
)
def test_nothing_outside_the_static_files_is_served(path: str) -> None:
    assert ConsoleAssets().response(path).status == 404


def test_a_missing_layout_library_answers_a_script_that_says_how_to_get_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.html").write_text("<p>page</p>")
    assets = ConsoleAssets(root=tmp_path)  # type: ignore[arg-type]
    assert not assets.has_layout_library
    reply = assets.response("/console/static/" + LAYOUT_LIBRARY)
    assert reply.status == 200 and b"make console-assets" in reply.body
    assert assets.response("/console/static/vendor/other.js").status == 404
    (tmp_path / "vendor").mkdir()
    (tmp_path / LAYOUT_LIBRARY).write_text("var dagre = {};")
    assert assets.has_layout_library
    assert assets.response("/console/static/" + LAYOUT_LIBRARY).body == b"var dagre = {};"


def test_the_console_route_claims_its_gets_and_its_endpoint_posts_only() -> None:
    route = ConsoleRoute()
    assert route_for([route], "GET", "/console/") is route
    assert route_for([route], "POST", "/console/api/graph") is route
    assert route_for([route], "POST", "/console/") is None
    assert route_for([route], "POST", "/") is None
    assert route_for([route], "PUT", "/console/api/graph") is None
    assert route_for([route], "GET", "/") is None


@pytest.mark.parametrize(
    "name",
    ["../secret.html", "..%2fsecret.html", "%2e%2e%2fsecret.html", "vendor/../../secret.html"],
)
def test_a_servable_file_beside_the_static_folder_is_not_reached(tmp_path: Path, name: str) -> None:
    static = tmp_path / "static"
    (static / "vendor").mkdir(parents=True)
    (tmp_path / "secret.html").write_text("secret")
    assets = ConsoleAssets(root=static)  # type: ignore[arg-type]
    assert assets.response("/console/static/" + name).status == 404
