"""One monitor run: the prediction log's new records into windows, each window judged against
the version's stored reference, and the findings as one :class:`MonitorReport`.

What a run does, in order:

1. **Windows.** The :class:`~taxiway.monitoring.windows.WindowStore` in ``state_folder``
   reads only the log's bytes after its cursor and profiles them into fixed windows
   (``window``, default 1 h) of the monitored version; ``since`` keeps the windows ending
   after it. No run reads the training data or the whole log again.
2. **Drift**, per feature and for the output, per window: the statistic the reference names
   (``between`` the reference profile and the window's) against the threshold for that
   window's size (calibrated at training: :func:`~taxiway.monitoring.calibration.threshold_for`),
   or the spec's fixed ``alert_threshold``. A window with fewer than :data:`MIN_ROWS` known
   values is not judged. A window is also *over* when its missing share rose
   significantly above the reference's (a source that started sending nulls moves no
   statistic of the known values). Status: ``drift`` when ``k`` of the last ``m`` judged
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

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from taxiway.errors import MonitoringError
from taxiway.monitoring.alerts import Alert, hysteresis
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.quality import (
    estimated,
    rank_drivers,
    read_outcomes,
    realised,
    realised_by_window,
)
from taxiway.monitoring.quality_join import epochs
from taxiway.monitoring.reference import OUTPUT, Reference, load_reference
from taxiway.monitoring.report.model import (
    Bins,
    DriftFinding,
    LatencyFinding,
    LatencyWindow,
    MonitorReport,
    Period,
    QualityFinding,
    QualityPoint,
    Rates,
    SloFinding,
    Status,
    WindowJudgement,
)
from taxiway.monitoring.segments import LogCursor, read_new
from taxiway.monitoring.slo import SloSpec, burn_rates, slo_alerts
from taxiway.monitoring.statistics import STATISTICS
from taxiway.monitoring.statistics.ks import ks_pvalue
from taxiway.monitoring.windows import Window, WindowStore
from taxiway.spec.models import Monitoring

__all__ = [
    "LOG_PATTERN",
    "MIN_ROWS",
    "OUTPUT",
    "SCORE_POINTS",
    "MonitorInputs",
    "run_monitor",
]

LOG_PATTERN = "predictions-*.jsonl"
"""The prediction log's file names (and the outcomes log's: the same writer)."""
MIN_ROWS = 50
"""Known values a window needs before its drift is judged (fewer: shown, not judged)."""
SCORE_POINTS = 1_000
"""Equal-mass quantiles of the output's sketch that stand for a window's scores in CBPE."""
MIN_QUALITY_ROWS = 100
"""Scores (estimated) or joined outcomes (realised) a quality figure needs to page."""
QUALITY_MARGIN = 0.05
"""Without ``monitoring.quality.min``, page this far below the training-time value (for
metrics in [0, 1])."""
_KEPT_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", pa.string()),
    pa.field("unit", pa.string()),
    pa.field("ts", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("prediction", pa.float64()),
]
_KEPT = pa.schema(_KEPT_FIELDS)
_KEPT_KEYS = ("request_id", "unit", "ts", "prediction")
"""The columns of each prediction kept for the outcomes' join."""
_LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss", "calibration_error"})
_MISSING_JUMP = 0.05
_CHART_CATEGORIES = 10


@dataclass(frozen=True)
class MonitorInputs:
    """Everything a run needs, as plain data (callers above resolve the spec and registry).

    ``reference`` is the version's stored monitor reference (``profile["monitor"]``);
    ``state_folder`` is where this version's monitor keeps its windows, cursor and
    predictions (the CLI uses ``<state>/monitor/<model>-v<version>``); ``contracts`` maps a
    source to its latest contract result (``{"status": "pass"|"warn"|"fail", "detail",
    "at"}``): a ``fail`` pages. ``sources`` maps a feature to where it comes from (``view
    customer_orders, source orders``) for the alerts. ``now``: the time the SLO burn is
    judged at (default: the end of the log's last minute).
    """

    name: str
    model: str
    version: int
    reference: dict[str, Any]
    log_folder: Path
    outcomes_folder: Path | None
    state_folder: Path
    window: timedelta
    since: datetime | None
    budget_ms: float | None
    monitoring: Monitoring | None
    task: str
    contracts: dict[str, Any] | None
    sources: dict[str, str] | None = None
    outcome_name: str | None = None
    now: datetime | None = None
    notes: list[str] = field(default_factory=list)


def run_monitor(inputs: MonitorInputs) -> MonitorReport:
    """Update the windows from the log's new records and judge them (see the module)."""
    spec = inputs.monitoring or Monitoring()
    reference = load_reference(inputs.reference)
    windows, notes = _windows(inputs, reference)
    k, m = spec.hysteresis.k, spec.hysteresis.m
    sources = inputs.sources or {}
    features = [
        _judge(name, profile, reference, windows, spec, sources.get(name), k, m)
        for name, profile in reference.features.items()
    ]
    output = (
        _judge("(output)", reference.output, reference, windows, spec, "the model", k, m,
               key=OUTPUT)
        if reference.output is not None
        else None
    )  # fmt: skip
    now = inputs.now or _log_end(windows)
    latency = _latency(windows, inputs.budget_ms)
    slos = _slos(windows, spec, inputs.budget_ms, now)
    quality = _quality(inputs, spec, windows, features)
    alerts = _alerts(inputs, features, output, latency, slos, quality, now)
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
        rates=_rates(windows),
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
    store = WindowStore(inputs.state_folder / "windows")
    windows = store.update(
        folder,
        LOG_PATTERN,
        reference,
        window=inputs.window,
        budget_ms=inputs.budget_ms,
        version=inputs.version,
    )
    _keep_predictions(inputs)
    if inputs.since is not None:
        since = _aware(inputs.since)
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
    return windows, list(store.notes)


def _profiled(window: Window) -> bool:
    """Whether the window holds answers of the monitored version (others only count)."""
    return window.profiled > 0


def _log_end(windows: Sequence[Window]) -> datetime:
    minutes = [key for w in windows for key in w.minutes]
    if not minutes:
        return windows[-1].end
    last = datetime.fromisoformat(max(minutes))
    return _aware(last) + timedelta(minutes=1)


def _versions(windows: Sequence[Window]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in windows:
        for version, n in w.versions.items():
            counts[str(version)] = counts.get(str(version), 0) + n
    return counts


# --- drift ---------------------------------------------------------------------------------


def _judge(
    name: str,
    ref: Profile,
    reference: Reference,
    windows: Sequence[Window],
    spec: Monitoring,
    source: str | None,
    k: int,
    m: int,
    *,
    key: str | None = None,
) -> DriftFinding:
    """The feature's (or output's) verdict in every window, and its status after the last."""
    key = key or name
    threshold = reference.thresholds.get(key)
    statistic_name = threshold.statistic if threshold is not None else _default_statistic(ref)
    statistic = STATISTICS[statistic_name]
    ref_missing = ref.missing / ref.rows if ref.rows else 0.0
    history: list[WindowJudgement] = []
    verdicts: list[bool] = []
    reasons: list[str] = []
    for w in windows:
        current = w.output if key == OUTPUT else w.features.get(name)
        rows = 0 if current is None else current.rows
        if current is None or rows < MIN_ROWS:
            history.append(WindowJudgement(w.start, rows, None, None, False, _last(history), False))
            continue
        value = limit = None
        if current.known >= MIN_ROWS:  # else only the missing share is judged
            value = float(statistic.between(ref, current))
            limit = (
                spec.alert_threshold
                if spec.alert_threshold is not None
                else threshold.at(current.known)
                if threshold is not None
                else math.inf
            )
        moved = value is not None and limit is not None and value > limit
        jump = _missing_jump(ref_missing, current)
        over = moved or jump is not None
        verdicts.append(over)
        reasons.append(
            "; ".join(
                part
                for part in (f"{statistic_name} {value:.4g} > {limit:.4g}" if moved else "", jump)
                if part
            )
        )
        status: Status = "drift" if hysteresis(verdicts, k, m) else "warn" if over else "ok"
        history.append(WindowJudgement(w.start, rows, value, limit, over, status))
    judged = [h for h in history if h.judged]
    last = judged[-1] if judged else None
    period = _period_profile(ref, windows, name, key)
    latest = _latest_profile(windows, name, key)
    status = last.status if last is not None else "ok"
    return DriftFinding(
        name=name,
        kind=ref.kind,
        statistic=statistic_name,
        value=None if last is None else last.value,
        threshold=None if last is None else last.threshold,
        status=status,
        windows=len(judged),
        rows=period.known if period is not None else 0,
        missing_share=(latest.missing / latest.rows) if latest and latest.rows else None,
        reference_missing_share=ref_missing,
        out_of_range_share=_out_of_range(latest),
        p_value=_p_value(ref, latest),
        history=history,
        reference=_bins(ref, ref),
        current=_bins(ref, period) if period is not None else Bins([], []),
        source=source,
        why=_why(status, verdicts, reasons, k, m, len(judged)),
    )


def _default_statistic(ref: Profile) -> str:
    return "psi" if isinstance(ref, NumericProfile) else "chi2"


def _last(history: Sequence[WindowJudgement]) -> Status:
    return history[-1].status if history else "ok"


def _missing_jump(ref_share: float, current: Profile) -> str | None:
    """Why the window's missing share is a change, or None: more than 5 points above the
    reference's and more than 4 standard errors of a binomial at the reference's share."""
    if not current.rows:
        return None
    share = current.missing / current.rows
    noise = 4 * math.sqrt(max(ref_share * (1 - ref_share), 1e-12) / current.rows)
    if share - ref_share > max(_MISSING_JUMP, noise):
        return f"missing {share:.1%} (reference {ref_share:.1%})"
    return None


def _why(
    status: Status, verdicts: Sequence[bool], reasons: Sequence[str], k: int, m: int, judged: int
) -> str:
    if not judged:
        return f"not judged: no window has {MIN_ROWS} rows yet"
    last = list(zip(verdicts, reasons, strict=True))[-m:]
    overs = [r for over, r in last if over]
    if status == "drift":
        return f"over in {len(overs)} of the last {len(last)} windows ({overs[-1]})"
    if status == "warn":
        return f"over in the latest window only ({overs[-1]}); drift once {k} of {m} are"
    return f"within the threshold ({len(overs)} of the last {len(last)} windows over)"


def _period_profile(ref: Profile, windows: Sequence[Window], name: str, key: str) -> Profile | None:
    profiles = [w.output if key == OUTPUT else w.features.get(name) for w in windows]
    merged: Profile | None = None
    for p in profiles:
        if p is None:
            continue
        merged = p if merged is None else merged.merge(p)
    return merged


def _latest_profile(windows: Sequence[Window], name: str, key: str) -> Profile | None:
    for w in reversed(windows):
        p = w.output if key == OUTPUT else w.features.get(name)
        if p is not None and p.rows:
            return p
    return None


def _out_of_range(profile: Profile | None) -> float | None:
    if not isinstance(profile, NumericProfile) or not profile.known:
        return None
    return (profile.below + profile.above) / profile.known


def _p_value(ref: Profile, current: Profile | None) -> float | None:
    """The KS p-value of the latest window (numbers only): diagnosis, never an alert."""
    if not isinstance(ref, NumericProfile) or not isinstance(current, NumericProfile):
        return None
    if not current.known or not ref.known:
        return None
    d = float(STATISTICS["ks"].between(ref, current))
    return ks_pvalue(d, ref.known, current.known)


def _bins(ref: Profile, profile: Profile) -> Bins:
    """The distribution as a chart draws it: the reference's deciles, or its most common
    categories and the rest."""
    if isinstance(ref, NumericProfile) and isinstance(profile, NumericProfile):
        counts = profile.decile_counts().astype(np.float64)
        total = counts.sum() or 1.0
        edges = ref.edges
        labels = [f"≤{edges[10 * i + 9]:.3g}" for i in range(9)] + [f">{edges[89]:.3g}"]
        return Bins(labels, [float(c / total) for c in counts])
    if isinstance(ref, CategoricalProfile) and isinstance(profile, CategoricalProfile):
        top = sorted(ref.counts, key=lambda c: (-ref.counts[c], c))[:_CHART_CATEGORIES]
        total = sum(profile.counts.values()) or 1
        shares = [profile.counts.get(c, 0) / total for c in top]
        rest = 1.0 - sum(shares) if profile.counts else 0.0
        return Bins([*top, "other"], [*shares, max(0.0, rest)])
    return Bins([], [])


# --- latency, rates and SLOs ----------------------------------------------------------------


def _latency(windows: Sequence[Window], budget_ms: float | None) -> LatencyFinding:
    rows = []
    for w in windows:
        p50, p99 = (None, None)
        if w.latency.known:
            p50, p99 = (float(q) for q in w.latency.quantiles([0.5, 0.99]))
        rows.append(LatencyWindow(w.start, w.requests, p50, p99, w.slow))
    measured = [r for r in rows if r.p99 is not None]
    last = measured[-1] if measured else None
    previous = measured[-2] if len(measured) > 1 else None
    return LatencyFinding(
        p50=last.p50 if last else None,
        p99=last.p99 if last else None,
        budget_ms=budget_ms,
        previous_p99=previous.p99 if previous else None,
        windows=rows,
    )


def _rates(windows: Sequence[Window]) -> Rates:
    requests = sum(w.requests for w in windows)

    def share(count: int) -> float | None:
        return count / requests if requests else None

    return Rates(
        requests=requests,
        fallback=share(sum(w.fallbacks for w in windows)),
        degraded=share(sum(w.degraded for w in windows)),
        error=share(sum(w.errors for w in windows)),
    )


def _slos(
    windows: Sequence[Window], spec: Monitoring, budget_ms: float | None, now: datetime
) -> list[tuple[SloFinding, list[Alert]]]:
    minutes: dict[str, list[int]] = {}
    for w in windows:
        for key, counts in w.minutes.items():
            held = minutes.setdefault(key, [0, 0, 0])
            for i, n in enumerate(counts[:3]):
                held[i] += int(n)
    found = []
    objectives: list[tuple[Literal["latency", "errors"], float | None]] = [
        ("latency", spec.slo.latency if budget_ms is not None else None),
        ("errors", spec.slo.errors),
    ]
    for name, objective in objectives:
        if objective is None:
            continue
        slo = SloSpec(name, objective, spec.slo.period)
        rates = burn_rates(minutes, slo, now)
        alerts = slo_alerts(rates, slo, now=now)
        status = cast(Literal["ok", "ticket", "page"], alerts[0].severity if alerts else "ok")
        history = [
            (w.start, (_bad(w, name) / w.requests) / slo.budget if w.requests else None)
            for w in windows
        ]
        finding = SloFinding(
            name, objective, slo.period.total_seconds() / 86400, rates, status, history
        )
        found.append((finding, alerts))
    return found


def _bad(window: Window, slo: str) -> int:
    return window.slow if slo == "latency" else window.errors


# --- quality ---------------------------------------------------------------------------------


def _quality(
    inputs: MonitorInputs,
    spec: Monitoring,
    windows: Sequence[Window],
    features: Sequence[DriftFinding],
) -> QualityFinding:
    ref = inputs.reference.get("quality")
    task = inputs.task
    metric = spec.quality.metric or ("roc_auc" if task == "classification" else "mae")
    reference_value = _reference_metric(ref, metric)
    minimum = spec.quality.min
    in_unit = reference_value is not None and 0.0 <= reference_value <= 1.0
    if minimum is None and in_unit and metric not in _LOWER_IS_BETTER:
        assert reference_value is not None
        minimum = reference_value - QUALITY_MARGIN
    estimate, why, estimates = _estimated(ref, windows, metric)
    found, realised_series = _realised(inputs, windows, metric)
    # one kind of quality per series: realised where 3 windows have it, else the estimate
    known = sum(r is not None for r in realised_series)
    series = realised_series if known >= 3 else estimates
    # drivers: the drifting features (warn or drift) whose drift moves with the quality
    drift = {f.name: [h.value for h in f.history] for f in features if f.status != "ok"}
    drivers = rank_drivers(drift, series)
    history = [
        QualityPoint(w.start, e, r)
        for w, e, r in zip(windows, estimates, realised_series, strict=True)
    ]
    return QualityFinding(
        metric=metric,
        estimated=estimate,
        realised=found,
        minimum=minimum,
        reference=reference_value,
        drivers=drivers,
        history=history,
        estimated_why=why,
    )


def _estimated(
    ref: Any, windows: Sequence[Window], metric: str
) -> tuple[dict[str, Any] | None, str | None, list[float | None]]:
    """The CBPE estimate over the period (with the latest window's under ``window``), why
    there is none, and the estimate per window."""
    none: list[float | None] = [None] * len(windows)
    if not isinstance(ref, dict):
        return None, "no quality reference is stored with this version: retrain to add one", none
    period = _merge([w.output for w in windows])
    whole = estimated(_scores(period), ref)
    if whole.method is None:
        return None, whole.reason, none
    per_window = [
        _estimate(w.output, ref) if w.output.known >= MIN_QUALITY_ROWS else None for w in windows
    ]
    series = [None if e is None else _metric_of(e, metric) for e in per_window]
    found: dict[str, Any] = {**whole.to_dict(), "rows": period.known}
    found["trusted"] = bool(ref.get("trusted"))
    found["why"] = ref.get("why")
    latest = next(
        ((w, e) for w, e in zip(reversed(windows), reversed(per_window), strict=True) if e),
        None,
    )
    found["window"] = (
        None if latest is None else {"start": latest[0].start.isoformat(), **latest[1]}
    )
    return found, None, series


def _estimate(output: Profile, ref: dict[str, Any]) -> dict[str, Any]:
    """The CBPE estimate of one window, ``rows`` its real answers (not the quantiles')."""
    return {**estimated(_scores(output), ref).to_dict(), "rows": output.known}


def _reference_metric(ref: Any, metric: str) -> float | None:
    if not isinstance(ref, dict):
        return None
    metrics = ref.get("metrics")
    value = metrics.get(metric) if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _metric_of(d: Mapping[str, Any], metric: str) -> float | None:
    value = d.get(metric)
    if value is None and isinstance(d.get("metrics"), Mapping):
        value = d["metrics"].get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _scores(profile: Profile) -> np.ndarray:
    """:data:`SCORE_POINTS` equal-mass quantiles of a numeric output: a stand-in sample."""
    if not isinstance(profile, NumericProfile) or not profile.known:
        return np.zeros(0)
    qs = (np.arange(SCORE_POINTS) + 0.5) / SCORE_POINTS
    return np.asarray(profile.quantiles(qs.tolist()), dtype=np.float64)


def _merge(profiles: Sequence[Profile]) -> Profile:
    merged = profiles[0]
    for p in profiles[1:]:
        merged = merged.merge(p)
    return merged


def _realised(
    inputs: MonitorInputs, windows: Sequence[Window], metric: str
) -> tuple[dict[str, Any] | None, list[float | None]]:
    """Realised quality over the period and per window, from the joined outcomes."""
    nothing: list[float | None] = [None] * len(windows)
    folder = inputs.outcomes_folder
    if folder is None or not folder.is_dir() or not any(folder.glob(LOG_PATTERN)):
        return None, nothing
    outcomes = read_outcomes(folder, inputs.outcome_name)
    if not outcomes:
        return None, nothing
    kept = _load_predictions(inputs.state_folder)
    times = epochs(kept["ts"])
    inside = (times >= windows[0].start.timestamp()) & (times < windows[-1].end.timestamp())
    if not inside.any():
        return None, nothing
    predictions = {key: values[inside] for key, values in kept.items()}
    task: Literal["classification", "regression"] = (
        "classification" if inputs.task == "classification" else "regression"
    )
    whole = realised(predictions, outcomes, task)
    spans = [(w.start, w.end) for w in windows]
    per_window = [
        _metric_of(q.metrics, metric) if q.rows >= MIN_QUALITY_ROWS else None
        for q in realised_by_window(predictions, outcomes, task, spans)
    ]
    join = whole.to_dict()
    metrics = join.pop("metrics")
    found = {"rows": whole.rows, "joined": whole.joined, **metrics, "join": join}
    return found, per_window


def _keep_predictions(inputs: MonitorInputs) -> None:
    """Append the new predictions of the version (id, unit, time, score) to the folder's
    ``predictions.jsonl``: outcomes join to them, however late they come."""
    folder = inputs.state_folder
    folder.mkdir(parents=True, exist_ok=True)
    cursor_path = folder / "predictions.cursor.json"
    cursor = (
        LogCursor.from_dict(orjson.loads(cursor_path.read_bytes()))
        if cursor_path.exists()
        else LogCursor()
    )
    table, cursor = read_new(inputs.log_folder, LOG_PATTERN, cursor, schema=_KEPT)
    kept = [
        r
        for r in table.to_pylist()
        if r.get("model_version") == inputs.version and r.get("prediction") is not None
    ]
    if kept:
        lines = b"".join(orjson.dumps({k: r[k] for k in _KEPT_KEYS}) + b"\n" for r in kept)
        with (folder / "predictions.jsonl").open("a+b") as out:
            if out.tell():  # after a line torn by a crash, start a new one
                out.seek(-1, 2)
                if out.read(1) != b"\n":
                    lines = b"\n" + lines
            out.write(lines)
    scratch = cursor_path.with_suffix(".tmp")
    scratch.write_bytes(orjson.dumps(cursor.to_dict()))
    scratch.replace(cursor_path)


def _load_predictions(folder: Path) -> dict[str, np.ndarray]:
    """The kept predictions as columns (``request_id``, ``unit``, ``ts``, ``prediction``)."""
    path = folder / "predictions.jsonl"
    schema = pa.schema([f for f in _KEPT_FIELDS if f.name in _KEPT_KEYS])
    try:
        table = pa_json.read_json(path, parse_options=pa_json.ParseOptions(explicit_schema=schema))
    except FileNotFoundError:
        table = schema.empty_table()
    except pa.ArrowInvalid:  # a line torn by a crash while appending: read line by line
        records = []
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict):
                    records.append({key: record.get(key) for key in _KEPT_KEYS})
        table = pa.Table.from_pylist(records, schema=schema)
    columns = {
        key: np.asarray(table.column(key).to_pylist(), dtype=object)
        for key in ("request_id", "unit", "ts")
    }
    prediction = table.column("prediction").to_numpy(zero_copy_only=False)  # null: NaN
    columns["prediction"] = np.asarray(prediction, dtype=np.float64)
    return columns


def _time(text: str) -> datetime:
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


# --- alerts ----------------------------------------------------------------------------------


def _alerts(
    inputs: MonitorInputs,
    features: Sequence[DriftFinding],
    output: DriftFinding | None,
    latency: LatencyFinding,
    slos: Sequence[tuple[SloFinding, list[Alert]]],
    quality: QualityFinding,
    now: datetime,
) -> list[Alert]:
    model = inputs.model
    alerts: list[Alert] = []
    alerts += _quality_alerts(model, quality, features, now)
    for _, fired in slos:
        alerts += fired
    alerts += _contract_alerts(inputs.contracts or {}, now)
    for f in [*features, *([output] if output is not None else [])]:
        if f.status != "drift":
            continue
        what = "the output" if f is output else f"feature {f.name}"
        since = _since(f)
        alerts.append(
            Alert(
                key=f"drift:{model}:{OUTPUT if f is output else f.name}",
                kind="drift",
                severity="ticket",
                title=f"{what} drifted",
                detail=(
                    f.why
                    + (
                        ""
                        if "missing" in f.why
                        else f"; missing {_pct(f.missing_share)} (reference "
                        f"{_pct(f.reference_missing_share)})"
                    )
                    + f"; out of range {_pct(f.out_of_range_share)}"
                    + (
                        f"; KS p-value {f.p_value:.2g} (diagnosis only)"
                        if f.p_value is not None
                        else ""
                    )
                ),
                value=f.value,
                threshold=f.threshold,
                since=since,
                where=f.source,
            )
        )
    if (
        latency.budget_ms is not None
        and latency.p99 is not None
        and latency.p99 > latency.budget_ms
    ):
        alerts.append(
            Alert(
                key=f"latency:{model}:p99",
                kind="latency",
                severity="ticket",
                title=f"p99 latency {latency.p99:.4g} ms over the {latency.budget_ms:g} ms budget",
                detail=(
                    "in the latest window"
                    + (
                        f" (the window before: {latency.previous_p99:.4g} ms)"
                        if latency.previous_p99 is not None
                        else ""
                    )
                ),
                value=latency.p99,
                threshold=latency.budget_ms,
                since=latency.windows[-1].start,
                where="latency by answer path and arm (online-store lookups, the model, fallbacks)",
            )
        )
    return alerts


def _quality_alerts(
    model: str, q: QualityFinding, features: Sequence[DriftFinding], now: datetime
) -> list[Alert]:
    if q.minimum is None or q.metric is None:
        return []
    lower = q.metric in _LOWER_IS_BETTER
    # only a feature that moved can explain a quality change: drivers rank those first
    drifted = {f.name for f in features if f.status != "ok"}
    ranked = [n for n, _ in q.drivers if n in drifted]
    ranked += sorted(drifted - set(ranked))
    by_name = {f.name: f for f in features}
    look = ", ".join(
        f"{n}" + (f" ({by_name[n].source})" if n in by_name and by_name[n].source else "")
        for n in ranked[:3]
    )
    alerts = []
    latest = _get(q.estimated, "window")
    for kind, found, value, rows in (
        ("realised", q.realised, _get(q.realised, q.metric), _get(q.realised, "rows")),
        ("estimated", q.estimated, _get(latest, q.metric), _get(latest, "rows")),
    ):
        if found is None or value is None or (rows or 0) < MIN_QUALITY_ROWS:
            continue
        if kind == "estimated" and not found.get("trusted"):
            continue
        bad = value > q.minimum if lower else value < q.minimum
        if not bad:
            continue
        word = "above" if lower else "below"
        alerts.append(
            Alert(
                key=f"quality:{model}:{kind}",
                kind="quality",
                severity="page",
                title=f"{kind} {q.metric} {value:.4g} {word} {q.minimum:.4g}",
                detail=(
                    f"{kind} over {int(rows or 0):,} "
                    + (
                        "joined outcomes"
                        if kind == "realised"
                        else "scores of the latest window (CBPE)"
                    )
                    + (
                        f"; training-time value {q.reference:.4g}"
                        if q.reference is not None
                        else ""
                    )
                    + (
                        f"; look first at: {look}"
                        if look
                        else "; no input drifted: a concept change?"
                    )
                ),
                value=value,
                threshold=q.minimum,
                since=now,
                where=look or None,
            )
        )
    return alerts


def _contract_alerts(contracts: Mapping[str, Any], now: datetime) -> list[Alert]:
    alerts = []
    for source, result in sorted(contracts.items()):
        if not isinstance(result, Mapping) or result.get("status") not in ("fail", "block"):
            continue
        at = result.get("at")
        alerts.append(
            Alert(
                key=f"contract:{source}",
                kind="contract",
                severity="page",
                title=f"source {source} breaks its data contract",
                detail=str(result.get("detail") or "its latest contract check failed"),
                value=None,
                threshold=None,
                since=_time(at) if isinstance(at, str) else now,
                where=f"source {source}",
            )
        )
    return alerts


def _since(f: DriftFinding) -> datetime:
    """The start of the first window of the streak the status stands on."""
    judged = [h for h in f.history if h.judged]
    since = judged[-1].start if judged else f.history[-1].start
    for h in reversed(judged):
        if not h.over and h.status == "ok":
            break
        if h.over:
            since = h.start
    return since


def _get(d: Mapping[str, Any] | None, key: str) -> Any:
    return None if d is None else d.get(key)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
