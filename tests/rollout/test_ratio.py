"""Click-through per impression (``rollout.metric.per: impression``): a ratio over units with
its variance by the delta method, checked against simulation.

The simulated world is clustered, as recommendation traffic is: each user asks a few times
(answers: 1 + a geometric number, mean 4) and sees ``K`` items per answer, and clicks each
item with a rate of their own (a beta distribution of mean 5%, very uneven between users), so
one user's impressions are correlated. The checks:

- the delta method's variance of an arm's ratio matches the variance of the ratio over
  seeded Monte Carlo replicates, and a 95% interval from it covers the true click-through
  about 95% of the time, where the per-impression binomial interval (every impression taken
  as independent) is far too narrow on the same data;
- linearised values give, per group and through the strata, exactly the ratios and the
  delta-method variances (hypothesis);
- 200 simulated A/A rollouts analysed and decided by the real :func:`analyse` and
  :func:`decide` at every look complete (the candidate declared better) in at most 5%; a true
  lift in click-through is found;
- on logs written with the service's writer, the analysis reads clicks per impression as
  clicks over answers times the items per answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.rollout.analysis import Analysis, analyse
from taxiway.rollout.records import RolloutState
from taxiway.rollout.statistics import ArmStats, normal_quantile
from taxiway.rollout.statistics.ratio import linearise, ratio_arm
from taxiway.rollout.strata import ratio_values, strata_difference
from taxiway.rollout.units import update_units
from taxiway.rollout.units_state import NO_STEP_MAX, NO_STEP_MIN, NONE, UnitsState
from taxiway.rollout.verdict import decide
from taxiway.spec.models import Rollout

from .traffic import answer, outcome, write
from .world import T0

Floats = npt.NDArray[np.float64]
K = 10
"""Items per answer (a recommender's ``recommend.k``)."""
CTR = 0.05
SPREAD = 2.0
"""The users' click rates: beta(CTR * SPREAD, (1 - CTR) * SPREAD), very uneven."""
HOUR = timedelta(hours=1)
Z95 = normal_quantile(0.975)


def rates(rng: np.random.Generator, shape: int | tuple[int, ...]) -> Floats:
    """Each user's own click rate: beta of mean ``CTR``, very uneven between users."""
    return rng.beta(CTR * SPREAD, (1 - CTR) * SPREAD, shape)


def users(
    rng: np.random.Generator, shape: int | tuple[int, ...], rate: Floats | None = None
) -> tuple[Floats, Floats]:
    """Clicks and answers per user: answers 1 + geometric (mean 4), each of the answers'
    ``K`` items clicked at the user's ``rate`` (drawn by :func:`rates` when not given)."""
    answers = rng.geometric(0.25, shape).astype(np.float64)
    rate = rates(rng, shape) if rate is None else rate
    clicks = rng.binomial((answers * K).astype(np.int64), np.minimum(rate, 1.0))
    return clicks.astype(np.float64), answers


# ---------------------------------------------------------------- one arm: the delta method


@pytest.fixture(scope="module")
def replicates() -> tuple[Floats, Floats, Floats]:
    """2,000 seeded replicates of an arm of 1,000 users (40,000 impressions): each
    replicate's ratio, its delta-method variance and its per-impression binomial variance.
    (At 400 users the skewed clicks leave the normal approximation at 91-93% coverage.)"""
    rng = np.random.default_rng(17)
    clicks, answers = users(rng, (2_000, 1_000))
    shown = answers * K
    arms = [ratio_arm("control", c, n) for c, n in zip(clicks, shown, strict=True)]
    ratio = np.array([arm.mean for arm in arms])
    delta = np.array([arm.variance_of_mean for arm in arms])
    binomial = ratio * (1 - ratio) / shown.sum(axis=1)
    return ratio, delta, binomial


def test_the_delta_method_variance_matches_the_variance_over_replicates(
    replicates: tuple[Floats, Floats, Floats],
) -> None:
    ratio, delta, binomial = replicates
    observed = float(ratio.var(ddof=1))
    assert abs(float(delta.mean()) / observed - 1) < 0.10, (float(delta.mean()), observed)
    # the binomial variance misses the users' correlated clicks: here by a factor of ~24
    assert float(binomial.mean()) < observed / 5, (float(binomial.mean()), observed)


def test_the_binomial_interval_is_too_narrow_where_the_delta_method_covers(
    replicates: tuple[Floats, Floats, Floats],
) -> None:
    ratio, delta, binomial = replicates
    delta_covers = float(np.mean(np.abs(ratio - CTR) <= Z95 * np.sqrt(delta)))
    binomial_covers = float(np.mean(np.abs(ratio - CTR) <= Z95 * np.sqrt(binomial)))
    assert 0.93 <= delta_covers <= 0.97, delta_covers
    assert binomial_covers < 0.50, binomial_covers  # ~31% here


def test_ratio_arm_is_the_pooled_ratio_with_the_linearised_variance() -> None:
    arm = ratio_arm("candidate", [3.0, 0.0, 1.0, 0.0], [10.0, 10.0, 20.0, 0.0])
    z = np.array([3.0, 0.0, 1.0, 0.0]) - 0.1 * np.array([10.0, 10.0, 20.0, 0.0])
    assert arm.mean == pytest.approx(0.1)
    assert arm.var == pytest.approx(z.var(ddof=1) / 10.0**2)
    assert (arm.units, arm.events) == (4, 2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(1, 40), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_linearised_values_give_each_groups_ratio_and_delta_variance(
    rows: list[tuple[int, int, int]],
) -> None:
    clicks = np.array([min(c, n) for c, n, _ in rows], np.float64)
    shown = np.array([n for _, n, _ in rows], np.float64)
    group = np.array([g for _, _, g in rows])
    values = linearise(clicks, shown, group)
    for g in np.unique(group).tolist():
        here = group == g
        arm = ratio_arm("arm", clicks[here], shown[here])
        of_values = ArmStats.of("arm", values[here])
        assert of_values.mean == pytest.approx(clicks[here].sum() / shown[here].sum(), abs=1e-12)
        assert of_values.var == pytest.approx(arm.var, rel=1e-9, abs=1e-12)
    by_label = linearise(clicks, shown, np.char.add("g", group.astype(str)))
    np.testing.assert_allclose(by_label, values, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_strata_combine_each_strata_ratio_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clicks, answers = users(rng, 120)
    shown = answers * K
    step = rng.integers(0, 3, 120)
    candidate = rng.random(120) < 0.4
    control = ~candidate
    diff, var, _, _ = strata_difference(
        ratio_values(clicks, shown, control, candidate, step), control, candidate, step
    )
    total_w, expected, expected_var = 0.0, 0.0, 0.0
    for k in range(3):
        c = ratio_arm("control", clicks[control & (step == k)], shown[control & (step == k)])
        t = ratio_arm("candidate", clicks[candidate & (step == k)], shown[candidate & (step == k)])
        if c.units < 2 or t.units < 2:
            continue
        w = c.units * t.units / (c.units + t.units)
        total_w += w
        expected += w * (t.mean - c.mean)
        expected_var += w * w * max(c.var, t.var) * (1 / c.units + 1 / t.units)
    if total_w == 0:
        return
    assert diff == pytest.approx(expected / total_w, abs=1e-12)
    assert var == pytest.approx(expected_var / total_w**2, rel=1e-9)


# ---------------------------------------------------------------- whole rollouts, A/A and a lift

STEPS = [5.0, 25.0, 50.0, 100.0]
ARRIVALS = [(600, 1), (1_200, 2), (4_800, 3)]
"""Users first answered at each step before 100%, and the looks taken during it."""


def plan(**metric: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "steps": STEPS,
            "min_duration": "1m",
            "min_units": 20,
            "metric": {"name": "click", "per": "impression", "min_effect": 0.01, **metric},
            "guardrails": {"drift": False},
        }
    )


def state_at(step_index: int, started: Any) -> RolloutState:
    return RolloutState(
        id=1,
        name="shop",
        salt="ratio",
        control={"kind": "version", "version": 1, "constant": None},
        candidate=2,
        unit=None,
        steps=STEPS,
        step_index=step_index,
        share=STEPS[step_index],
        state="running",
        started_at=T0,
        step_started_at=started,
        updated_at=started,
        verdict=None,
        plan={},
    )


@dataclass(frozen=True)
class World:
    """One simulated rollout's users, in the order they were first answered."""

    step: npt.NDArray[np.int64]
    arm: npt.NDArray[np.int64]
    first_us: npt.NDArray[np.int64]
    clicks: Floats
    answers: Floats
    pre: Floats

    @classmethod
    def draw(cls, rng: np.random.Generator, lift: float) -> World:
        steps, arms, times = [], [], []
        for index, (count, _) in enumerate(ARRIVALS):
            steps.append(np.full(count, index))
            arms.append((rng.random(count) * 100 < STEPS[index]).astype(np.int64))
            offset = np.sort(rng.integers(0, 3_600_000_000, count))
            times.append(int(T0.timestamp() * 1e6) + index * 3_600_000_000 + offset)
        arm = np.concatenate(arms)
        rate = rates(rng, len(arm))
        clicks, answers = users(rng, len(arm), np.where(arm == 1, rate * (1 + lift), rate))
        pre, _ = users(rng, len(arm), rate)  # the month before: each user's own rate, untreated
        return cls(np.concatenate(steps), arm, np.concatenate(times), clicks, answers, pre)

    def state(self) -> UnitsState:
        """The unit state once every user was answered (their clicks all in)."""
        state = UnitsState.new(["click"], None)
        u = state.units
        size = len(self.arm)
        u.add(pa.array(np.arange(size)).cast(pa.string()), np.arange(size, dtype=np.uint64))
        u.first_key[:] = self.first_us * 2 + self.arm
        u.first_candidate[:] = np.where(self.arm == 1, self.first_us, u.first_candidate)
        u.control_step_max[:] = np.where(self.arm == 0, self.step, NO_STEP_MAX)
        u.candidate_step_min[:] = np.where(self.arm == 1, self.step, NO_STEP_MIN)
        u.exposures[:] = self.answers
        u.post["click"][:] = self.clicks
        u.pre["click"][:] = self.pre
        u.post_events["click"][:] = self.clicks > 0
        return state

    def units(self, upto: int, state: UnitsState | None = None) -> UnitsState:
        """The unit state after the first ``upto`` users: ``state`` (:meth:`state`) with the
        later users not answered yet."""
        state = state or self.state()
        first = self.first_us * 2 + self.arm
        state.units.first_key = np.where(np.arange(len(first)) < upto, first, NONE)
        for name, which in (("control", 0), ("candidate", 1)):
            state.arms[name].answers = int(self.answers[:upto][self.arm[:upto] == which].sum())
        return state


def run(world: World, the_plan: Rollout) -> tuple[str, bool, Analysis]:
    """The rollout looked at and decided by the real analysis and verdict, step by step:
    the verdict that ended it (``complete``, ``rollback``, or the last ``hold``), whether any
    look declared the candidate significantly better, and the last analysis."""
    boundaries: list[Any] = [(T0, 0)]
    seen, better, kind = 0, False, "hold"
    analysis: Analysis | None = None
    full = world.state()
    for index, (count, looks) in enumerate(ARRIVALS):
        started = T0 + index * HOUR
        if index:
            boundaries.append((started, index))
        state = state_at(index, started)
        for look in range(1, looks + 1):
            upto = seen + count * look // looks
            analysis = analyse(
                world.units(upto, full), state, the_plan, boundaries=boundaries, items_per_answer=K
            )
            comparison = analysis.comparison
            better |= bool(analysis.enough and comparison and comparison.significant_better)
            verdict = decide(analysis, state, the_plan, started + HOUR * look / looks)
            kind = verdict.kind
            if kind in ("complete", "rollback", "pause"):
                return kind, better, analysis
            if kind == "promote":
                break
        seen += count
    assert analysis is not None
    return kind, better, analysis


def test_aa_rollouts_on_click_through_per_impression_complete_at_most_alpha() -> None:
    rng = np.random.default_rng(2026)
    outcomes = [run(World.draw(rng, lift=0.0), plan()) for _ in range(200)]
    completed = sum(kind == "complete" for kind, _, _ in outcomes) / len(outcomes)
    declared = sum(better for _, better, _ in outcomes) / len(outcomes)
    rolled_back = sum(kind == "rollback" for kind, _, _ in outcomes) / len(outcomes)
    assert completed <= 0.05, completed
    assert declared <= 0.05, declared
    assert rolled_back <= 0.05, rolled_back


def test_a_true_lift_in_click_through_is_found() -> None:
    rng = np.random.default_rng(7)
    found = []
    for _ in range(20):
        kind, _, analysis = run(World.draw(rng, lift=0.5), plan())
        found.append(kind == "complete")
        assert analysis.ratio is not None
        assert analysis.ratio["per"] == "impression"
    assert sum(found) >= 16, found


def test_the_evidence_says_how_impressions_were_counted_and_cuped_reduces_variance() -> None:
    world = World.draw(np.random.default_rng(3), lift=0.0)
    units = world.units(len(world.arm))
    analysis = analyse(
        units, state_at(2, T0 + 2 * HOUR), plan(), boundaries=[(T0, 0)], items_per_answer=K
    )
    ratio = analysis.evidence()["ratio"]
    control = world.arm == 0
    assert ratio["items_per_answer"] == K
    assert ratio["impressions"]["control"] == pytest.approx(world.answers[control].sum() * K)
    assert analysis.arms[0].mean == pytest.approx(
        world.clicks[control].sum() / (world.answers[control].sum() * K)
    )
    assert analysis.cuped["variance_reduction"] > 0.05


def test_items_per_answer_must_be_positive() -> None:
    world = World.draw(np.random.default_rng(4), lift=0.0)
    with pytest.raises(Exception, match="items_per_answer"):
        analyse(world.units(100), state_at(0, T0), plan(), boundaries=[(T0, 0)], items_per_answer=0)


def test_per_defaults_to_unit() -> None:
    metric = Rollout.model_validate({"metric": "click"}).metric
    assert metric is not None
    assert metric.per == "unit"


# ---------------------------------------------------------------- through the logs


def test_clicks_per_impression_read_from_the_service_logs(tmp_path: Path) -> None:
    """Two control and two candidate users with several answers each; clicks posted as
    counts and as true: each arm's value is its clicks over its answers times K."""
    answers, outcomes = [], []
    layout: dict[str, tuple[str, int, list[Any]]] = {
        "a": ("control", 3, [1, 2]),
        "b": ("control", 1, [True]),
        "c": ("candidate", 2, [1, 1, 1]),
        "d": ("candidate", 4, []),
    }
    for unit, (arm, asked, clicks) in layout.items():
        for i in range(asked):
            at = T0 + timedelta(minutes=i + 1)
            answers.append(answer(at, unit, arm, version=2 if arm == "candidate" else 1))
        for value in clicks:
            outcomes.append(outcome(T0 + timedelta(minutes=9), unit, value, name="click"))
    write(tmp_path / "predictions", answers)
    write(tmp_path / "outcomes", outcomes)
    the_plan = plan()
    units = update_units(
        tmp_path / "rollout" / "1",
        tmp_path / "predictions",
        salt="ratio",
        started_at=T0,
        boundaries=[(T0, 0)],
        names=["click"],
        latency_limit_ms=None,
    )
    analysis = analyse(units, state_at(0, T0), the_plan, boundaries=[(T0, 0)], items_per_answer=K)
    means = {arm.name: arm.mean for arm in analysis.arms}
    assert means["control"] == pytest.approx(4 / (4 * K))
    assert means["candidate"] == pytest.approx(3 / (6 * K))
    assert analysis.evidence()["ratio"]["outcome_sum"] == {"control": 4.0, "candidate": 3.0}
