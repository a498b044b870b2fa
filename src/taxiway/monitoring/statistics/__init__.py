"""The drift statistics, one module each behind the :class:`Statistic` protocol.

Every statistic compares two samples, ``compare(reference, current) -> float``: numbers
(``kind == "numeric"``) or category labels (``kind == "categorical"``). 0 means "no
difference"; the value grows with the shift. Binned statistics (PSI, Jensen-Shannon) bin
both samples on the reference's deciles (:func:`reference_edges`).

>>> sorted(STATISTICS)
['chi2', 'jensen_shannon', 'ks', 'linf', 'psi', 'wasserstein']
>>> STATISTICS["ks"].compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
0.0
"""

from __future__ import annotations

from taxiway.monitoring.statistics.base import (
    Kind,
    Statistic,
    bin_shares,
    category_counts,
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

__all__ = [
    "STATISTICS",
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
    "ks_pvalue",
    "reference_edges",
]
