"""The sprint report: report.md for a terminal, report.html with charts, report.json for tools.

One model of the report (:mod:`~taxiway.sprint.report.model`: rows, lines, numbers) feeds two
renderers: :mod:`~taxiway.sprint.report.markdown` and :mod:`~taxiway.sprint.report.html_page`
(one self-contained page, every string escaped).

>>> from taxiway.sprint.outcome import Check, Phase
>>> d = Debrief("shop", "taxiway.yaml", "09:00", "09:03",
...             [Phase("data_access", [Check("read <orders>", "pass")], 1.0)], deployed=False)
>>> render_markdown(d).splitlines()[0]
'# Sprint debrief: shop'
>>> page = render_html(d)
>>> 'id="chart-timeline"' in page, "read &lt;orders&gt;" in page, "<script" in page
(True, True, False)
"""

from __future__ import annotations

import json
from pathlib import Path

from taxiway.sprint.charts import STATUS_COLOURS
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.report.html_page import render_html
from taxiway.sprint.report.markdown import render_markdown

__all__ = ["STATUS_COLOURS", "render_html", "render_markdown", "write_report"]


def write_report(debrief: Debrief, folder: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into ``folder`` (created).

    Returns their paths under the keys ``md``, ``html`` and ``json``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
    paths["md"].write_text(render_markdown(debrief), encoding="utf-8")
    paths["html"].write_text(render_html(debrief), encoding="utf-8")
    document = json.dumps(debrief.as_dict(), indent=2, ensure_ascii=False)
    paths["json"].write_text(document + "\n", encoding="utf-8")
    return paths
