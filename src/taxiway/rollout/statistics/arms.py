"""What the tests read of each arm (:class:`ArmStats`) and what a comparison says
(:class:`Comparison`).

An arm is summed per *unit* (a user), never per request: ``units`` is how many units were
exposed to it, ``mean`` and ``var`` are the mean and the sample variance (``ddof=1``) of the
units' outcomes (a unit without an outcome counts 0: it did not convert, spent nothing),
``events`` how many units had a non-zero outcome (conversions; the rollout waits for 10 per
arm before deciding anything). A comparison is always candidate minus control.

>>> control = ArmStats.of("control", [0, 1, 0, 0])
>>> control.units, control.events, control.mean, round(control.var, 4)
(4, 1, 0.25, 0.25)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Direction = Literal["increase", "decrease"]
"""Which way is better for an outcome (the spec's ``rollout.metric.direction``)."""


@dataclass(frozen=True)
class ArmStats:
    """One arm's units, events, and the mean and sample variance of its units' outcomes."""

    name: str
    units: int
    events: int
    mean: float
    var: float

    @classmethod
    def of(cls, name: str, outcomes: npt.ArrayLike, events: int | None = None) -> ArmStats:
        """An arm from its units' outcomes (one value per unit). ``events`` defaults to the
        units with a non-zero outcome; give it when the outcomes are adjusted (CUPED), where
        that count no longer means anything.

        >>> ArmStats.of("candidate", [2.0, 4.0])
        ArmStats(name='candidate', units=2, events=2, mean=3.0, var=2.0)
        >>> ArmStats.of("candidate", [0.1, 0.9], events=1).events
        1
        >>> ArmStats.of("control", []).mean
        0.0
        """
        values = np.asarray(outcomes, dtype=np.float64).ravel()
        counted = int(np.count_nonzero(values)) if events is None else events
        if values.size == 0:
            return cls(name, 0, counted, 0.0, 0.0)
        var = float(values.var(ddof=1)) if values.size > 1 else 0.0
        return cls(name, int(values.size), counted, float(values.mean()), var)

    @classmethod
    def from_sums(
        cls, name: str, units: int, total: float, total_sq: float, events: int
    ) -> ArmStats:
        """An arm from running sums: the sum of outcomes and of their squares (what an
        incremental reader keeps), so the log need not be read twice.

        >>> ArmStats.from_sums("control", 4, 1.0, 1.0, 1) == ArmStats.of("control", [0, 1, 0, 0])
        True
        """
        if units <= 0:
            return cls(name, 0, events, 0.0, 0.0)
        mean = total / units
        var = max(0.0, (total_sq - units * mean * mean) / (units - 1)) if units > 1 else 0.0
        return cls(name, units, events, mean, var)

    @property
    def variance_of_mean(self) -> float:
        """var / units: the squared standard error of the arm's mean (inf without units)."""
        return self.var / self.units if self.units > 0 else math.inf


@dataclass(frozen=True)
class Comparison:
    """Candidate minus control, with its anytime-valid interval and what it lets one say.

    ``relative`` is ``diff / |control mean|`` (None when the control mean is 0).
    ``significant_better`` means the whole interval lies on the better side of 0 for the
    metric's direction, ``significant_worse`` on the worse side; neither means "not yet".
    """

    diff: float
    low: float
    high: float
    relative: float | None
    significant_better: bool
    significant_worse: bool

    def as_dict(self) -> dict[str, float | bool | None]:
        """The fields as a JSON-ready dict (the evidence written with a verdict).

        >>> Comparison(0.5, 0.1, 0.9, 0.05, True, False).as_dict()["low"]
        0.1
        """
        return asdict(self)
