"""Runbooks: one Markdown page per failure mode of this deployment, written from its spec.

Each page gives the symptoms as they show in ``/metrics`` (series names are read from the
service's :class:`~taxiway.serving.metrics.Metrics`) and in the prediction log, the thresholds
as the spec declares them (or the defaults it leaves in force, marked ``default``), and the
``taxiway`` commands that diagnose and recover. Where no command exists yet (drift monitoring,
the rollout controller), a page gives the manual step that works today and names the command
that will replace it. Secrets never appear: a Redis URL is shown as its ``${ENV_VAR}``
reference.

One module per page; the scripts the pages embed are package data under ``scripts/``.

>>> from taxiway.spec.loader import load_spec_text
>>> project = Project(load_spec_text("name: shop\\nserving: {latency_budget_ms: 30}"),
...                   Path("/srv/shop/taxiway.yaml"))
>>> pages = runbooks(project)
>>> sorted(pages)[:3]
['README.md', 'cdc-slot-behind.md', 'contract-breach-breaker-open.md']
>>> "| `serving.latency_budget_ms` | `30` | spec |" in pages["latency-budget.md"]
True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from taxiway.spec.project import Project
from taxiway.sprint.runbooks.cdc_slot import _cdc_slot
from taxiway.sprint.runbooks.contract_breach import _contract_or_breaker
from taxiway.sprint.runbooks.facts import _MONITOR, _ROLLOUT, PLANNED_COMMANDS, SERVICE_URL, _Facts
from taxiway.sprint.runbooks.input_drift import _input_drift
from taxiway.sprint.runbooks.latency_budget import _latency_budget
from taxiway.sprint.runbooks.model_error import _model_error
from taxiway.sprint.runbooks.online_store_down import _online_store_down
from taxiway.sprint.runbooks.retraining import _retraining
from taxiway.sprint.runbooks.rollback import _rollback

__all__ = ["PLANNED_COMMANDS", "RUNBOOKS", "runbooks", "write_runbooks"]


def write_runbooks(project: Project, folder: Path) -> list[Path]:
    """Write every runbook and the index ``README.md`` into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in runbooks(project).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def runbooks(project: Project) -> dict[str, str]:
    """File name → Markdown: ``README.md`` (the index) first, then one page per failure mode."""
    facts = _Facts.of(project)
    pages = {name: render(facts) for name, (_, render) in RUNBOOKS.items()}
    return {"README.md": _index(facts), **pages}


RUNBOOKS: dict[str, tuple[str, Callable[[_Facts], str]]] = {
    "online-store-down.md": ("Online store down", _online_store_down),
    "model-error.md": ("Model error", _model_error),
    "latency-budget.md": ("Latency budget breached", _latency_budget),
    "contract-breach-breaker-open.md": (
        "Contract breach or circuit breaker open",
        _contract_or_breaker,
    ),
    "input-drift.md": ("Input drift alert", _input_drift),
    "rollback.md": ("Rollout rollback", _rollback),
    "retraining.md": ("Retraining cadence", _retraining),
    "cdc-slot-behind.md": ("CDC slot behind", _cdc_slot),
}
"""File name → (title, renderer) of every runbook, in the order the index lists them."""


def _index(f: _Facts) -> str:
    rows = "\n".join(f"| [{title}]({name}) |" for name, (title, _) in RUNBOOKS.items())
    return f"""{f.header("Runbooks")}
One page per failure mode of this deployment, generated from its spec by
`taxiway runbook --out <folder>`: regenerate them when the spec changes.

| failure mode |
|---|
{rows}

Metrics: `curl -s {SERVICE_URL}/metrics` (Prometheus text). The prediction log (every answer,
its path, reason, features and latency) is in `{f.log_folder}`; DuckDB reads it (see
docs/serving.md).

Drift, latency, SLO burn and quality: `{_MONITOR}` (and the service's `/dashboard`). The
gradual rollout and its verdicts: `{_ROLLOUT}` (and `GET /v1/rollout/verdict`).
"""
