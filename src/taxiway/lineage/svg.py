"""The lineage graph as an inline SVG: one column per layer, a box per node, a line per edge.

Hand-drawn (no graphviz, no script): the report stays one self-contained page. Every text is
escaped; a label too long for its box is cut with an ellipsis and kept whole in its
``<title>`` (the tooltip).

>>> from taxiway.lineage.graph import LineageGraph, Node
>>> graph = LineageGraph("lineage of churn v1 (candidate)")
>>> graph.add(Node("source:a", "sources", "source a <raw>"))
>>> graph.add(Node("model", "model", "model churn v1"), "source:a")
>>> svg = lineage_svg(graph)
>>> svg.startswith("<svg") and "source a &lt;raw&gt;" in svg and svg.count("<line") == 1
True
"""

from __future__ import annotations

import html

from taxiway.lineage.graph import LineageGraph

__all__ = ["lineage_svg"]

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _HEAD, _PAD = 190, 40, 50, 14, 28, 10
_CHARS = 28  # what fits on a box's line at 12px


def _cut(text: str) -> str:
    return text if len(text) <= _CHARS else text[: _CHARS - 1] + "…"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def lineage_svg(graph: LineageGraph, *, element_id: str = "lineage-graph") -> str:
    """``graph`` as an SVG element, its layers left to right."""
    columns = graph.columns()
    where: dict[str, tuple[float, float]] = {}
    boxes: list[str] = []
    heads: list[str] = []
    for col, (layer, nodes) in enumerate(columns):
        x = _PAD + col * (_BOX_W + _GAP_X)
        heads.append(
            f'<text x="{x + _BOX_W / 2}" y="{_PAD + 14}" text-anchor="middle" '
            f'class="lineage-layer">{_e(layer)}</text>'
        )
        for row, node in enumerate(nodes):
            y = _PAD + _HEAD + row * (_BOX_H + _GAP_Y)
            where[node.id] = (x, y)
            detail = (
                f'<text x="{x + 8}" y="{y + 32}" font-size="10" fill="#555">'
                f"{_e(_cut(node.detail))}</text>"
                if node.detail
                else ""
            )
            tooltip = node.label + (f" ({node.detail})" if node.detail else "")
            boxes.append(
                f'<g class="lineage-node"><title>{_e(tooltip)}</title>'
                f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="5" '
                f'fill="#f4f6fb" stroke="#4a5b8c"/>'
                f'<text x="{x + 8}" y="{y + 17}" font-size="12">{_e(_cut(node.label))}</text>'
                f"{detail}</g>"
            )
    lines = []
    for a, b in graph.edges:
        if a in where and b in where:
            (xa, ya), (xb, yb) = where[a], where[b]
            lines.append(
                f'<line x1="{xa + _BOX_W}" y1="{ya + _BOX_H / 2}" x2="{xb}" '
                f'y2="{yb + _BOX_H / 2}" stroke="#8a94b0" stroke-width="1.2"/>'
            )
    rows = max((len(nodes) for _, nodes in columns), default=0)
    width = 2 * _PAD + len(columns) * _BOX_W + max(0, len(columns) - 1) * _GAP_X
    height = 2 * _PAD + _HEAD + rows * _BOX_H + max(0, rows - 1) * _GAP_Y
    return (
        f'<svg id="{_e(element_id)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(graph.title)}" font-family="sans-serif">'
        f"<title>{_e(graph.title)}</title>"
        f"{''.join(heads)}{''.join(lines)}{''.join(boxes)}</svg>"
    )
