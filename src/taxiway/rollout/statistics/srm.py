"""Sample ratio mismatch: are the units split between the arms as the assignment says?

An assignment bug (a cache that serves one arm, a client that drops the unit key, a worker
hashing differently) makes every estimate meaningless, whatever its interval says, so a
mismatch halts the rollout before anything else is read.

Definition. ``counts`` are units per arm (each unit counted once, in the arm it was first
exposed to); ``expected_shares`` the arm shares the assignment promised (any positive
weights: ``{"control": 95, "candidate": 5}`` reads as 95% / 5%). Pearson's chi-square
goodness of fit, ``sum((observed - expected)^2 / expected)`` over the arms, with
``arms - 1`` degrees of freedom; its p-value from :func:`.tails.chi2_sf`.

Several steps. A rollout's share grows step by step (1%, 5%, 10%...), and a unit first
exposed during a step was assigned at *that* step's share. Given one count and share per
step, the expected count of each arm is summed over the steps (``sum_k n_k * share_k``),
then one test runs on the totals with ``arms - 1`` degrees of freedom. Chosen over a test per
step (which would need its alpha split across the steps, or a sum of chi-squares with one
degree of freedom per step): an assignment bug biases every step the same way, and the
pooled test sees that bias with all units at once, soonest.

Halting. ``ok`` is False when ``p < 0.001`` and every arm *expects* at least 8 units:
the expected count, not the observed one, so an arm that receives no unit at all (the worst
bug) is still caught. An arm expected to get no unit (share 0) that gets some is a mismatch
with p = 0. That p-value holds for *one* look: a rollout checked after every batch (hundreds
of checks) reading it each time halts 1 to 3% of correct rollouts, not 0.1%
(``bench/rollout.py --part srm``).

:func:`sequential_srm` is the anytime-valid test (Lindon and Malek 2022): a
Dirichlet-multinomial Bayes factor against the expected shares, whose reciprocal is a p-value
valid at every look. The rollout halts on it (:func:`taxiway.rollout.analysis.split_check`)
and reports the chi-square beside it. :func:`both_arms_check` is the other halting rule: units seen in both
arms at 1% or more.

>>> srm_test({"control": 5_000, "candidate": 5_000}, {"control": 0.5, "candidate": 0.5}).ok
True
>>> srm_test({"control": 5_200, "candidate": 4_800}, {"control": 50, "candidate": 50}).ok
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taxiway.errors import RolloutError
from taxiway.rollout.statistics.tails import chi2_sf

HALT_P = 0.001
"""A mismatch halts the rollout below this p-value."""
MIN_EXPECTED_UNITS = 8
"""No halt before every arm expects this many units (the chi-square approximation's floor)."""
BOTH_ARMS_LIMIT = 0.01
"""Units exposed to both arms, as a share of all units, that halt the rollout."""

Counts = Mapping[str, int]
Shares = Mapping[str, float]


@dataclass(frozen=True)
class SrmResult:
    """The chi-square test of the split: ``ok`` is False when the rollout must halt."""

    chi2: float
    p_value: float
    df: int
    observed: dict[str, int]
    expected: dict[str, float]
    enough_units: bool
    ok: bool

    @property
    def halt(self) -> bool:
        """True when the split is a mismatch (the opposite of ``ok``)."""
        return not self.ok


@dataclass(frozen=True)
class SequentialSrm:
    """Lindon and Malek's test: the Bayes factor and its anytime-valid p-value."""

    bayes_factor: float
    p_value: float
    ok: bool


@dataclass(frozen=True)
class BothArms:
    """Units exposed to both arms and their share of all units; ``ok`` is False to halt."""

    units_in_both: int
    units: int
    share: float
    ok: bool


def _steps(
    counts: Counts | Sequence[Counts], expected_shares: Shares | Sequence[Shares]
) -> list[tuple[Counts, dict[str, float]]]:
    """The test's input as one (counts, normalised shares) pair per step."""
    if isinstance(counts, Mapping) != isinstance(expected_shares, Mapping):
        raise RolloutError(
            "counts and expected shares must both be one mapping or both a list per step",
            fix="pass {arm: units} with {arm: share}, or a list of each, one entry per step",
        )
    count_steps = [counts] if isinstance(counts, Mapping) else list(counts)
    share_steps = (
        [expected_shares] if isinstance(expected_shares, Mapping) else list(expected_shares)
    )
    if len(count_steps) != len(share_steps) or not count_steps:
        raise RolloutError(
            f"{len(count_steps)} step(s) of counts but {len(share_steps)} of shares",
            fix="give one {arm: share} per step of counts",
        )
    steps = []
    for step_counts, shares in zip(count_steps, share_steps, strict=True):
        total = sum(shares.values())
        if total <= 0 or any(share < 0 for share in shares.values()):
            raise RolloutError(
                f"expected shares {dict(shares)} must be >= 0 with a positive sum",
                fix="give each arm its share of traffic, e.g. {'control': 95, 'candidate': 5}",
            )
        if any(count < 0 for count in step_counts.values()):
            raise RolloutError(f"negative unit counts {dict(step_counts)}", fix="count units")
        steps.append((step_counts, {arm: share / total for arm, share in shares.items()}))
    return steps


def _arms(steps: list[tuple[Counts, dict[str, float]]]) -> list[str]:
    seen: dict[str, None] = {}
    for step_counts, shares in steps:
        seen.update(dict.fromkeys(shares))
        seen.update(dict.fromkeys(step_counts))
    return list(seen)


def srm_test(
    counts: Counts | Sequence[Counts],
    expected_shares: Shares | Sequence[Shares],
    *,
    halt_p: float = HALT_P,
    min_expected: float = MIN_EXPECTED_UNITS,
) -> SrmResult:
    """Pearson's chi-square of units per arm against the expected shares (one step, or a
    list of steps with their own shares: see the module docstring).

    >>> steps = [{"control": 990, "candidate": 10}, {"control": 1_900, "candidate": 100}]
    >>> result = srm_test(steps, [{"control": 99, "candidate": 1}, {"control": 95, "candidate": 5}])
    >>> result.expected, result.ok
    ({'control': 2890.0, 'candidate': 110.0}, True)
    >>> srm_test({"control": 3, "candidate": 0}, {"control": 1, "candidate": 1}).enough_units
    False
    """
    steps = _steps(counts, expected_shares)
    arms = _arms(steps)
    observed = {arm: sum(int(c.get(arm, 0)) for c, _ in steps) for arm in arms}
    expected = {arm: sum(sum(c.values()) * s.get(arm, 0.0) for c, s in steps) for arm in arms}
    live = [arm for arm in arms if expected[arm] > 0]
    stray = sum(observed[arm] for arm in arms if expected[arm] == 0)
    chi2 = sum((observed[arm] - expected[arm]) ** 2 / expected[arm] for arm in live)
    df = max(1, len(live) - 1)
    if stray:
        chi2, p_value = math.inf, 0.0
    else:
        p_value = chi2_sf(chi2, df) if len(live) > 1 else 1.0
    enough = all(expected[arm] >= min_expected for arm in live) or bool(stray)
    return SrmResult(
        chi2=chi2,
        p_value=p_value,
        df=df,
        observed=observed,
        expected=expected,
        enough_units=enough,
        ok=not (enough and p_value < halt_p),
    )


def _log_beta(values: Sequence[float]) -> float:
    return sum(math.lgamma(v) for v in values) - math.lgamma(sum(values))


def sequential_srm(
    counts: Counts | Sequence[Counts],
    expected_shares: Shares | Sequence[Shares],
    *,
    prior_units: float = 100.0,
    halt_p: float = HALT_P,
) -> SequentialSrm:
    """Lindon and Malek's (2022) anytime-valid SRM test.

    Per step, the Bayes factor of a Dirichlet-multinomial alternative (prior
    ``Dirichlet(prior_units * shares)``: centred on the promised split, as sure as
    ``prior_units`` units would make it) against the promised shares::

        BF = B(prior + counts) / B(prior) / prod(share_i ^ count_i)

    It depends on the counts only, and under the promised split it is a nonnegative
    martingale with mean 1, so ``P(BF ever >= 1 / alpha) <= alpha`` (Ville): halting when
    ``1 / BF < halt_p`` at any look keeps the false-halt rate under ``halt_p``. Over steps
    the per-step factors multiply (each step's factor starts at 1 when the step does).
    ``p_value`` is ``min(1, 1 / BF)`` at this look; a caller may keep its running minimum.

    >>> fair = sequential_srm({"control": 5_000, "candidate": 5_000}, {"control": 1, "candidate": 1})
    >>> fair.ok, fair.p_value
    (True, 1.0)
    >>> sequential_srm({"control": 5_300, "candidate": 4_700}, {"control": 1, "candidate": 1}).ok
    False
    """
    log_bf = 0.0
    for step_counts, shares in _steps(counts, expected_shares):
        arms = _arms([(step_counts, shares)])
        if any(shares.get(arm, 0.0) == 0.0 and step_counts.get(arm, 0) > 0 for arm in arms):
            return SequentialSrm(math.inf, 0.0, False)
        live = [arm for arm in arms if shares.get(arm, 0.0) > 0.0]
        observed = [float(step_counts.get(arm, 0)) for arm in live]
        prior = [prior_units * shares[arm] for arm in live]
        posterior = [a + n for a, n in zip(prior, observed, strict=True)]
        null = sum(n * math.log(shares[arm]) for arm, n in zip(live, observed, strict=True))
        log_bf += _log_beta(posterior) - _log_beta(prior) - null
    bayes_factor = math.exp(min(log_bf, 700.0))
    p_value = min(1.0, math.exp(-log_bf)) if log_bf > -700 else 1.0
    return SequentialSrm(bayes_factor, p_value, p_value >= halt_p)


def both_arms_check(units_in_both: int, units: int, limit: float = BOTH_ARMS_LIMIT) -> BothArms:
    """Units exposed to both arms as a share of all units; ``ok`` is False (halt) at
    ``limit`` (1%) or more: those units' outcomes belong to neither arm, and so many of them
    mean the assignment is not sticky (a unit key that changes, a cache across arms).

    A unit the growing share moved from control to candidate at a step change is not one of
    them: sticky assignment moves those by design; count a unit as in both arms when it saw
    both within one step.

    >>> both_arms_check(5, 1_000)
    BothArms(units_in_both=5, units=1000, share=0.005, ok=True)
    >>> both_arms_check(10, 1_000).ok
    False
    """
    share = units_in_both / units if units > 0 else 0.0
    return BothArms(units_in_both, units, share, share < limit)
