"""What the recommendation monitor finds in its windows, and the alerts it raises.

Each finding is a frozen dataclass with ``to_json``; :mod:`~taxiway.monitoring.recs.report`
lays every view out from them.

- :func:`fallback_finding`: per window, the share of *model fallbacks* (a fallback for any
  reason but ``no history``: the model could have answered a user and did not). A window with
  at least ``monitoring.recommend.min_answers`` answers (default 50) is *over* above
  ``monitoring.recommend.max_fallback_share`` (default 0.05); hysteresis
  (``monitoring.hysteresis``, 2 of 3) gives the status; a ``drift`` status raises a ticket, a
  page when the latest judged window is over :data:`BROKEN_SHARE` (the model is not answering).
  Unknown users' popularity answers are reported apart: they are expected, not a fault.
- :func:`catalog_finding`: coverage (distinct available items shown / items available now in
  the version's catalog) and the Gini of the slots over the available items (and any other
  item shown), both from :mod:`~taxiway.monitoring.recs.measures`, beside the evaluation's.
- :func:`click_through`: per outcome name and position, impressions credited with a positive
  outcome / impressions shown, with a 95% Wilson interval (impressions taken as independent:
  a user's correlated clicks make the interval optimistic).
- :func:`quality_finding`: realised recall@k of the answers judged, all users and users known
  at training (the population the evaluation scored), with its standard error; pages when the
  known users' figure (or, with fewer than :data:`MIN_JUDGED` of them, every user's) is below
  ``monitoring.quality.min`` by more than two standard errors.
- :func:`mix_finding`: the served mix of ``model`` answers (the stages filling the slots; the
  items' popularity deciles) against a reference: the evaluation's shares stored with the
  version when it has them (``metrics["stage_share"]``, ``metrics["popularity_deciles"]``),
  else the first window with ``min_answers`` model answers (said in ``reference``).
  The statistic is the classifier monitor's categorical one (chi-square, or L-inf) with its
  threshold calibrated to the window's size (:func:`~taxiway.monitoring.calibration.calibrate`
  on the reference's counts), or PSI against ``monitoring.alert_threshold`` when the spec fixes
  one. Slots of one answer are not independent (an answer's items mostly come from one
  stage), so every count is scaled to the number of answers (shares x answers): the sample
  size the calibration assumes is the answers', not the slots'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np

from taxiway.monitoring.alerts import Alert, hysteresis
from taxiway.monitoring.calibration import calibrate, threshold_for
from taxiway.monitoring.profiles import CategoricalProfile
from taxiway.monitoring.recs.inputs import CatalogFacts
from taxiway.monitoring.recs.measures import coverage, gini, wilson
from taxiway.monitoring.recs.windows import RecsWindow
from taxiway.monitoring.report.model import LatencyFinding, Status, WindowJudgement
from taxiway.monitoring.statistics import STATISTICS, default_statistic
from taxiway.spec.models import Monitoring, RecommendWatch

__all__ = [
    "BROKEN_SHARE",
    "MIN_JUDGED",
    "CatalogFinding",
    "ClickThrough",
    "FallbackFinding",
    "MixFinding",
    "QualityFinding",
    "alerts_of",
    "catalog_finding",
    "click_through",
    "fallback_finding",
    "mix_finding",
    "quality_finding",
]

BROKEN_SHARE: Final = 0.5
"""Over this share of model fallbacks in the latest window, the fallback alert pages."""
MIN_JUDGED: Final = 100
"""Judged answers (with later interactions) a realised figure needs before it pages."""


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _judgements(
    windows: Sequence[RecsWindow],
    value_of: Any,
    rows_of: Any,
    threshold_of: Any,
    k: int,
    m: int,
    min_rows: int,
) -> list[WindowJudgement]:
    """Per window: judged (at least ``min_rows``), its value against its threshold, over, and
    the status hysteresis gives after it (carried over by the unjudged)."""
    verdicts: list[bool] = []
    status: Status = "ok"
    out = []
    for w in windows:
        rows = int(rows_of(w))
        if rows < min_rows:
            out.append(WindowJudgement(w.start, rows, value_of(w), None, False, status, False))
            continue
        value, threshold = value_of(w), threshold_of(w, rows)
        over = value is not None and threshold is not None and value > threshold
        verdicts.append(over)
        status = "drift" if hysteresis(verdicts, k, m) else "warn" if over else "ok"
        out.append(WindowJudgement(w.start, rows, value, threshold, over, status))
    return out


# -- fallbacks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackFinding:
    """The period's answer paths and reasons; the model-fallback share judged per window."""

    answers: int
    fallback_share: float | None
    model_fallback_share: float | None
    degraded_share: float | None
    unknown_user_share: float | None
    no_history_share: float | None
    by_reason: dict[str, float]
    paths: dict[str, int]
    recent_answers: int
    recent_items: int
    unknown_recent_share: float | None
    threshold: float
    status: Status
    history: list[WindowJudgement]

    def to_json(self) -> dict[str, Any]:
        """Every field; ``history`` per window."""
        return {
            "answers": self.answers,
            "fallback_share": self.fallback_share,
            "model_fallback_share": self.model_fallback_share,
            "degraded_share": self.degraded_share,
            "unknown_user_share": self.unknown_user_share,
            "no_history_share": self.no_history_share,
            "by_reason": self.by_reason,
            "paths": self.paths,
            "recent_items": {
                "answers_with": self.recent_answers,
                "items": self.recent_items,
                "unknown_share": self.unknown_recent_share,
            },
            "threshold": self.threshold,
            "status": self.status,
            "history": [h.to_json() for h in self.history],
        }


def fallback_finding(
    windows: Sequence[RecsWindow], period: RecsWindow, k: int, m: int, *, watch: RecommendWatch
) -> FallbackFinding:
    """Paths, reasons, unknown users and recent items over the period; the model-fallback
    share per window against ``watch.max_fallback_share`` (windows of at least
    ``watch.min_answers`` answers), with hysteresis."""
    n = period.answers
    fallbacks = n - period.paths.get("model", 0)
    no_history = sum(v for r, v in period.reasons.items() if r.startswith("no history"))
    history = _judgements(
        windows,
        lambda w: _share(w.model_fallbacks, w.answers),
        lambda w: w.answers,
        lambda w, rows: watch.max_fallback_share,
        k,
        m,
        watch.min_answers,
    )
    judged = [h for h in history if h.judged]
    return FallbackFinding(
        answers=n,
        fallback_share=_share(fallbacks, n),
        model_fallback_share=_share(period.model_fallbacks, n),
        degraded_share=_share(period.degraded, n),
        unknown_user_share=_share(period.unknown_users, n),
        no_history_share=_share(no_history, n),
        by_reason={r: v / n for r, v in sorted(period.reasons.items(), key=lambda x: -x[1])},
        paths=dict(sorted(period.paths.items(), key=lambda x: -x[1])),
        recent_answers=period.with_recent,
        recent_items=period.recent_items,
        unknown_recent_share=_share(period.unknown_recent, period.recent_items),
        threshold=watch.max_fallback_share,
        status=judged[-1].status if judged else "ok",
        history=history,
    )


# -- catalog --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogFinding:
    """Coverage and Gini of the served items over the period and per window, beside the
    evaluation's figures (over its lists, on the whole catalog)."""

    available: int
    shown: int
    shown_unavailable: int
    coverage: float | None
    gini: float | None
    training: dict[str, float]
    history: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """Every field."""
        return {
            "available": self.available,
            "shown_items": self.shown,
            "shown_unavailable": self.shown_unavailable,
            "coverage": self.coverage,
            "gini": self.gini,
            "training": self.training,
            "history": self.history,
        }


def served_counts(items: Mapping[str, int], available: frozenset[str]) -> np.ndarray[Any, Any]:
    """The slot count of every available item (zeros included) and of any other item shown:
    the population coverage and Gini are measured over.

    >>> served_counts({"a": 3, "z": 1}, frozenset({"a", "b"})).tolist()
    [3, 0, 1]
    """
    on_offer = sorted(available)
    others = sorted(set(items) - available)
    return np.array([items.get(i, 0) for i in [*on_offer, *others]], dtype=np.int64)


def _coverage_and_gini(w: RecsWindow, catalog: CatalogFacts) -> tuple[float | None, float | None]:
    if not w.items or not catalog.available:
        return None, None
    on_offer = np.array([w.items.get(i, 0) for i in sorted(catalog.available)], dtype=np.int64)
    return coverage(on_offer), gini(served_counts(w.items, catalog.available))


def catalog_finding(
    windows: Sequence[RecsWindow],
    period: RecsWindow,
    catalog: CatalogFacts,
    metrics: Mapping[str, Any],
) -> CatalogFinding:
    """Coverage and Gini over the period and per window (see the module)."""
    cov, g = _coverage_and_gini(period, catalog)
    model = metrics.get("model") if isinstance(metrics.get("model"), Mapping) else {}
    training = {
        key: float(model[key])
        for key in ("coverage", "gini")
        if isinstance(model, Mapping) and isinstance(model.get(key), int | float)
    }
    history = []
    for w in windows:
        c, gw = _coverage_and_gini(w, catalog)
        history.append(
            {"start": w.start.isoformat(), "answers": w.answers, "coverage": c, "gini": gw}
        )
    return CatalogFinding(
        available=len(catalog.available),
        shown=len(period.items),
        shown_unavailable=len(set(period.items) - catalog.available),
        coverage=cov,
        gini=g,
        training=training,
        history=history,
    )


# -- click-through --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickThrough:
    """Per outcome name, per position: shows, impressions credited, the rate and its interval."""

    metric: str | None
    names: dict[str, list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        """``metric`` (the spec's rollout metric, when posted) and ``by_name``."""
        return {"metric": self.metric, "by_name": self.names}


def click_through(period: RecsWindow, metric: str | None) -> ClickThrough:
    """Click-through by position for every outcome name posted (see the module).

    >>> from datetime import UTC
    >>> t = datetime(2026, 12, 6, tzinfo=UTC)
    >>> w = RecsWindow(t, t, shown=[100, 100], clicks={"click": [10]})
    >>> [(r["position"], r["shows"], r["hits"], r["rate"]) for r in
    ...  click_through(w, "click").names["click"]]
    [(1, 100, 10, 0.1), (2, 100, 0, 0.0)]
    """
    names: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(period.clicks):
        hits = period.clicks[name]
        rows = []
        for position, shows in enumerate(period.shown, start=1):
            hit = hits[position - 1] if position - 1 < len(hits) else 0
            low, high = wilson(hit, shows)
            rows.append(
                {
                    "position": position,
                    "shows": shows,
                    "hits": hit,
                    "rate": _share(hit, shows),
                    "low": low,
                    "high": high,
                }
            )
        names[name] = rows
    return ClickThrough(metric if metric in names else None, names)


# -- realised quality -----------------------------------------------------------------------


@dataclass(frozen=True)
class QualityFinding:
    """Realised recall@k of the judged answers, beside the evaluation's."""

    metric: str
    horizon_days: float
    judged: int
    relevant: int
    realised: float | None
    realised_se: float | None
    known_relevant: int
    known_realised: float | None
    known_se: float | None
    hit_rate: float | None
    reference: float | None
    minimum: float | None
    pending: int
    judged_until: datetime | None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def judged_figure(self) -> tuple[str, float | None, float | None, int]:
        """What the floor is checked on: known users' figure, else every user's."""
        if self.known_relevant >= MIN_JUDGED or self.relevant < MIN_JUDGED:
            return "known users", self.known_realised, self.known_se, self.known_relevant
        return "every user", self.realised, self.realised_se, self.relevant

    def to_json(self) -> dict[str, Any]:
        """Every field."""
        return {
            "metric": self.metric,
            "horizon_days": self.horizon_days,
            "judged": self.judged,
            "with_later_interactions": self.relevant,
            "realised": self.realised,
            "realised_se": self.realised_se,
            "hit_rate": self.hit_rate,
            "known_users": {
                "rows": self.known_relevant,
                "realised": self.known_realised,
                "se": self.known_se,
            },
            "reference": self.reference,
            "minimum": self.minimum,
            "pending": self.pending,
            "judged_until": None if self.judged_until is None else self.judged_until.isoformat(),
            "history": self.history,
        }


def _mean_se(total: float, squares: float, n: int) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    mean = total / n
    variance = max(0.0, squares / n - mean * mean) * n / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(variance / n)


def quality_finding(
    windows: Sequence[RecsWindow],
    period: RecsWindow,
    *,
    k: int,
    horizon_days: float,
    metrics: Mapping[str, Any],
    monitoring: Monitoring,
    pending: int,
    judged_until: datetime | None,
) -> QualityFinding:
    """Realised recall@k over the period and per window (see the module)."""
    metric = f"recall@{k}"
    realised, se = _mean_se(period.recall_sum, period.recall_sq, period.relevant)
    known, known_se = _mean_se(
        period.known_recall_sum, period.known_recall_sq, period.known_relevant
    )
    model = metrics.get("model")
    reference = model.get(metric) if isinstance(model, Mapping) else None
    watched = monitoring.quality.metric
    minimum = monitoring.quality.min if watched in (None, metric) else None
    return QualityFinding(
        metric=metric,
        horizon_days=horizon_days,
        judged=period.judged,
        relevant=period.relevant,
        realised=realised,
        realised_se=se,
        known_relevant=period.known_relevant,
        known_realised=known,
        known_se=known_se,
        hit_rate=_share(period.hits, period.relevant),
        reference=float(reference) if isinstance(reference, int | float) else None,
        minimum=minimum,
        pending=pending,
        judged_until=judged_until,
        history=[
            {
                "start": w.start.isoformat(),
                "judged": w.judged,
                "rows": w.relevant,
                "realised": _share(w.recall_sum, w.relevant),
            }
            for w in windows
        ],
    )


# -- the served mix -------------------------------------------------------------------------


@dataclass(frozen=True)
class MixFinding:
    """One distribution of the served mix against its reference, judged per window."""

    name: str
    statistic: str
    reference_source: str
    value: float | None
    threshold: float | None
    status: Status
    why: str
    reference: dict[str, float]
    current: dict[str, float]
    history: list[WindowJudgement]

    def to_json(self) -> dict[str, Any]:
        """Every field."""
        return {
            "name": self.name,
            "statistic": self.statistic,
            "reference_source": self.reference_source,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "status": self.status,
            "why": self.why,
            "reference": self.reference,
            "current": self.current,
            "history": [h.to_json() for h in self.history],
        }


def _scaled(counts: Mapping[str, float], n: int) -> CategoricalProfile:
    """A profile with ``counts``' shares over ``n`` rows (see the module: answers, not slots)."""
    total = float(sum(counts.values()))
    scaled = {label: round(v / total * n) for label, v in counts.items()} if total else {}
    return CategoricalProfile({label: c for label, c in scaled.items() if c > 0})


def _shares(counts: Mapping[str, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {k: float(v) / total for k, v in sorted(counts.items())} if total else {}


def mix_finding(
    name: str,
    windows: Sequence[RecsWindow],
    counts_of: Any,
    stored: Mapping[str, Any] | None,
    stored_rows: int,
    monitoring: Monitoring,
    k: int,
    m: int,
) -> MixFinding:
    """One served-mix distribution judged per window (see the module). ``counts_of(window)``
    gives the window's counts; ``stored`` the evaluation's shares (None: the first window with
    ``monitoring.recommend.min_answers`` model answers is the reference), over ``stored_rows``
    evaluated users."""
    min_answers = monitoring.recommend.min_answers

    def answers(w: RecsWindow) -> int:
        return w.paths.get("model", 0)

    shares = (
        {str(k_): float(v) for k_, v in stored.items() if isinstance(v, int | float)}
        if stored
        else {}
    )
    source = "the evaluation at training"
    judged = list(windows)
    if not shares:
        first = next((w for w in windows if answers(w) >= min_answers and counts_of(w)), None)
        if first is None:
            return MixFinding(
                name,
                "—",
                "none yet",
                None,
                None,
                "ok",
                f"no window has {min_answers} model answers yet",
                {},
                {},
                [],
            )
        shares = _shares(counts_of(first))
        stored_rows = answers(first)
        source = f"the first window ({first.start:%Y-%m-%d %H:%M} UTC; the version stores none)"
        judged = [w for w in windows if w.start > first.start]
    reference = _scaled(shares, max(stored_rows, 1))
    if monitoring.alert_threshold is not None:
        statistic = STATISTICS["psi"]
        fixed: float | None = monitoring.alert_threshold
        table: dict[int, float] = {}
    else:
        statistic = default_statistic("categorical", monitoring.drift)
        fixed = None
        table = calibrate(reference, statistic) if reference.known else {}

    def value(w: RecsWindow) -> float | None:
        counts = counts_of(w)
        if not counts or not reference.known:
            return None
        return float(statistic.between(reference, _scaled(counts, answers(w))))

    def threshold(w: RecsWindow, rows: int) -> float | None:
        if fixed is not None:
            return fixed
        return threshold_for(table, rows) if table else None

    history = _judgements(judged, value, answers, threshold, k, m, min_answers)
    last = next((h for h in reversed(history) if h.judged), None)
    over = sum(h.over for h in history if h.judged)
    period: dict[str, float] = {}
    for w in judged:
        for label, c in counts_of(w).items():
            period[label] = period.get(label, 0) + c
    why = (
        f"over in {sum(h.over for h in history[-m:] if h.judged)} of the last "
        f"{min(m, sum(h.judged for h in history))} windows ({statistic.name} "
        f"{last.value:.4g} > {last.threshold:.4g})"
        if last is not None and last.value is not None and last.threshold is not None and over
        else "within its threshold"
        if last is not None
        else f"no window after the reference has {min_answers} model answers yet"
    )
    return MixFinding(
        name=name,
        statistic=statistic.name + ("" if fixed is None else " (fixed alert_threshold)"),
        reference_source=source,
        value=last.value if last else None,
        threshold=last.threshold if last else None,
        status=last.status if last else "ok",
        why=why,
        reference=_shares(shares),
        current=_shares(period),
        history=history,
    )


# -- alerts ---------------------------------------------------------------------------------


def alerts_of(
    model: str,
    fallback: FallbackFinding,
    mixes: Sequence[MixFinding],
    quality: QualityFinding,
    latency: LatencyFinding,
    now: datetime,
) -> list[Alert]:
    """The run's alerts beyond the SLOs' (the caller adds those): model fallbacks (page or
    ticket), the served mix (ticket), realised quality (page), p99 over budget (ticket)."""
    alerts: list[Alert] = []
    judged = [h for h in fallback.history if h.judged]
    if fallback.status == "drift" and judged:
        last = judged[-1]
        over = [h for h in judged[-3:] if h.over]
        broken = last.value is not None and last.value > BROKEN_SHARE
        reasons = ", ".join(
            f"{r} {s:.1%}" for r, s in list(fallback.by_reason.items())[:3] if r != "none"
        )
        alerts.append(
            Alert(
                key=f"fallback:{model}",
                kind="fallback",
                severity="page" if broken else "ticket",
                title=(
                    f"the model is not answering: {last.value:.1%} of the latest window's "
                    "answers fell back"
                    if broken and last.value is not None
                    else f"model fallbacks over {fallback.threshold:.0%} of answers"
                ),
                detail=(
                    f"over in {len(over)} of the last {len(judged[-3:])} windows (latest "
                    f"{(last.value or 0):.1%} of {last.rows:,} answers); by reason over the "
                    f"period: {reasons or 'none given'}"
                ),
                value=last.value,
                threshold=fallback.threshold,
                since=over[0].start if over else last.start,
                where="the service's fallback reasons (model errors, overruns, breaker)",
            )
        )
    for mix in mixes:
        if mix.status != "drift":
            continue
        alerts.append(
            Alert(
                key=f"drift:{model}:served {mix.name}",
                kind="drift",
                severity="ticket",
                title=f"the served {mix.name} drifted",
                detail=f"{mix.why}; against {mix.reference_source}",
                value=mix.value,
                threshold=mix.threshold,
                since=next(h.start for h in mix.history if h.over),
                where="the model's stages and the catalog (what the model now recommends)",
            )
        )
    scope, value, se, rows = quality.judged_figure
    floor = quality.minimum
    # beyond two standard errors below the floor: not noise
    low = floor is not None and value is not None and value < floor - 2 * (se or 0.0)
    if low and floor is not None and value is not None and rows >= MIN_JUDGED:
        alerts.append(
            Alert(
                key=f"quality:{model}:realised",
                kind="quality",
                severity="page",
                title=f"realised {quality.metric} {value:.4g} below {quality.minimum:.4g}",
                detail=(
                    f"{scope}: {rows:,} answers with interactions in the "
                    f"{quality.horizon_days:g} days after them"
                    + (
                        f"; evaluation at training {quality.reference:.4g}"
                        if quality.reference is not None
                        else ""
                    )
                ),
                value=value,
                threshold=quality.minimum,
                since=now,
                where="the interactions source and the served mix (stages, fallbacks)",
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
                detail="in the latest window"
                + (
                    f" (the window before: {latency.previous_p99:.4g} ms)"
                    if latency.previous_p99 is not None
                    else ""
                ),
                value=latency.p99,
                threshold=latency.budget_ms,
                since=latency.windows[-1].start,
                where="latency by answer path (the model, the fallbacks)",
            )
        )
    return alerts
