"""The drift statistics, one module each behind the :class:`Statistic` protocol.

Every statistic compares two samples, ``compare(reference, current) -> float``: numbers
(``kind == "numeric"``) or category labels (``kind == "categorical"``). 0 means "no
difference"; the value grows with the shift. Binned statistics (PSI, Jensen-Shannon) bin
both samples on the reference's deciles (:func:`reference_edges`).

The monitor compares profiles instead, ``between(reference, current)``, computed from the
profiles only (:mod:`taxiway.monitoring.profiles`); ``of_cells`` scores many windows at once
(calibration). :func:`default_statistic` picks the statistic for a column kind.

>>> sorted(STATISTICS)
['chi2', 'jensen_shannon', 'ks', 'linf', 'psi', 'wasserstein']
>>> STATISTICS["ks"].compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
0.0
"""

from __future__ import annotations

from taxiway.errors import MonitoringError
from taxiway.monitoring.statistics.base import (
    Cells,
    Kind,
    Statistic,
    bin_shares,
    category_counts,
    cells_between,
    reference_edges,
)
from taxiway.monitoring.statistics.chi2 import ChiSquare
from taxiway.monitoring.statistics.jensen_shannon import JensenShannon
from taxiway.monitoring.statistics.ks import KolmogorovSmirnov, ks_pvalue
from taxiway.monitoring.statistics.linf import LInfinity
from taxiway.monitoring.statistics.psi import PopulationStability
from taxiway.monitoring.statistics.wasserstein import Wasserstein

STATISTICS: dict[str, Statistic] = {
    statistic.name: statistic
    for statistic in (
        PopulationStability(),
        JensenShannon(),
        Wasserstein(),
        KolmogorovSmirnov(),
        ChiSquare(),
        LInfinity(),
    )
}

CATEGORICAL_DEFAULT = "chi2"
"""The statistic of categorical columns unless the spec names a categorical one."""
NUMERIC_DEFAULT = "psi"
"""The statistic of numeric columns (and the output) unless the spec names a numeric one."""


def default_statistic(kind: Kind, choice: str | None = None) -> Statistic:
    """The statistic for a column of ``kind`` when the spec's ``monitoring.drift`` is ``choice``.

    Numeric columns take the spec's choice when it compares numbers (psi, jensen_shannon, ks,
    wasserstein), else PSI. Categorical columns take the choice only when it is a categorical
    statistic (chi2, linf), else chi-square. PSI and JS *can* compare category shares
    (``between`` accepts categorical profiles), but a spec's ``psi`` is read as the numeric
    choice: chi-square's counts need no epsilon for a label one side lacks, and with calibrated
    thresholds its growth with n does no harm.

    >>> default_statistic("numeric").name, default_statistic("categorical").name
    ('psi', 'chi2')
    >>> default_statistic("numeric", "ks").name, default_statistic("categorical", "ks").name
    ('ks', 'chi2')
    >>> default_statistic("numeric", "chi2").name, default_statistic("categorical", "linf").name
    ('psi', 'linf')
    """
    if choice is not None and choice not in STATISTICS:
        raise MonitoringError(
            f"there is no drift statistic {choice!r}",
            fix=f"pick one of {', '.join(sorted(STATISTICS))}",
        )
    if choice is not None and STATISTICS[choice].kind == kind:
        return STATISTICS[choice]
    return STATISTICS[NUMERIC_DEFAULT if kind == "numeric" else CATEGORICAL_DEFAULT]


__all__ = [
    "CATEGORICAL_DEFAULT",
    "NUMERIC_DEFAULT",
    "STATISTICS",
    "Cells",
    "ChiSquare",
    "JensenShannon",
    "Kind",
    "KolmogorovSmirnov",
    "LInfinity",
    "PopulationStability",
    "Statistic",
    "Wasserstein",
    "bin_shares",
    "category_counts",
    "cells_between",
    "default_statistic",
    "ks_pvalue",
    "reference_edges",
]
