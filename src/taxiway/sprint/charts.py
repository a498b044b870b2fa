"""The report's inline SVG charts: a phase timeline, bars against a budget, a stacked bar.

Each chart is a pure function of plain values (names, numbers and the text to show for them,
already worded by the caller) that returns one ``<svg>`` element as a string. Every text value
is escaped, so a name that holds markup is drawn as text and never opens a tag.

>>> svg = bars_svg("chart-load", "latency (ms)",
...                [Bar("p99 <live>", 61.0, "61", "p99")], unit=" ms", budget=Budget(50.0, "50"))
>>> svg.startswith('<svg id="chart-load"'), "p99 &lt;live&gt;" in svg, '<line class="budget"' in svg
(True, True, True)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "STATUS_COLOURS",
    "Bar",
    "Budget",
    "Segment",
    "Span",
    "bars_svg",
    "stacked_bar_svg",
    "timeline_svg",
]

STATUS_COLOURS: dict[str, str] = {
    "pass": "#2e7d32",  # nosec B105
    "warn": "#f9a825",
    "fail": "#c62828",
    "skip": "#9e9e9e",
}
"""The colour of a phase's bar in the timeline, by its status."""

_LABEL_W, _BAR_W, _ROW_H = 180, 500, 30


class Span(NamedTuple):
    """One phase on the timeline: its name, status, duration, and that duration as text."""

    name: str
    status: str
    duration_s: float
    duration_text: str


class Bar(NamedTuple):
    """One horizontal bar: its label, its value (``None``: not measured, drawn empty), the text
    shown for the value, and its name (the ``data-name`` the page's CSS colours it by)."""

    label: str
    value: float | None
    value_text: str
    name: str


class Budget(NamedTuple):
    """The budget the bars are held to, drawn as a dashed line, and the text shown for it."""

    value: float
    text: str


class Segment(NamedTuple):
    """One part of a stacked bar: its name, its size, that size as text, and its colour."""

    name: str
    value: float
    value_text: str
    colour: str


def timeline_svg(spans: Sequence[Span], total_text: str) -> str:
    """A Gantt bar per phase: it starts where the previous one ended, its colour its status.

    ``total_text`` labels the end of the axis (the sum of the durations, as text).

    >>> svg = timeline_svg([Span("data_access", "pass", 1.5, "1.5 s")], "1.5 s")
    >>> svg.startswith('<svg id="chart-timeline"'), 'fill="#2e7d32"' in svg
    (True, True)
    """
    total = sum(s.duration_s for s in spans) or 1.0
    parts, offset = [], 0.0
    for i, s in enumerate(spans):
        y = 8 + i * _ROW_H
        x = _LABEL_W + offset / total * _BAR_W
        width = max(2.0, s.duration_s / total * _BAR_W)
        note = f"{s.duration_text} · {s.status}"
        parts.append(
            f'<text x="0" y="{y + 15}">{_e(s.name)}</text>'
            f'<rect class="bar phase-bar" data-phase="{_e(s.name)}" data-status="{_e(s.status)}" '
            f'x="{x:.1f}" y="{y}" width="{width:.1f}" height="20" '
            f'fill="{STATUS_COLOURS.get(s.status, "#9e9e9e")}"><title>{_e(s.name)}: {_e(note)}'
            f'</title></rect><text x="{x + width + 6:.1f}" y="{y + 15}">{_e(note)}</text>'
        )
        offset += s.duration_s
    axis_y = 8 + len(spans) * _ROW_H
    parts.append(
        f'<line class="axis" x1="{_LABEL_W}" y1="{axis_y}" x2="{_LABEL_W + _BAR_W}" '
        f'y2="{axis_y}"/><text x="{_LABEL_W}" y="{axis_y + 15}">0 s</text>'
        f'<text x="{_LABEL_W + _BAR_W}" y="{axis_y + 15}" text-anchor="end">'
        f"{_e(total_text)}</text>"
    )
    return _svg("chart-timeline", axis_y + 24, "phase timeline", "".join(parts))


def bars_svg(
    chart_id: str,
    label: str,
    bars: Sequence[Bar],
    *,
    unit: str,
    budget: Budget | None,
) -> str:
    """Horizontal bars on one scale, and a dashed line at ``budget``; a bar over it is ``over``.

    Bars are sized by their absolute value; ``unit`` follows every number shown.
    """
    values = [abs(b.value) for b in bars if b.value is not None]
    scale = max([*values, budget.value if budget is not None else 0.0]) * 1.1 or 1.0
    parts = []
    for i, (text, value, value_text, name) in enumerate(bars):
        y = 8 + i * _ROW_H
        width = 0.0 if value is None else max(1.0, abs(value) / scale * _BAR_W)
        over = budget is not None and value is not None and value > budget.value
        # The tooltip shows the exact value; the label beside the bar, the caller's wording.
        exact = value_text if value is None else str(value)
        parts.append(
            f'<text x="0" y="{y + 15}">{_e(text)}</text>'
            f'<rect class="bar{" over" if over else ""}" data-name="{_e(name)}" x="{_LABEL_W}" y="{y}" '
            f'width="{width:.1f}" height="20"><title>{_e(text)}: {_e(exact)}{_e(unit)}</title></rect>'
            f'<text x="{_LABEL_W + width + 6:.1f}" y="{y + 15}">{_e(value_text)}{_e(unit)}'
            "</text>"
        )
    height = 8 + len(bars) * _ROW_H
    if budget is not None:
        x = _LABEL_W + budget.value / scale * _BAR_W
        parts.append(
            f'<line class="budget" x1="{x:.1f}" y1="2" x2="{x:.1f}" y2="{height}"/>'
            f'<text x="{x:.1f}" y="{height + 14}" text-anchor="middle">'
            f"budget {_e(budget.text)}{_e(unit)}</text>"
        )
    return _svg(chart_id, height + 22, label, "".join(parts))


def stacked_bar_svg(chart_id: str, label: str, caption: str, segments: Sequence[Segment]) -> str:
    """One bar split into ``segments`` by their sizes, ``caption`` on its left, a legend below.

    >>> svg = stacked_bar_svg("chart-drill", "drill", "10 requests",
    ...                       [Segment("answered", 9, "9", "#2e7d32"), Segment("errors", 1, "1", "red")])
    >>> svg.count('class="bar segment"'), "answered 9 · errors 1" in svg
    (2, True)
    """
    total = sum(s.value for s in segments) or 1.0
    parts = [f'<text x="0" y="23">{_e(caption)}</text>']
    x = float(_LABEL_W)
    for name, value, value_text, colour in segments:
        width = value / total * _BAR_W
        parts.append(
            f'<rect class="bar segment" data-name="{_e(name)}" x="{x:.1f}" y="8" '
            f'width="{width:.1f}" height="22" fill="{_e(colour)}"><title>{_e(name)}: '
            f"{_e(value_text)}</title></rect>"
        )
        x += width
    legend = " · ".join(f"{s.name} {s.value_text}" for s in segments)
    parts.append(f'<text x="{_LABEL_W}" y="48">{_e(legend)}</text>')
    return _svg(chart_id, 58, label, "".join(parts))


def _svg(chart_id: str, height: int, label: str, body: str) -> str:
    width = _LABEL_W + _BAR_W + 140
    return (
        f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>{body}</svg>'
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
