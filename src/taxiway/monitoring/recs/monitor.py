"""One run of the recommendation monitor: both logs' new records into windows, the findings,
the alerts, one :class:`~taxiway.monitoring.recs.report.RecsReport`.

1. **Latency, rates and SLOs** come from the classifier monitor's own
   :class:`~taxiway.monitoring.windows.WindowStore` (``<state_folder>/windows``; a reference
   with no feature: only the service-level counts are kept), judged by
   :mod:`~taxiway.monitoring.monitor.service_level` and :mod:`~taxiway.monitoring.slo`.
2. **The recommendation windows** (:class:`~taxiway.monitoring.recs.windows.RecsStore`,
   ``<state_folder>/recs``) read the answers' lists and the outcomes after their own cursors,
   credit outcomes to impressions and judge answers whose horizon has passed.
3. **Findings and alerts** (:mod:`~taxiway.monitoring.recs.findings`) over the windows ending
   after ``since``.

Both stores read the log after their own cursor, so the log's new bytes are parsed twice (once
without the lists): the classifier's windows cannot carry the lists yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taxiway.monitoring.monitor.service_level import latency_finding, slo_findings
from taxiway.monitoring.profiles import NumericProfile, Profile
from taxiway.monitoring.recs.findings import (
    alerts_of,
    catalog_finding,
    click_through,
    fallback_finding,
    mix_finding,
    quality_finding,
)
from taxiway.monitoring.recs.inputs import CatalogFacts, RecsInputs
from taxiway.monitoring.recs.report import RecsReport
from taxiway.monitoring.recs.windows import LOG_PATTERN, RecsStore, RecsWindow, merge_windows
from taxiway.monitoring.windows import WindowStore, latency_profile
from taxiway.spec.models import Monitoring

__all__ = ["run_recs_monitor"]


@dataclass(frozen=True)
class _ServiceLevel:
    """The reference of the service-level windows: no feature, an output never logged."""

    features: dict[str, Profile] = field(default_factory=dict)
    output: NumericProfile = field(default_factory=latency_profile)


def run_recs_monitor(inputs: RecsInputs) -> RecsReport:
    """Update the windows from the logs' new records and judge them (see the module)."""
    spec = inputs.monitoring or Monitoring()
    k, m = spec.hysteresis.k, spec.hysteresis.m
    horizon = inputs.horizon or spec.recommend.horizon
    service = WindowStore(inputs.state_folder / "windows")
    levels = service.update(
        inputs.log_folder,
        LOG_PATTERN,
        _ServiceLevel(),
        window=inputs.window,
        budget_ms=inputs.budget_ms,
        version=inputs.version,
    )
    store = RecsStore(inputs.state_folder / "recs")
    windows = store.update(
        inputs.log_folder,
        inputs.outcomes_folder,
        window=inputs.window,
        version=inputs.version,
        catalog=inputs.catalog,
        k=inputs.k,
        horizon=horizon,
        interactions=inputs.interactions,
    )
    if inputs.since is not None:
        windows = [w for w in windows if w.end > inputs.since]
        levels = [w for w in levels if w.end > inputs.since]
    period = merge_windows(windows)
    progress = store.progress
    now = inputs.now or (progress.newest or period.end)
    latency = latency_finding(levels, inputs.budget_ms)
    slos = slo_findings(levels, spec, inputs.budget_ms, now, inputs.model) if levels else []
    fallback = fallback_finding(windows, period, k, m, watch=spec.recommend)
    metrics = inputs.metrics
    evaluated = metrics.get("evaluated_users")
    rows = int(evaluated) if isinstance(evaluated, int | float) else 0
    stages = metrics.get("stage_share")
    deciles = _stored_deciles(metrics.get("popularity_deciles"), inputs.catalog)
    mixes = [
        mix_finding(
            "stages",
            windows,
            lambda w: w.model_stages,
            stages if isinstance(stages, dict) else None,
            rows,
            spec,
            k,
            m,
        ),
        mix_finding(
            "popularity deciles",
            windows,
            _known_deciles,
            deciles,
            rows,
            spec,
            k,
            m,
        ),
    ]
    quality = quality_finding(
        windows,
        period,
        k=inputs.k,
        horizon_days=horizon.total_seconds() / 86400,
        metrics=metrics,
        monitoring=spec,
        pending=progress.pending,
        judged_until=progress.judged_until,
    )
    alerts = alerts_of(inputs.model, fallback, mixes, quality, latency, now)
    for _, fired in slos:
        alerts += fired
    notes = list(inputs.notes) + list(service.notes) + list(store.notes)
    if inputs.interactions is None:
        notes.append("no interactions source was given: realised quality is not judged")
    if progress.unjoined_outcomes:
        notes.append(
            f"{progress.unjoined_outcomes:,} outcome(s) named no item shown by a kept answer of "
            "this version (another version's, pruned, or an item not shown)"
        )
    if progress.dropped_unjudged:
        notes.append(
            f"{progress.dropped_unjudged:,} answer(s) dropped unjudged: the interactions source "
            "did not reach their horizon in time"
        )
    return RecsReport(
        model=inputs.model,
        version=inputs.version,
        generated_at=datetime.now(UTC),
        start=windows[0].start,
        end=windows[-1].end,
        windows=len(windows),
        answers=period.answers,
        window_s=inputs.window.total_seconds(),
        hysteresis=(k, m),
        fallback=fallback,
        catalog=catalog_finding(windows, period, inputs.catalog, metrics),
        click_through=click_through(period, inputs.outcome_name),
        quality=quality,
        mixes=mixes,
        latency=latency,
        slo=[s for s, _ in slos],
        alerts=alerts,
        state={
            "kept_answers": progress.kept,
            "pending_judgement": progress.pending,
            "newest_answer": None if progress.newest is None else progress.newest.isoformat(),
        },
        notes=notes,
    )


def _known_deciles(w: RecsWindow) -> dict[str, int]:
    """The slots' popularity deciles, items unknown to the catalog left out."""
    return {d: n for d, n in w.model_deciles.items() if d != "unknown"}


def _stored_deciles(stored: object, catalog: CatalogFacts) -> dict[str, Any] | None:
    """The evaluation's slot shares per popularity decile stored at training
    (``metrics["popularity_deciles"]["served"]``), when they label the same catalog (as many
    items as the version's); None otherwise (the first window is then the reference)."""
    if not isinstance(stored, dict) or stored.get("items") != len(catalog.items):
        return None
    served = stored.get("served")
    return served if isinstance(served, dict) and served else None
