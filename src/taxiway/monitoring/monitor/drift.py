"""Drift of one feature (or the output) in every window: the statistic against the threshold for
the window's size, a jump of the missing share, and the status hysteresis gives."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from taxiway.monitoring.alerts import hysteresis
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.reference import OUTPUT, Reference
from taxiway.monitoring.report.model import (
    Bins,
    DriftFinding,
    Status,
    WindowJudgement,
)
from taxiway.monitoring.statistics import STATISTICS
from taxiway.monitoring.statistics.ks import ks_pvalue
from taxiway.monitoring.windows import Window
from taxiway.spec.models import Monitoring

__all__ = ["MIN_ROWS", "judge"]

MIN_ROWS = 50
"""Known values a window needs before its drift is judged (fewer: shown, not judged)."""
_MISSING_JUMP = 0.05
_CHART_CATEGORIES = 10


def judge(
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
        if current.known >= MIN_ROWS and ref.known:  # else the missing share alone
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
    if not ref.known:  # a column never known in training: nothing to draw it against
        return Bins([], [])
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
