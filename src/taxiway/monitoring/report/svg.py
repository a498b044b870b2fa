"""The monitor report's inline SVG charts: paired bars, lines over windows, a status grid.

Each chart is a pure function of plain values (labels, numbers, and the words to show) that
returns one ``<svg>`` element as a string, coloured by attributes so it reads without a
stylesheet. Every text value is escaped, so a feature name holding markup is drawn as text.
Nothing is fetched and no script runs.

>>> svg = paired_bars_svg("chart-dist-x", "x <a>", ["d1", "d2"], [0.5, 0.5], [0.9, 0.1])
>>> svg.startswith('<svg id="chart-dist-x"'), "x &lt;a&gt;" in svg, svg.count("<rect")
(True, True, 4)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "REFERENCE_COLOUR",
    "STATUS_COLOURS",
    "Guide",
    "Series",
    "lines_svg",
    "paired_bars_svg",
    "status_grid_svg",
]

STATUS_COLOURS: dict[str, str] = {
    "ok": "#2e7d32",
    "warn": "#f9a825",
    "drift": "#c62828",
    "unjudged": "#e0e0e0",
}
"""The colour of a window's cell in the status grid, by its status."""

REFERENCE_COLOUR = "#90a4ae"
CURRENT_COLOUR = "#1565c0"

_LEFT, _PLOT_W, _PLOT_H, _TOP = 60, 560, 160, 24


class Series(NamedTuple):
    """One line: its name (legend), its value per window (``None``: a gap), its colour, and
    whether it is dashed."""

    name: str
    values: Sequence[float | None]
    colour: str
    dashed: bool = False


class Guide(NamedTuple):
    """A horizontal line across the plot at ``value`` (a budget, a burn-rate level)."""

    value: float
    text: str
    colour: str = "#c62828"


def paired_bars_svg(
    chart_id: str,
    label: str,
    bins: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
) -> str:
    """Two bars per bin: the reference's share (grey) beside the current period's (blue).

    >>> paired_bars_svg("c", "x", ["a"], [1.0], [0.0]).count('data-series="current"')
    1
    """
    top = max([*reference, *current, 0.0]) or 1.0
    slot = _PLOT_W / max(1, len(bins))
    width = max(2.0, slot / 2 - 3)
    parts = []
    for i, name in enumerate(bins):
        x = _LEFT + i * slot + 2
        for j, (series, share, colour) in enumerate(
            (("reference", reference[i], REFERENCE_COLOUR), ("current", current[i], CURRENT_COLOUR))
        ):
            height = share / top * _PLOT_H
            y = _TOP + _PLOT_H - height
            parts.append(
                f'<rect data-series="{series}" x="{x + j * (width + 1):.1f}" y="{y:.1f}" '
                f'width="{width:.1f}" height="{height:.1f}" fill="{colour}"><title>'
                f"{_e(name)} {series}: {share:.1%}</title></rect>"
            )
        parts.append(
            f'<text x="{x + width:.1f}" y="{_TOP + _PLOT_H + 14}" text-anchor="middle">'
            f"{_e(_short(name))}</text>"
        )
    parts.append(_axis(f"{top:.0%}", "0%"))
    parts.append(
        _legend([("reference", REFERENCE_COLOUR, False), ("current", CURRENT_COLOUR, False)])
    )
    return _svg(chart_id, label, "".join(parts))


def lines_svg(
    chart_id: str,
    label: str,
    windows: Sequence[str],
    series: Sequence[Series],
    *,
    guides: Sequence[Guide] = (),
    unit: str = "",
) -> str:
    """One line per series over the windows (a dot per value, a gap where it is ``None``),
    and a dashed horizontal line per guide.

    >>> svg = lines_svg("c", "p99", ["05:00", "06:00"], [Series("p99", [10.0, None], "#000")],
    ...                 guides=[Guide(50.0, "budget 50 ms")])
    >>> svg.count("<circle"), "budget 50 ms" in svg
    (1, True)
    """
    values = [v for s in series for v in s.values if v is not None]
    top = max([*values, *(g.value for g in guides), 0.0]) * 1.1 or 1.0
    step = _PLOT_W / max(1, len(windows) - 1)

    def xy(i: int, v: float) -> str:
        return f"{_LEFT + i * step:.1f},{_TOP + _PLOT_H - v / top * _PLOT_H:.1f}"

    parts = []
    for guide in guides:
        y = _TOP + _PLOT_H - guide.value / top * _PLOT_H
        parts.append(
            f'<line class="guide" x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + _PLOT_W}" y2="{y:.1f}" '
            f'stroke="{guide.colour}" stroke-dasharray="5 3"/><text x="{_LEFT + _PLOT_W + 4}" '
            f'y="{y + 4:.1f}">{_e(guide.text)}</text>'
        )
    for s in series:
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        run: list[str] = []
        for i, v in enumerate([*s.values, None]):
            if v is not None:
                run.append(xy(i, v))
                parts.append(
                    f'<circle data-series="{_e(s.name)}" cx="{xy(i, v).split(",")[0]}" '
                    f'cy="{xy(i, v).split(",")[1]}" r="2.5" fill="{s.colour}"><title>'
                    f"{_e(s.name)} {_e(windows[i])}: {v:.4g}{_e(unit)}</title></circle>"
                )
            elif run:
                if len(run) > 1:
                    parts.append(
                        f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.colour}" '
                        f'stroke-width="2"{dash}/>'
                    )
                run = []
    if windows:
        parts.append(
            f'<text x="{_LEFT}" y="{_TOP + _PLOT_H + 14}">{_e(windows[0])}</text>'
            f'<text x="{_LEFT + _PLOT_W}" y="{_TOP + _PLOT_H + 14}" text-anchor="end">'
            f"{_e(windows[-1])}</text>"
        )
    parts.append(_axis(f"{top:.3g}{unit}", f"0{unit}"))
    parts.append(_legend([(s.name, s.colour, s.dashed) for s in series]))
    return _svg(chart_id, label, "".join(parts))


def status_grid_svg(
    chart_id: str, label: str, rows: Sequence[str], windows: Sequence[str],
    cells: Sequence[Sequence[str]],
) -> str:  # fmt: skip
    """A cell per row and window, coloured by its status (``ok``, ``warn``, ``drift`` or
    ``unjudged``): drift over time for every feature at once.

    >>> svg = status_grid_svg("g", "drift", ["age"], ["05:00"], [["drift"]])
    >>> 'data-status="drift"' in svg, 'data-row="age"' in svg
    (True, True)
    """
    cell_w = max(4.0, min(28.0, _PLOT_W / max(1, len(windows))))
    label_w, cell_h = 220, 16
    parts = []
    for r, name in enumerate(rows):
        y = 8 + r * (cell_h + 2)
        parts.append(f'<text x="0" y="{y + 12}">{_e(_short(name, 34))}</text>')
        for c, status in enumerate(cells[r]):
            parts.append(
                f'<rect data-row="{_e(name)}" data-status="{_e(status)}" '
                f'x="{label_w + c * cell_w:.1f}" y="{y}" width="{cell_w - 1:.1f}" '
                f'height="{cell_h}" fill="{STATUS_COLOURS.get(status, "#e0e0e0")}"><title>'
                f"{_e(name)} {_e(windows[c])}: {_e(status)}</title></rect>"
            )
    height = 8 + len(rows) * (cell_h + 2) + 34
    if windows:  # the first window's start under the first cell, the last's a line below
        parts.append(
            f'<text x="{label_w}" y="{height - 20}">{_e(windows[0])}</text>'
            f'<text x="{label_w + len(windows) * cell_w:.1f}" y="{height - 6}" '
            f'text-anchor="end">{_e(windows[-1])}</text>'
        )
    width = int(label_w + len(windows) * cell_w + 20)
    return _svg(chart_id, label, "".join(parts), width=max(width, 420), height=height)


def _axis(top_text: str, bottom_text: str) -> str:
    bottom = _TOP + _PLOT_H
    return (
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#777"/>'
        f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{_LEFT + _PLOT_W}" y2="{bottom}" '
        f'stroke="#777"/><text x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end">'
        f'{_e(top_text)}</text><text x="{_LEFT - 4}" y="{bottom}" text-anchor="end">'
        f"{_e(bottom_text)}</text>"
    )


def _legend(items: Sequence[tuple[str, str, bool]]) -> str:
    parts, x = [], float(_LEFT)
    for name, colour, dashed in items:
        dash = ' stroke-dasharray="6 3"' if dashed else ""
        parts.append(
            f'<line x1="{x:.0f}" y1="12" x2="{x + 18:.0f}" y2="12" stroke="{colour}" '
            f'stroke-width="4"{dash}/><text x="{x + 22:.0f}" y="16">{_e(name)}</text>'
        )
        x += 34 + 7 * len(name)
    return "".join(parts)


def _svg(chart_id: str, label: str, body: str, *, width: int = 0, height: int = 0) -> str:
    width = width or _LEFT + _PLOT_W + 150
    height = height or _TOP + _PLOT_H + 24
    return (
        f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(label)}" font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{_e(label)}</title>{body}</svg>"
    )


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
