"""`taxiway monitor` for a recommender: what the served lists do, from the service's log.

For a spec with ``recommend:``, the recommendation service logs each answer's full list
(``items``: item, position, score, stage), its ``path`` (``model`` or a fallback), ``degraded``
and ``reason``, ``unknown_user`` and ``recent_items``; outcomes (clicks, purchases) are posted per
request and item. The monitor reads both incrementally (cursors in its state folder, as the
classifier's monitor does) into fixed windows, and reports per window and over the period:

- the fallback and degraded shares, by reason; latency p50/p99 and the SLO burn (the
  classifier monitor's own windows and :mod:`~taxiway.monitoring.slo`, reused);
- catalog coverage and the Gini of served items (:mod:`~taxiway.monitoring.recs.measures`,
  the definitions the offline evaluation uses);
- the share of unknown users, and of unknown items among ``recent_items``;
- click-through by position per outcome name, with Wilson intervals;
- realised recall@k of the served lists against each user's later interactions (within a
  horizon after the answer), next to the version's evaluation figure;
- drift of the served mix (stages, item-popularity deciles).

The parts: :mod:`~taxiway.monitoring.recs.reading` (the log's and the outcomes' records as
columns), :mod:`~taxiway.monitoring.recs.windows` (the windows, the answers kept for late
outcomes and judgement, the store), :mod:`~taxiway.monitoring.recs.findings` (each finding and
the alerts), :mod:`~taxiway.monitoring.recs.report` (the JSON, Markdown and terminal summary
from one model), :mod:`~taxiway.monitoring.recs.monitor` (one run). The package takes plain
data (:class:`~taxiway.monitoring.recs.inputs.RecsInputs`): the CLI resolves the version, its
catalog and the interactions source above this layer. Names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxiway.monitoring.recs.inputs import CatalogFacts, RecsInputs
    from taxiway.monitoring.recs.monitor import run_recs_monitor
    from taxiway.monitoring.recs.report import RecsReport, summary_lines, write_report

_WHERE = {
    "CatalogFacts": "inputs",
    "RecsInputs": "inputs",
    "RecsReport": "report",
    "run_recs_monitor": "monitor",
    "summary_lines": "report",
    "write_report": "report",
}

__all__ = [
    "CatalogFacts",
    "RecsInputs",
    "RecsReport",
    "run_recs_monitor",
    "summary_lines",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'taxiway.monitoring.recs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taxiway.monitoring.recs.{_WHERE[name]}"), name)
