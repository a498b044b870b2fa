"""Guardrails: what must not get worse in the candidate arm, each watched by a one-sided
anytime-valid bound, with the rollout's alpha split across them.

Definition. A guardrail is a rate or a mean per arm (:class:`.arms.ArmStats`): an error
rate, a fallback rate, an outcome such as revenue. ``worse`` says which way is harm. It is
either *relative* (the candidate minus control must not be worse by more than
``tolerance``) or *absolute* (``limit``: the candidate's own value must not be beyond it, e.g.
an error rate of at most 1%). A p99 latency budget is the absolute rate of answers slower
than the budget, with limit 0.01.

Each guardrail's estimate (the difference, or the candidate's value) gets a one-sided bound
on its *better* side, at level ``alpha / k`` for ``k`` guardrails (Bonferroni: the chance
that any healthy guardrail is ever called breached stays under ``alpha``), from the
one-sided normal-mixture boundary (:func:`.sequences.half_width` with ``sides=1``), so it
can be checked at every look. ``breached`` when even that bound is beyond the threshold:
the candidate is worse by more than the tolerance (or beyond the limit) with confidence,
at any look. ``not_enough_data`` before ``min_units`` units in each arm read and
``min_events`` events in them together (events in either arm count: harm shows as the
candidate's events, and a control with no error must not hide it). Otherwise ``ok``.

>>> errors = Guardrail("error_rate", worse="higher", tolerance=0.005)
>>> control = ArmStats("control", 5_000, 50, 0.010, 0.0099)
>>> candidate = ArmStats("candidate", 5_000, 250, 0.050, 0.0475)
>>> result = check_guardrail(errors, control, candidate, alpha=0.05)
>>> result.status, round(result.estimate, 3), result.bound > result.threshold
('breached', 0.04, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from taxiway.errors import RolloutError
from taxiway.rollout.statistics.arms import ArmStats
from taxiway.rollout.statistics.power import DEFAULT_PLANNED_UNITS
from taxiway.rollout.statistics.sequences import difference_variance, half_width

Worse = Literal["higher", "lower"]
Status = Literal["breached", "ok", "not_enough_data"]
MIN_UNITS = 100
"""Units per arm before a guardrail is judged (the issue's floor for any decision)."""
MIN_EVENTS = 10
"""Events (errors, fallbacks, non-zero outcomes) in the arms together before judging."""


@dataclass(frozen=True)
class Guardrail:
    """What must not get worse: by more than ``tolerance`` against control, or (``limit``)
    beyond an absolute value."""

    name: str
    worse: Worse = "higher"
    tolerance: float = 0.0
    limit: float | None = None


@dataclass(frozen=True)
class GuardrailResult:
    """A guardrail's status with its evidence.

    ``estimate``: candidate minus control (relative) or the candidate's value (absolute);
    ``bound``: its one-sided anytime-valid bound on the better side (lower when higher is
    worse); ``threshold``: ``± tolerance`` (relative) or the limit; ``alpha``: this
    guardrail's share of the rollout's alpha.
    """

    name: str
    status: Status
    estimate: float
    bound: float
    threshold: float
    alpha: float
    units: int
    events: int

    @property
    def breached(self) -> bool:
        """True when the guardrail calls for a rollback."""
        return self.status == "breached"

    def as_dict(self) -> dict[str, object]:
        """The fields as a JSON-ready dict (the evidence written with a verdict)."""
        return asdict(self)


def check_guardrail(
    guardrail: Guardrail,
    control: ArmStats | None,
    candidate: ArmStats,
    *,
    alpha: float,
    planned_n: int = DEFAULT_PLANNED_UNITS,
    min_units: int = MIN_UNITS,
    min_events: int = MIN_EVENTS,
) -> GuardrailResult:
    """One guardrail at level ``alpha`` (already its share): ``control`` None for an
    absolute ``limit``.

    >>> limit = Guardrail("error_rate", limit=0.01)
    >>> few = ArmStats("candidate", 50, 40, 0.8, 0.16)
    >>> check_guardrail(limit, None, few, alpha=0.01).status
    'not_enough_data'
    """
    sign = 1.0 if guardrail.worse == "higher" else -1.0
    arms = [candidate] if control is None else [control, candidate]
    units = min(arm.units for arm in arms)
    events = sum(arm.events for arm in arms)
    if control is None:
        if guardrail.limit is None:
            raise RolloutError(
                f"guardrail {guardrail.name!r} has no limit and no control arm to compare with",
                fix="give the control arm's numbers, or an absolute limit",
            )
        estimate, threshold = candidate.mean, guardrail.limit
        var = candidate.variance_of_mean
        planned_total = float(planned_n)
    else:
        estimate = candidate.mean - control.mean
        threshold = sign * guardrail.tolerance
        var = difference_variance(control, candidate)
        planned_total = 2.0 * planned_n
    n = sum(arm.units for arm in arms)
    width = half_width(var, n, alpha, planned_total, sides=1) if units >= 2 else math.inf
    bound = estimate - sign * width
    if units < min_units or events < min_events:
        status: Status = "not_enough_data"
    elif sign * (bound - threshold) > 0.0:
        status = "breached"
    else:
        status = "ok"
    return GuardrailResult(guardrail.name, status, estimate, bound, threshold, alpha, units, events)


def check_guardrails(
    measured: Sequence[tuple[Guardrail, ArmStats | None, ArmStats]],
    *,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_UNITS,
    min_units: int = MIN_UNITS,
    min_events: int = MIN_EVENTS,
) -> list[GuardrailResult]:
    """Every guardrail, each at ``alpha / len(measured)``: ``(guardrail, control or None,
    candidate)`` per guardrail, results in the same order.

    >>> fallback = Guardrail("fallback_rate", tolerance=0.05)
    >>> arm = ArmStats("arm", 1_000, 20, 0.02, 0.0196)
    >>> [(r.status, r.alpha) for r in check_guardrails([(fallback, arm, arm)] * 2)]
    [('ok', 0.025), ('ok', 0.025)]
    """
    if not measured:
        return []
    each = alpha / len(measured)
    return [
        check_guardrail(
            guardrail,
            control,
            candidate,
            alpha=each,
            planned_n=planned_n,
            min_units=min_units,
            min_events=min_events,
        )
        for guardrail, control, candidate in measured
    ]
