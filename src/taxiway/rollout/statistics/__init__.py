"""The rollout's statistics, valid under continuous looking, one module each (pure numpy):

- :mod:`.srm`: sample ratio mismatch (chi-square per step, pooled; Lindon and Malek's
  sequential test) and the units-in-both-arms rule;
- :mod:`.sequences`: the anytime-valid confidence sequence for candidate minus control;
- :mod:`.cuped`: variance reduction from each unit's pre-exposure outcome;
- :mod:`.guardrails`: one-sided sequential bounds, alpha split across guardrails;
- :mod:`.power`: fixed-horizon sample sizes and the sample the sequence is tuned to;
- :mod:`.arms`: what is read of each arm, and what a comparison says;
- :mod:`.interleaving`: the always-valid sign test of interleaved users' preferences;
- :mod:`.tails`: the normal and chi-square tail probabilities (no scipy).

>>> control = ArmStats("control", 60_000, 6_000, 0.100, 0.0900)
>>> candidate = ArmStats("candidate", 60_000, 6_300, 0.105, 0.0940)
>>> planned = fixed_horizon_units(0.10, 0.105)
>>> compare(control, candidate, planned_n=planned).significant_better
False
>>> srm_test({"control": 60_000, "candidate": 60_000}, {"control": 1, "candidate": 1}).ok
True
"""

from __future__ import annotations

from taxiway.rollout.statistics.arms import ArmStats, Comparison, Direction
from taxiway.rollout.statistics.cuped import cuped_adjust, variance_reduction
from taxiway.rollout.statistics.guardrails import (
    Guardrail,
    GuardrailResult,
    check_guardrail,
    check_guardrails,
)
from taxiway.rollout.statistics.interleaving import (
    InterleavingResult,
    interleaving_test,
    preferences,
)
from taxiway.rollout.statistics.power import (
    DEFAULT_PLANNED_UNITS,
    fixed_horizon_units,
    fixed_horizon_units_for_mean,
    planned_units,
)
from taxiway.rollout.statistics.sequences import (
    compare,
    confidence_sequence,
    difference_variance,
    half_width,
)
from taxiway.rollout.statistics.srm import (
    BothArms,
    SequentialSrm,
    SrmResult,
    both_arms_check,
    sequential_srm,
    srm_test,
)
from taxiway.rollout.statistics.tails import chi2_sf, normal_quantile, normal_sf

__all__ = [
    "DEFAULT_PLANNED_UNITS",
    "ArmStats",
    "BothArms",
    "Comparison",
    "Direction",
    "Guardrail",
    "GuardrailResult",
    "InterleavingResult",
    "SequentialSrm",
    "SrmResult",
    "both_arms_check",
    "check_guardrail",
    "check_guardrails",
    "chi2_sf",
    "compare",
    "confidence_sequence",
    "cuped_adjust",
    "difference_variance",
    "fixed_horizon_units",
    "fixed_horizon_units_for_mean",
    "half_width",
    "interleaving_test",
    "normal_quantile",
    "normal_sf",
    "planned_units",
    "preferences",
    "sequential_srm",
    "srm_test",
    "variance_reduction",
]
