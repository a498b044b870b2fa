"""The monitor's report: monitor.json for tools, monitor.md for a terminal, monitor.html with
charts.

One model of the findings (:mod:`~taxiway.monitoring.report.model`) feeds every view: its
JSON, and through the shared rows and lines of :mod:`~taxiway.monitoring.report.rows`, the
terminal summary, :mod:`~taxiway.monitoring.report.markdown` and
:mod:`~taxiway.monitoring.report.html_page` (one self-contained page with inline SVG charts).

>>> import tempfile
>>> from taxiway.monitoring.report.model import _example
>>> with tempfile.TemporaryDirectory() as tmp:
...     [p.name for p in write_report(_example(), Path(tmp))]
['monitor.json', 'monitor.md', 'monitor.html']
"""

from __future__ import annotations

import json
from pathlib import Path

from taxiway.monitoring.report.html_page import render_html
from taxiway.monitoring.report.markdown import render_markdown
from taxiway.monitoring.report.model import MonitorReport
from taxiway.monitoring.report.rows import summary_lines

__all__ = ["MonitorReport", "render_html", "render_markdown", "summary_lines", "write_report"]


def write_report(report: MonitorReport, out: Path) -> list[Path]:
    """Write ``monitor.json``, ``monitor.md`` and ``monitor.html`` into ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "monitor.json", out / "monitor.md", out / "monitor.html"]
    document = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    paths[0].write_text(document + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(report), encoding="utf-8")
    paths[2].write_text(render_html(report), encoding="utf-8")
    return paths
