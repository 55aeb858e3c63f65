"""The progress lines ``stepflow run``, ``make run`` and ``stepflow watch`` print."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

import click

__all__ = ["Progress", "clock", "status_style", "wants_color"]

_TASK_EVENTS = ("LambdaFunction", "Activity", "Task")
_FAILED = ("Failed", "TimedOut")
_EFFECT_EVENTS = ("StepFlowEffect", "StepFlowCompensationEffect")
Trail = tuple[str, ...]  # the Map iterations an event happens in, outermost first


class Progress:
    """An ``on_event`` callback printing one line per notable history event.

    Lines show the virtual time elapsed and are indented by the state's nesting
    in Parallel and Map (state names are unique machine-wide). An event belongs
    to the state and Map iteration of the event its ``previousEventId`` names.

    ``color`` (None: :func:`wants_color` of ``out``) colours each line by its
    kind; the text is the same either way.
    """

    def __init__(self, definition: Any, out: TextIO, color: bool | None = None) -> None:
        self.out = out
        self.color = wants_color(out) if color is None else color
        self.depth: dict[str, int] = {}
        self.branch: dict[str, str] = {}
        self.seen: dict[int, tuple[str | None, str, Trail]] = {}
        self.start: float | None = None
        self.last = 0.0
        self.entered = 0
        self._layout(definition, 0)

    def _layout(self, machine: Any, depth: int) -> None:
        states = machine.get("States") if isinstance(machine, Mapping) else None
        for name, state in states.items() if isinstance(states, Mapping) else ():
            if not isinstance(state, Mapping):
                continue
            self.depth[name] = depth
            branches = state.get("Branches")
            branches = branches if isinstance(branches, list) else []
            for i, branch in enumerate(branches):
                if isinstance(branch, Mapping) and isinstance(branch.get("StartAt"), str):
                    self.branch[branch["StartAt"]] = f"branch {i + 1}/{len(branches)} of {name}"
                self._layout(branch, depth + 1)
            self._layout(state.get("ItemProcessor") or state.get("Iterator"), depth + 1)

    def __call__(self, event: dict[str, Any]) -> None:
        """Record ``event`` and print its line, if it is worth one."""
        kind, event_id = str(event.get("type", "")), int(event.get("id", 0))
        prev = int(event.get("previousEventId") or 0)
        found = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
        details: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        owner, prev_kind, trail = self.seen.get(prev, (None, "", ()))
        name = details.get("name") or owner
        if kind == "MapIterationStarted":
            base = trail[:-1] if prev_kind == kind else trail
            trail = (*base, f"iteration {details.get('index')} of {name}")
        elif kind.startswith("MapIteration"):
            trail = trail[:-1]
        self.seen[event_id] = (name, kind, trail)
        self.last = _seconds(event.get("timestamp"))
        self.start = self.last if self.start is None else self.start
        text = self._describe(kind, details, name, prev_kind, trail)
        if text is not None:
            depth = self.depth.get(name or "", 0) + (not kind.endswith("StateEntered"))
            stamp = clock(self.elapsed)
            if self.color:
                stamp, text = click.style(stamp, dim=True), _paint(text)
            print(f"{stamp}  {'  ' * depth}{text}", file=self.out, flush=True)

    @property
    def elapsed(self) -> float:
        """Virtual seconds between the first and the latest event."""
        return 0.0 if self.start is None else self.last - self.start

    def _describe(
        self, kind: str, details: Mapping[str, Any], name: str | None, prior: str, trail: Trail
    ) -> str | None:
        if kind.endswith("StateEntered"):
            self.entered += 1
            where = ", ".join(filter(None, (self.branch.get(name or ""), *trail[-1:])))
            return f"▶ {name} ({kind[: -len('StateEntered')]})" + (f"  [{where}]" if where else "")
        if kind.startswith(_TASK_EVENTS) and kind.endswith("Scheduled"):
            resource = str(details.get("resource", "?"))
            if kind == "TaskScheduled":
                resource = f"{details.get('resourceType')}:{resource}"
            elif ":function:" in resource:
                resource = "lambda:" + resource.split(":function:")[1]
            retry = prior.startswith(_TASK_EVENTS) and prior.endswith(_FAILED)
            return f"↻ retry {resource}" if retry else f"⚙ call {resource}"
        if kind.startswith(_TASK_EVENTS) and kind.endswith(_FAILED):
            cause = str(details.get("cause") or "")
            cause = cause if len(cause) <= 100 else cause[:97] + "..."
            return f"✗ {details.get('error') or kind}" + (f": {cause}" if cause else "")
        if kind.startswith(_EFFECT_EVENTS):
            return _effect_line(kind, details)
        if kind == "MapStateStarted":
            return f"↳ {details.get('length', '?')} iteration(s)"
        if kind in ("MapIterationFailed", "MapIterationAborted"):
            return f"✗ iteration {details.get('index')} {kind[len('MapIteration') :].lower()}"
        if kind.endswith("StateExited") and prior.endswith(_FAILED):
            return f"↪ {name} caught the error"
        if kind == "WaitStateExited":
            return f"{name} done waiting"
        return None


_STYLES: dict[str, dict[str, Any]] = {
    "▶": {"fg": "cyan", "bold": True},
    "⚙": {"fg": "blue"},
    "↻": {"fg": "yellow"},
    "✗": {"fg": "red", "bold": True},
    "↪": {"fg": "yellow"},
    "✦": {"fg": "green"},
    "↺": {"dim": True},
}
"""A progress line's style, by its first character."""


def _paint(text: str) -> str:
    style = _STYLES.get(text[:1])
    return click.style(text, **style) if style else text


def wants_color(out: TextIO) -> bool:
    """Whether to colour what goes to ``out``: a terminal, unless ``NO_COLOR`` or ``TERM=dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def status_style(status: str) -> dict[str, Any]:
    """The style of an execution's final status line (green success, red anything else)."""
    return {"fg": "green" if status == "SUCCEEDED" else "red", "bold": True}


def _effect_line(kind: str, details: Mapping[str, Any]) -> str:
    """One of a cell's effects (StepFlow's own events): performed, replayed or failed."""
    if kind.endswith("Omitted"):
        return f"… {details.get('omitted', '?')} more effect(s) not recorded one by one"
    what = "undo effect" if kind.startswith("StepFlowCompensation") else "effect"
    text = f"{what} #{details.get('index', '?')} {details.get('effect') or '?'}"
    if kind.endswith("Replayed"):
        return f"↺ {text} (replayed)"
    if kind.endswith("Failed"):
        cause = str(details.get("cause") or "")
        cause = cause if len(cause) <= 80 else cause[:77] + "..."
        return f"✗ {text}: {details.get('error') or 'failed'}" + (f": {cause}" if cause else "")
    return f"✦ {text}"


def _seconds(stamp: Any) -> float:
    """A history timestamp (epoch seconds or a datetime) as epoch seconds."""
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    return float(stamp) if isinstance(stamp, int | float) else 0.0


def clock(seconds: float) -> str:
    """``seconds`` as ``+H:MM:SS.mmm``."""
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"+{hours}:{minutes:02d}:{secs:06.3f}"
