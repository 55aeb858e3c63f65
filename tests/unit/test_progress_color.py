"""``stepflow run`` colours its progress on a terminal, and only there.

Not on a pipe or a file, not under ``NO_COLOR``, not with ``--json``; the text
is the same with and without colour.
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from stepflow.cli import main
from stepflow.cli.progress import Progress, wants_color

ROOT = Path(__file__).resolve().parents[2]
ORDER = [
    "run",
    str(ROOT / "examples" / "order.asl.json"),
    "--input",
    f"@{ROOT / 'examples' / 'order.input.json'}",
    "--handlers",
    str(ROOT / "examples" / "order_handlers.py"),
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    """Standard output as a terminal would be."""

    def isatty(self) -> bool:
        return True


def run_on(stream: io.StringIO, monkeypatch: Any, *args: str) -> str:
    monkeypatch.setattr(sys, "stdout", stream)
    main([*ORDER, *args])
    return stream.getvalue()


@pytest.fixture(autouse=True)
def colour_allowed(monkeypatch: Any) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_a_terminal_gets_colours_and_the_same_text_as_a_pipe(monkeypatch: Any) -> None:
    plain = run_on(io.StringIO(), monkeypatch)
    coloured = run_on(Terminal(), monkeypatch)
    assert ANSI.search(plain) is None
    assert ANSI.sub("", coloured) == plain
    lines = coloured.splitlines()
    painted = [line for line in lines if ANSI.search(line)]
    # every progress line (its clock at least) and the status; not the JSON output
    assert len(painted) == sum(line.startswith("+") for line in plain.splitlines()) + 1
    assert click.style("SUCCEEDED", fg="green", bold=True) in coloured
    red = click.style("✗", fg="red", bold=True).removesuffix("\x1b[0m").removesuffix("✗")
    assert f"{red}✗ ServiceUnavailable: the order service" in coloured
    assert click.style("↻ retry lambda:validate-order", fg="yellow") in coloured


@pytest.mark.parametrize("how", ["NO_COLOR", "TERM=dumb", "--json"])
def test_no_colour_under_no_color_a_dumb_terminal_or_json(how: str, monkeypatch: Any) -> None:
    args: list[str] = []
    if how == "--json":
        args = ["--json"]
    elif how == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.setenv("TERM", "dumb")
    assert ANSI.search(run_on(Terminal(), monkeypatch, *args)) is None


def test_wants_color_on_odd_streams(monkeypatch: Any) -> None:
    with open(os.devnull, "w") as closed:
        pass
    assert wants_color(closed) is False  # isatty() raises ValueError
    assert wants_color(object()) is False  # type: ignore[arg-type]
    assert wants_color(Terminal()) is True
    monkeypatch.setenv("NO_COLOR", "")  # empty: not set, as no-color.org says
    assert wants_color(Terminal()) is True
    assert Progress({}, Terminal(), color=False).color is False


def test_stepflow_run_in_a_real_terminal_is_coloured() -> None:
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    with subprocess.Popen(
        [sys.executable, "-m", "stepflow", *ORDER],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(60) == 0
    os.close(leader)
    text = b"".join(chunks).decode()
    assert "\x1b[" in text
    assert "SUCCEEDED" in ANSI.sub("", text)
