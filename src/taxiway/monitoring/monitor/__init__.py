"""One monitor run: the prediction log's new records into windows, each window judged against
the version's stored reference, and the findings as one :class:`MonitorReport`.

The parts: :mod:`~taxiway.monitoring.monitor.drift` (per feature and window),
:mod:`~taxiway.monitoring.monitor.service_level` (latency, rates, SLOs),
:mod:`~taxiway.monitoring.monitor.quality_watch` (estimated and realised quality, drivers),
:mod:`~taxiway.monitoring.monitor.kept_predictions` (what the outcomes join to),
:mod:`~taxiway.monitoring.monitor.alerting` (what pages, what makes a ticket).

What a run does, in order:

1. **Windows.** The :class:`~taxiway.monitoring.windows.WindowStore` in ``state_folder``
   reads only the log's bytes after its cursor and profiles them into fixed windows
   (``window``, default 1 h) of the monitored version; ``since`` keeps the windows ending
   after it. No run reads the training data or the whole log again. Windows profiled
   elsewhere (``inputs.windows``: on Spark) are judged instead.
2. **Drift**, per feature and for the output, per window: the statistic the reference names
   (``between`` the reference profile and the window's) against the threshold for that
   window's size (calibrated at training: :func:`~taxiway.monitoring.calibration.threshold_for`),
   or the spec's fixed ``alert_threshold``. A window with fewer than :data:`MIN_ROWS` rows is
   not judged; one with fewer known values than that is judged on its missing share alone. A
   window is also *over* when its missing share rose significantly above the reference's (a
   source that started sending nulls, or text where numbers were, moves no statistic of the
   known values). Status: ``drift`` when ``k`` of the last ``m`` judged
   windows are over (hysteresis, default 2 of 3; fewer windows are judged as they come),
   ``warn`` when only the latest is, else ``ok``. A feature's ``value`` and ``threshold`` are
   the latest judged window's. The KS p-value is shown for numbers, for diagnosis only.
3. **Latency**: p50/p99 of ``latency_ms`` per window (the windows' KLL sketches) against the
   budget and the previous window; the period's fallback, degraded and error rates.
4. **SLOs**: burn rates over 5m..3d from the per-minute counts, as of the log's last minute
   (:mod:`~taxiway.monitoring.slo`), and each window's own burn for the chart.
5. **Quality.** *Estimated* (CBPE, classifiers whose calibration was trusted at training) from
   the output's KLL sketch: :data:`SCORE_POINTS` equal-mass quantiles stand for the window's
   scores. The estimate depends on the scores only through their distribution, so the sketch's
   rank error (about 1.3% at k = 200) bounds what this costs, and no score is kept: any period
   is a merge. *Realised* from the outcomes joined to the predictions (by ``request_id``, else
   unit and time): the run keeps ``request_id``, ``unit``, ``ts`` and the score of each
   prediction of the version (``predictions.jsonl`` in ``state_folder``, read incrementally
   like the windows), since an outcome may come days after its prediction. *Drivers*: the
   features whose per-window drift correlates with the per-window quality.
6. **Alerts** (:class:`~taxiway.monitoring.alerts.Alert`): quality below its floor, SLO burn
   and contract breaches page; a drifted feature or output, and a p99 over budget, make a
   ticket that says where to look (the feature's view and source); p-values never alert.
   ``healthy`` when no page or ticket fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from taxiway.errors import MonitoringError
from taxiway.monitoring.monitor.alerting import alerts_of
from taxiway.monitoring.monitor.drift import MIN_ROWS, judge
from taxiway.monitoring.monitor.inputs import MonitorInputs
from taxiway.monitoring.monitor.kept_predictions import LOG_PATTERN, keep_predictions
from taxiway.monitoring.monitor.quality_watch import SCORE_POINTS, quality_finding
from taxiway.monitoring.monitor.service_level import latency_finding, rates_of, slo_findings
from taxiway.monitoring.monitor.times import aware
from taxiway.monitoring.reference import OUTPUT, Reference, load_reference
from taxiway.monitoring.report.model import MonitorReport, Period
from taxiway.monitoring.windows import Window, WindowStore
from taxiway.spec.models import Monitoring

__all__ = ["LOG_PATTERN", "MIN_ROWS", "OUTPUT", "SCORE_POINTS", "MonitorInputs", "run_monitor"]


def run_monitor(inputs: MonitorInputs) -> MonitorReport:
    """Update the windows from the log's new records and judge them (see the module)."""
    spec = inputs.monitoring or Monitoring()
    reference = load_reference(inputs.reference)
    windows, notes = _windows(inputs, reference)
    k, m = spec.hysteresis.k, spec.hysteresis.m
    sources = inputs.sources or {}
    features = [
        judge(name, profile, reference, windows, spec, sources.get(name), k, m)
        for name, profile in reference.features.items()
    ]
    output = (
        judge("(output)", reference.output, reference, windows, spec, "the model", k, m,
               key=OUTPUT)
        if reference.output is not None
        else None
    )  # fmt: skip
    now = inputs.now or _log_end(windows)
    latency = latency_finding(windows, inputs.budget_ms)
    slos = slo_findings(windows, spec, inputs.budget_ms, now, inputs.model)
    quality = quality_finding(inputs, spec, windows, features)
    alerts = alerts_of(inputs, features, output, latency, slos, quality, now)
    return MonitorReport(
        model=inputs.model,
        version=inputs.version,
        generated_at=datetime.now(UTC),
        period=Period(
            windows[0].start, windows[-1].end, len(windows), sum(w.requests for w in windows)
        ),
        features=features,
        output=output,
        latency=latency,
        rates=rates_of(windows),
        slo=[s for s, _ in slos],
        quality=quality,
        alerts=alerts,
        window_s=inputs.window.total_seconds(),
        hysteresis=(k, m),
        threshold_mode=(
            "calibrated to each window's size"
            if spec.alert_threshold is None
            else f"fixed at {spec.alert_threshold:g}"
        ),
        versions=_versions(windows),
        notes=[*inputs.notes, *notes],
    )


# --- windows -------------------------------------------------------------------------------


def _windows(inputs: MonitorInputs, reference: Reference) -> tuple[list[Window], list[str]]:
    folder = inputs.log_folder
    if not folder.is_dir() or not any(folder.glob(LOG_PATTERN)):
        raise MonitoringError(
            f"no prediction log at {folder}: nothing has been served yet",
            fix="serve the model first (`taxiway serve`) so its answers are logged, or point "
            "serving.log.path at the folder that holds the log",
        )
    notes: list[str] = []
    if inputs.windows is not None:
        windows = list(inputs.windows)
    else:
        store = WindowStore(inputs.state_folder / "windows")
        windows = store.update(
            folder,
            LOG_PATTERN,
            reference,
            window=inputs.window,
            budget_ms=inputs.budget_ms,
            version=inputs.version,
        )
        notes = list(store.notes)
    keep_predictions(inputs)
    if inputs.since is not None:
        since = aware(inputs.since)
        windows = [w for w in windows if w.end > since]
    windows = [w for w in windows if _profiled(w)]
    if not windows:
        after = f" after {inputs.since:%Y-%m-%d %H:%M}" if inputs.since is not None else ""
        raise MonitoringError(
            f"the prediction log at {folder} holds no answers of {inputs.model} "
            f"v{inputs.version}{after}",
            fix="serve this version (promote it, then `taxiway serve`), or choose another "
            "with --model-version, or an earlier --since",
        )
    return windows, notes


def _profiled(window: Window) -> bool:
    """Whether the window holds answers of the monitored version (others only count)."""
    return window.profiled > 0


def _log_end(windows: Sequence[Window]) -> datetime:
    minutes = [key for w in windows for key in w.minutes]
    if not minutes:
        return windows[-1].end
    last = datetime.fromisoformat(max(minutes))
    return aware(last) + timedelta(minutes=1)


def _versions(windows: Sequence[Window]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in windows:
        for version, n in w.versions.items():
            counts[str(version)] = counts.get(str(version), 0) + n
    return counts
