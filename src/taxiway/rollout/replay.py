"""The record of a rehearsed rollout, one point per check, and its chart: the interval
narrowing over time and the step taken at each check.

``taxiway rollout simulate`` rehearses the plan through the real service and controller
(:mod:`taxiway.serving.simulation`, above this layer) and records a :class:`ReplayPoint` per
check; :func:`chart_svg` draws them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ReplayPoint", "chart_svg"]


@dataclass(frozen=True)
class ReplayPoint:
    """One check of the replay: when (hours since the start), at which share, what it said,
    and the difference with its interval (None before there is one)."""

    hours: float
    share: float
    verdict: str
    state: str
    units: tuple[int, int]
    diff: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def chart_svg(points: list[ReplayPoint], title: str) -> str:
    """An SVG chart of the replay: the difference (candidate minus control) and its interval
    at each check, 0 dashed, and a line at each check that changed the step.

    >>> svg = chart_svg([ReplayPoint(1.0, 5.0, "promote", "running", (120, 12), 0.1, -0.2, 0.4)],
    ...                 "lift 5%")
    >>> svg.startswith("<svg") and "promote" in svg
    True
    """
    width, height, left, right, top, bottom = 760, 340, 64, 16, 36, 40
    known = [p for p in points if p.low is not None and p.high is not None]
    values = [0.0] + [v for p in known for v in (p.low, p.high) if v is not None]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    span = max((p.hours for p in points), default=1.0) or 1.0

    def x(hours: float) -> float:
        return left + (width - left - right) * hours / span

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="20" font-size="13">{_escape(title)}</text>',
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
        'stroke="#888" stroke-dasharray="4 3"/>',
    ]
    if known:
        upper = [f"{x(p.hours):.1f},{y(p.high or 0):.1f}" for p in known]
        lower = [f"{x(p.hours):.1f},{y(p.low or 0):.1f}" for p in reversed(known)]
        parts.append(f'<polygon points="{" ".join(upper + lower)}" fill="#9cc3e6" opacity="0.6"/>')
        line = " ".join(f"{x(p.hours):.1f},{y(p.diff or 0):.1f}" for p in known)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f5f99" stroke-width="2"/>')
    for point in points:
        if point.verdict in ("promote", "complete", "rollback", "pause"):
            at = x(point.hours)
            parts.append(
                f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{top}" y2="{height - bottom}" '
                'stroke="#c0392b" stroke-width="1"/>'
            )
            parts.append(
                f'<text x="{at + 3:.1f}" y="{top + 10}" fill="#c0392b">{point.verdict} '
                f"at {point.share:g}%</text>"
            )
    for value in (low, 0.0, high):
        parts.append(f'<text x="4" y="{y(value) + 4:.1f}">{value:.3g}</text>')
    parts.append(
        f'<text x="{left}" y="{height - 12}">hours since the start ({span:.3g} h); band: the '
        "anytime-valid interval of candidate minus control</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
