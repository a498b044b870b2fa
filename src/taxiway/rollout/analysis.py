"""One look at a rollout: the split, the primary metric, the guardrails; evidence, no action.

Definitions (the statistics themselves are in :mod:`taxiway.rollout.statistics`):

- **Units analysed.** A unit belongs to the arm of its first answer and to the *stratum* of
  the step it was first answered in. Units in both arms (:mod:`.units`) are left out. The
  control arm keeps only units whose bucket lies at or above the share reached so far: the
  others (control while the share was small) were moved to the candidate by a later step,
  and which of them came back to be moved depends on their behaviour, so keeping some and
  not others would bias control; the bucket is a hash, so the units kept are a random part.
- **Primary metric.** Each unit's value (:meth:`.units.UnitsState.value`) is CUPED-adjusted
  with its own pre-exposure value (theta pooled over both arms). The difference is estimated
  per stratum (a unit first answered at 1% waited longer for its outcome than one first
  answered at 50%, and the candidate's units come mostly from the later steps) and the
  strata are combined with weights ``n_control * n_candidate / (n_control + n_candidate)``;
  its variance likewise. The anytime-valid confidence sequence (two-sided, the rollout's
  alpha) is tuned to the planned sample: the fixed-horizon units per arm for
  ``metric.min_effect`` at the control's standard deviation.
- **A ratio metric** (``metric.per: impression``: click-through per impression). The arm's
  value is ``sum(outcome) / sum(impressions)`` over its units, the outcome's *sum* per unit
  (a true counts 1: clicks, not whether the unit clicked), a unit's impressions being its
  answers (``exposures``) times ``items_per_answer`` (the items each answer shows: a
  recommender's ``recommend.k``, 1 for a classifier). The unit state counts answers per unit,
  not the items each held, so a recommender whose answers hold fewer than ``k`` items (a
  request asking for fewer, a short fallback list) is credited ``k`` impressions per answer
  all the same: the ratio is then clicks per answer over ``k``, its test the same. Each unit
  becomes its linearised ratio within its arm and stratum
  (:func:`~taxiway.rollout.strata.ratio_values`, :mod:`.statistics.ratio`), whose mean is
  the cell's ratio and whose variance is the delta method's ``Var(z) / mean(n)²`` with
  ``z = y - R n`` over units: a user's correlated impressions stay one observation. CUPED,
  the strata and the confidence sequence then run on those values as on a mean per unit
  (the covariate: the unit's pre-exposure sum of the outcome); the planned sample uses the
  control's delta-method standard deviation ``sd(z) / mean(n)``, and ``min_effect`` is in
  the ratio's units (0.005: half a point of click-through). The evidence's ``ratio`` says so.
- **Split.** The units first answered at each step, per arm, against that step's share
  (:func:`split_check`). A check runs at every look, hundreds of times in a rollout, so the
  halting rule is Lindon and Malek's (2022) sequential test, whose p-value is valid however
  often it is read: halt at p < 0.001 (at most 0.1% of correct rollouts ever halt). Pearson's
  chi-square pooled over the steps is reported beside it (``chi2_p_value``, ``chi2_halt``:
  what the fixed-sample rule would say; repeated at every check it halts 1 to 2% of
  correct rollouts, ``bench/rollout.py --part srm``). A unit counts in the step of its first
  answer, so control units the growing share moved to the candidate count as control, where
  they were assigned. And the share of units seen in both arms (halts at 1%).
- **Guardrails**, one-sided anytime-valid bounds with the rollout's alpha split evenly:
  answers slower than the latency limit (the candidate's share must stay at most 1%: its
  p99 within the limit), its error rate (at most ``guardrails.error_rate``), its fallback
  rate (at most ``guardrails.fallback_rate`` above control's), each outcome that must not
  get worse (stratified as the metric, higher is better), and the monitor's drift status
  (its last report written after the rollout began; no statistic of ours). With
  interleaving, the interleaved answers' latency, errors and fallbacks too, as an arm of
  their own (:mod:`.guards`).
- **Enough data.** Nothing is decided before 100 units and 10 events per arm.
- **Interleaving** (``rollout.interleaving``, a recommender's): the interleaved users'
  preferences (:mod:`.interleaved`, :mod:`.statistics.interleaving`): wins, losses, ties,
  the always-valid p-value, and whether the pre-gate has passed (``min_users`` users with a
  preference and the candidate not significantly worse). Interleaved users hold a hash range
  of their own, so the split check expects control's share less theirs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from taxiway.errors import RolloutError
from taxiway.rollout.guards import drift_finding, guardrail_checks, monitor_drift
from taxiway.rollout.interleaved import InterleavedUsers
from taxiway.rollout.records import RolloutState
from taxiway.rollout.statistics import (
    DEFAULT_PLANNED_UNITS,
    ArmStats,
    Comparison,
    GuardrailResult,
    InterleavingResult,
    both_arms_check,
    cuped_adjust,
    half_width,
    interleaving_test,
    planned_units,
    preferences,
    sequential_srm,
    srm_test,
    variance_reduction,
)
from taxiway.rollout.statistics.guardrails import MIN_EVENTS, MIN_UNITS
from taxiway.rollout.statistics.ratio import ratio_arm
from taxiway.rollout.strata import compare_strata, ratio_values
from taxiway.rollout.units_state import ARMS, INTERLEAVED, UnitsState
from taxiway.spec.models import Rollout

__all__ = ["Analysis", "ArmSummary", "analyse", "monitor_drift", "split_check", "steps_of"]

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ArmSummary:
    """One arm as ``status`` shows it: units and events analysed, the metric's raw mean and
    its anytime-valid interval, and the answers' health."""

    name: str
    version: int | None
    units: int
    events: int
    mean: float | None
    interval: tuple[float, float] | None
    answers: int
    fallback_rate: float | None
    error_rate: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``interval`` as a two-item list; infinities as null)."""
        data = asdict(self)
        data["interval"] = None if self.interval is None else [_finite(v) for v in self.interval]
        data["mean"] = _finite(self.mean)
        return data


@dataclass(frozen=True)
class Analysis:
    """What one look found; :meth:`evidence` is what a verdict records."""

    arms: list[ArmSummary]
    enough: bool
    step_units: dict[str, int]
    srm: dict[str, Any]
    srm_ok: bool
    both_arms: dict[str, Any]
    both_arms_ok: bool
    comparison: Comparison | None
    cuped: dict[str, float]
    planned_n: int
    guardrails: list[GuardrailResult]
    drift: dict[str, Any] | None
    counts: dict[str, int] = field(default_factory=dict)
    ratio: dict[str, Any] | None = None
    """For ``metric.per: impression``: the impressions per arm and how they were counted."""
    interleaving: InterleavingResult | None = None
    """With ``rollout.interleaving``: the interleaved users' test."""
    interleaved: dict[str, Any] | None = None
    """With ``rollout.interleaving``: its users and answers, and whether the pre-gate passed."""

    @property
    def breached(self) -> list[str]:
        """The guardrails breached, by name (drift included)."""
        names = [g.name for g in self.guardrails if g.breached]
        if self.drift is not None and self.drift.get("breached"):
            names.append("drift")
        return names

    def evidence(self) -> dict[str, Any]:
        """Counts, estimate, interval, guardrails: JSON-ready."""
        comparison = None
        if self.comparison is not None:
            comparison = {k: _finite(v) for k, v in self.comparison.as_dict().items()}
        evidence: dict[str, Any] = _finite(
            {
                "arms": [arm.as_dict() for arm in self.arms],
                "enough": self.enough,
                "step_units": self.step_units,
                "srm": self.srm,
                "both_arms": self.both_arms,
                "comparison": comparison,
                "cuped": self.cuped,
                "planned_n": self.planned_n,
                "guardrails": [
                    {k: _finite(v) for k, v in g.as_dict().items()} for g in self.guardrails
                ],
                "drift": self.drift,
                "counts": self.counts,
            }
        )
        if self.ratio is not None:
            evidence["ratio"] = _finite(self.ratio)
        if self.interleaving is not None:
            evidence["interleaving"] = _finite(
                {**self.interleaving.as_dict(), **(self.interleaved or {})}
            )
        return evidence


def steps_of(first_us: npt.NDArray[np.int64], boundaries: Sequence[tuple[datetime, int]]) -> Any:
    """The step each time (µs) fell in, given ``(time, step)`` boundaries (step 0 before)."""
    times = np.array([int(at.timestamp() * 1_000_000) for at, _ in boundaries], np.int64)
    steps = np.array([step for _, step in boundaries] or [0], np.int64)
    position = np.searchsorted(times, first_us, side="right") - 1
    return np.where(position >= 0, steps[np.maximum(position, 0)], 0)


def split_check(
    counts: Sequence[dict[str, int]], shares: Sequence[float], interleaved: float = 0.0
) -> tuple[dict[str, Any], bool]:
    """Whether units split as the steps promised: ``counts`` are the units first answered
    at each step per arm, ``shares`` each step's candidate share (percent), ``interleaved``
    the percent of users interleaved apart (taken from control's range). Steps at 100%
    are left out. Returns the evidence (the sequential test's p-value that halts, the
    chi-square beside it) and whether the split holds (False: halt).

    >>> evidence, ok = split_check([{"control": 99, "candidate": 1}], [1.0])
    >>> ok, evidence["rule"], evidence["chi2_halt"]
    (True, 'sequential', False)
    >>> split_check([{"control": 4_600, "candidate": 5_400}], [50.0])[1]
    False
    """
    kept = [(c, s) for c, s in zip(counts, shares, strict=True) if s < 100]
    if not kept:
        return {}, True
    steps = [c for c, _ in kept]
    expected = [{"control": 100.0 - s - interleaved, "candidate": s} for _, s in kept]
    pooled = srm_test(steps, expected)
    sequential = sequential_srm(steps, expected)
    evidence = _json(asdict(pooled))
    evidence["chi2_halt"] = not evidence.pop("ok")
    evidence["chi2_p_value"] = evidence.pop("p_value")
    evidence.update(
        rule="sequential",
        p_value=sequential.p_value,
        bayes_factor=_finite(sequential.bayes_factor),
        ok=sequential.ok,
    )
    return evidence, sequential.ok


def analyse(
    units: UnitsState,
    rollout: RolloutState,
    plan: Rollout,
    *,
    boundaries: Sequence[tuple[datetime, int]],
    drift: dict[str, Any] | None = None,
    items_per_answer: float = 1.0,
    interleaved: InterleavedUsers | None = None,
) -> Analysis:
    """Look at ``units`` (read up to now) for ``rollout`` under ``plan``; a unit's
    impressions, for ``metric.per: impression``, are its answers times ``items_per_answer``
    (a recommender's ``recommend.k``; see the module docstring); ``interleaved``: the
    interleaved users' clicks per team, with ``plan.interleaving``."""
    u = units.units
    exposed = u.exposed
    arm = u.first_arm
    step = steps_of(u.first_us, boundaries)
    both = u.in_both & exposed
    reached = rollout.steps[min(rollout.step_index, len(rollout.steps) - 1)]
    # a bucket is -1 until the rollout's first promotion (units.py): no unit was moved before
    moved = (arm == 0) & (u.bucket >= 0) & (u.bucket < round(reached * 100))
    kept = exposed & ~both & ~moved
    control, candidate = kept & (arm == 0), kept & (arm == 1)
    arms_of = {"control": control, "candidate": candidate}

    shares = rollout.steps[: rollout.step_index + 1]
    first_here = [exposed & (step == index) for index in range(len(shares))]
    split = [
        {
            "control": int(np.count_nonzero(here & (arm == 0))),
            "candidate": int(np.count_nonzero(here & (arm == 1))),
        }
        for here in first_here
    ]
    interleaving = plan.interleaving
    srm, srm_ok = split_check(split, shares, interleaving.share if interleaving else 0.0)
    both_check = both_arms_check(int(np.count_nonzero(both)), int(np.count_nonzero(exposed)))

    metric = plan.metric
    alpha = plan.alpha
    comparison, raw, ratio = None, {}, None
    cuped = {"theta": 0.0, "variance_reduction": 0.0}
    planned = DEFAULT_PLANNED_UNITS
    if metric is not None:
        if metric.per == "impression":
            if not items_per_answer > 0:
                raise RolloutError(
                    f"items_per_answer must be positive, not {items_per_answer}",
                    fix="pass the items each answer shows (recommend.k; 1 for a classifier)",
                )
            clicks = u.post[metric.name]
            shown = u.exposures.astype(np.float64) * items_per_answer
            y = ratio_values(clicks, shown, control, candidate, step)
            x = u.pre[metric.name]
            raw = {
                name: ratio_arm(name, clicks[mask], shown[mask]) for name, mask in arms_of.items()
            }
            ratio = {
                "per": "impression",
                "items_per_answer": float(items_per_answer),
                "impressions": {name: float(shown[mask].sum()) for name, mask in arms_of.items()},
                "outcome_sum": {name: float(clicks[mask].sum()) for name, mask in arms_of.items()},
                "variance": "delta method over units, linearised within arm and stratum",
                "cuped": "on the linearised values, covariate the pre-exposure outcome sum",
            }
        else:
            y, x = units.value(metric.name), units.value(metric.name, "pre")
            raw = {name: _arm(name, y[mask]) for name, mask in arms_of.items()}
        adjusted = y.copy()
        if np.count_nonzero(kept) >= 2:
            adjusted[kept], theta = cuped_adjust(y[kept], x[kept])
            reduced = variance_reduction(y[kept], adjusted[kept])
            cuped = {"theta": theta, "variance_reduction": reduced}
        planned = planned_units(metric.min_effect, math.sqrt(raw["control"].var), alpha)
        comparison = compare_strata(
            adjusted,
            control,
            candidate,
            step,
            alpha=alpha,
            planned=planned,
            increase=metric.direction == "increase",
            control_mean=raw["control"].mean,
        )
    events = {
        name: int(np.count_nonzero(mask & (u.post_events[metric.name] > 0))) if metric else 0
        for name, mask in arms_of.items()
    }
    counts = {name: int(np.count_nonzero(mask)) for name, mask in arms_of.items()}
    enough = all(counts[a] >= MIN_UNITS for a in ARMS) and (
        metric is None or all(events[a] >= MIN_EVENTS for a in ARMS)
    )
    here = exposed & (step == rollout.step_index)
    step_units = {
        "control": int(np.count_nonzero(here & (arm == 0))),
        "candidate": int(np.count_nonzero(here & (arm == 1))),
    }
    guardrails = guardrail_checks(units, plan, control, candidate, step, planned)
    drift_found = drift_finding(drift, rollout, plan)
    versions = {"control": rollout.control.get("version"), "candidate": rollout.candidate}
    arms = []
    for name in ARMS:
        stats = raw.get(name)
        interval = None
        if stats is not None and stats.units >= 2:
            width = half_width(stats.variance_of_mean, stats.units, alpha, float(planned))
            interval = (stats.mean - width, stats.mean + width)
        answers = units.arms[name]
        arms.append(
            ArmSummary(
                name=name,
                version=versions[name],
                units=counts[name],
                events=events[name],
                mean=None if stats is None or stats.units == 0 else stats.mean,
                interval=interval,
                answers=answers.answers,
                fallback_rate=answers.fallbacks / answers.answers if answers.answers else None,
                error_rate=answers.errors / answers.answers if answers.answers else None,
                p99_ms=answers.latency_quantile(0.99),
            )
        )
    tested, tested_users = None, None
    if interleaving is not None:
        users = interleaved or InterleavedUsers([], np.zeros(0), np.zeros(0), 0)
        wins, losses, ties, no_clicks = preferences(users.candidate, users.control)
        tested = interleaving_test(
            wins,
            losses,
            ties=ties,
            no_clicks=no_clicks,
            alpha=interleaving.alpha or alpha,
            planned_users=interleaving.min_users,
        )
        served = units.arms.get(INTERLEAVED)
        tested_users = {
            "share": interleaving.share,
            "users": len(users.users),
            "answers": users.answers,
            # what serving them cost (guarded as an arm of their own: .guards)
            "p99_ms": served.latency_quantile(0.99) if served is not None else None,
            "fallback_rate": served.fallbacks / served.answers
            if served is not None and served.answers
            else None,
            "min_users": interleaving.min_users,
            "passed": tested.decided_users >= interleaving.min_users
            and not tested.significant_worse,
        }
    return Analysis(
        arms=arms,
        enough=enough,
        step_units=step_units,
        srm=srm,
        srm_ok=srm_ok,
        both_arms=_json(asdict(both_check)),
        both_arms_ok=both_check.ok,
        comparison=comparison,
        cuped={k: float(v) for k, v in cuped.items()},
        planned_n=int(planned),
        guardrails=guardrails,
        drift=drift_found,
        counts={
            "exposed": int(np.count_nonzero(exposed)),
            "in_both_arms": int(np.count_nonzero(both)),
            "moved_to_candidate": int(np.count_nonzero(exposed & ~both & (arm == 0) & ~kept)),
            "answers_without_unit": units.answers_without_unit,
            "outcomes_without_unit": units.unattributed,
            "outcomes_after_moving": units.moved_outcomes,
            "outcomes_by_request": units.by_request,
            "outcomes_pending": len(units.pending),
            "outcomes_expired": units.expired,
            "outcomes_interleaved": units.outcomes_interleaved,
        },
        ratio=ratio,
        interleaving=tested,
        interleaved=tested_users,
    )


def _arm(name: str, values: Floats) -> ArmStats:
    return ArmStats.of(name, values)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) as None: JSON has no infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite(v) for k, v in data.items()}
