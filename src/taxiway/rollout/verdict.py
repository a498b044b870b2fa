"""From one look to one verdict: promote, hold, rollback, pause or complete, with reasons.

The rules, first match wins (a rollout that is not running only ever gets ``rollback`` or
``hold``: a paused one still rolls back on harm, since it still serves the candidate):

1. **rollback** when the split is wrong (sample ratio mismatch, or 1% of units in both
   arms: an assignment bug makes every estimate meaningless), a guardrail is breached, or
   the primary metric is significantly worse (its interval lies wholly on the worse side);
   With ``rollout.interleaving``, also when the interleaved users significantly prefer
   control's list (the always-valid sign test, :mod:`.statistics.interleaving`);
2. **hold** before 100 units and 10 events per arm, before ``min_duration`` at this step,
   and before ``min_units`` new candidate units at this step; with ``rollout.interleaving``,
   at the first step until ``interleaving.min_users`` interleaved users have a preference
   (the pre-gate: the A/B share grows past the first step only once it has passed);
3. at a step that is not the last decision (the next step is not 100% and this is not the
   last step): **promote**: the early steps exist to catch harm, which rule 1 did not find;
4. at the last decision: **complete** when the metric is significantly better (or the plan
   has no metric: the guardrails held for ``min_duration``); **pause** when both arms have
   reached the planned sample and the interval still holds 0 (inconclusive: a person
   decides); else **hold**, saying how far the planned sample is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from taxiway.rollout.analysis import Analysis
from taxiway.rollout.state import RolloutState
from taxiway.spec.models import Rollout

__all__ = ["Kind", "Verdict", "decide", "is_last_decision"]

Kind = Literal["promote", "hold", "rollback", "pause", "complete"]


@dataclass(frozen=True)
class Verdict:
    """What the controller does next, why, what the next step still needs, and the
    evidence (:meth:`.analysis.Analysis.evidence`)."""

    kind: Kind
    reasons: list[str]
    evidence: dict[str, Any]
    needs: list[str] = field(default_factory=list)
    checked_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what is stored as the rollout's ``verdict``."""
        return {
            "kind": self.kind,
            "reasons": self.reasons,
            "needs": self.needs,
            "checked_at": None if self.checked_at is None else self.checked_at.isoformat(),
            "evidence": self.evidence,
        }


def is_last_decision(state: RolloutState) -> bool:
    """Whether this step's verdict is the final one: the next step is 100% or there is none.

    >>> from types import SimpleNamespace as S
    >>> is_last_decision(S(steps=[1.0, 50.0, 100.0], step_index=1))
    True
    >>> is_last_decision(S(steps=[1.0, 50.0, 100.0], step_index=0))
    False
    """
    following = state.step_index + 1
    return following >= len(state.steps) or state.steps[following] >= 100.0


def decide(analysis: Analysis, state: RolloutState, plan: Rollout, now: datetime) -> Verdict:
    """The verdict on ``analysis`` for ``state`` under ``plan`` at ``now`` (rules above)."""
    evidence = analysis.evidence()

    def verdict(kind: Kind, reasons: list[str], needs: list[str] | None = None) -> Verdict:
        return Verdict(kind, reasons, evidence, needs or [], now)

    harm = _harm(analysis, plan)
    if harm:
        return verdict("rollback", harm)
    if state.state != "running":
        return verdict("hold", [f"the rollout is {state.state}: `taxiway rollout resume` to go on"])
    if state.share >= 100.0:  # a plan whose step reaches 100% before deciding: no control left
        left = state.step_started_at + plan.min_duration - now
        if left > timedelta(0):
            return verdict(
                "hold", ["at 100%: the guardrails are watched"], [f"{_duration(left)} more at 100%"]
            )
        return verdict("complete", ["at 100% with no control to compare with; the guardrails held"])
    needs = _needs(analysis, state, plan, now)
    if needs:
        return verdict("hold", ["not enough evidence yet for the next step"], needs)
    share = f"{state.share:g}%"
    if not is_last_decision(state):
        nxt = f"{state.steps[state.step_index + 1]:g}%"
        reasons = [f"no harm found at {share} (guardrails hold): on to {nxt}"]
        if analysis.interleaving is not None and state.step_index == 0:
            tested = analysis.interleaving
            reasons.append(
                f"interleaving pre-gate passed: {tested.wins} users prefer the candidate's "
                f"list, {tested.losses} control's, {tested.ties} ties (always-valid p = "
                f"{tested.p_value:.2g})"
            )
        return verdict("promote", reasons)
    comparison = analysis.comparison
    if plan.metric is None or comparison is None:
        return verdict("complete", [f"no metric to decide on; the guardrails held at {share}"])
    interval = f"[{comparison.low:.4g}, {comparison.high:.4g}]"
    if comparison.significant_better:
        return verdict(
            "complete",
            [
                f"{plan.metric.name} is better in the candidate arm: difference "
                f"{comparison.diff:.4g}, interval {interval} excludes 0"
            ],
        )
    units = min(arm.units for arm in analysis.arms)
    if units >= analysis.planned_n:
        return verdict(
            "pause",
            [
                f"inconclusive at the planned sample ({analysis.planned_n} units per arm): "
                f"{plan.metric.name} difference {comparison.diff:.4g}, interval {interval} "
                "holds 0; a person decides (resume to keep collecting, or abort)"
            ],
        )
    return verdict(
        "hold",
        [f"{plan.metric.name}: interval {interval} still holds 0"],
        [
            f"up to {analysis.planned_n - units} more units per arm (planned sample "
            f"{analysis.planned_n})"
        ],
    )


def _harm(analysis: Analysis, plan: Rollout) -> list[str]:
    reasons = []
    srm = analysis.srm
    if not analysis.srm_ok:
        reasons.append(
            f"sample ratio mismatch: units per arm {srm.get('observed')} against expected "
            f"{_rounded(srm.get('expected'))} (sequential p = {srm.get('p_value', 0):.2g}, "
            f"chi-square p = {srm.get('chi2_p_value', 0):.2g}): the assignment is broken"
        )
    if not analysis.both_arms_ok:
        both = analysis.both_arms
        reasons.append(
            f"{both.get('units_in_both')} of {both.get('units')} units saw both arms "
            f"({100 * both.get('share', 0):.1f}%, the limit is 1%): the assignment is not sticky"
        )
    for guardrail in analysis.guardrails:
        if guardrail.breached:
            reasons.append(
                f"guardrail {guardrail.name} breached: {guardrail.estimate:.4g} (bound "
                f"{guardrail.bound:.4g}) beyond {guardrail.threshold:.4g}"
            )
    interleaving = analysis.interleaving
    if interleaving is not None and interleaving.significant_worse:
        reasons.append(
            f"interleaving: users prefer control's list: {interleaving.wins} prefer the "
            f"candidate's, {interleaving.losses} control's ({interleaving.ties} ties; "
            f"always-valid p = {interleaving.p_value:.2g} < alpha {interleaving.alpha:g})"
        )
    if analysis.drift is not None and analysis.drift.get("breached"):
        drifted = ", ".join(map(str, analysis.drift.get("drifted") or []))
        reasons.append(f"the monitor reports drift ({drifted})")
    comparison = analysis.comparison
    metric = plan.metric
    worse = comparison is not None and comparison.significant_worse
    if analysis.enough and metric is not None and comparison is not None and worse:
        reasons.append(
            f"{metric.name} is worse in the candidate arm: difference "
            f"{comparison.diff:.4g}, interval [{comparison.low:.4g}, "
            f"{comparison.high:.4g}] excludes 0"
        )
    return reasons


def _needs(analysis: Analysis, state: RolloutState, plan: Rollout, now: datetime) -> list[str]:
    needs = []
    if not analysis.enough:
        have = ", ".join(f"{a.name} {a.units} units / {a.events} events" for a in analysis.arms)
        needs.append(f"100 units and 10 events per arm before any decision (now {have})")
    left = state.step_started_at + plan.min_duration - now
    if left > timedelta(0):
        needs.append(f"{_duration(left)} more at {state.share:g}% (min_duration)")
    interleaving = analysis.interleaving
    if interleaving is not None and plan.interleaving is not None and state.step_index == 0:
        decided, need = interleaving.decided_users, plan.interleaving.min_users
        if decided < need:
            needs.append(
                f"{need - decided} more interleaved users with a preference before the share "
                f"grows (interleaving.min_users {need}; so far {interleaving.wins} prefer the "
                f"candidate, {interleaving.losses} control, {interleaving.ties} ties)"
            )
    fresh = analysis.step_units.get("candidate", 0)
    if fresh < plan.min_units:
        needs.append(
            f"{plan.min_units - fresh} more candidate units at this step (min_units "
            f"{plan.min_units}, {fresh} so far)"
        )
    return needs


def _duration(left: timedelta) -> str:
    seconds = int(left.total_seconds() + 0.999)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


def _rounded(expected: Any) -> Any:
    if isinstance(expected, dict):
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in expected.items()}
    return expected
