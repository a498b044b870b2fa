"""Model quality, realised and estimated, and the features that explain its changes.

The pieces live in their own modules and are gathered here, the one import for callers:

* :func:`quality_reference` (:mod:`~taxiway.monitoring.quality_reference`): stored at training
  from the validation set: the calibration map, the calibration check that decides whether the
  estimate can be trusted, the reference metrics.
* :func:`read_outcomes` (:mod:`~taxiway.monitoring.quality_outcomes`): the outcomes log;
  :func:`join_outcomes` (:mod:`~taxiway.monitoring.quality_join`): outcomes paired with
  predictions by ``request_id``, else unit and time; :func:`realised`,
  :func:`realised_by_window` (:mod:`~taxiway.monitoring.quality_realised`): the metrics of
  the pairs, over a period or per window from one join.
* :func:`estimated` (:mod:`~taxiway.monitoring.quality_estimated`): CBPE while labels are
  delayed. It cannot see a concept change (inputs unchanged, their meaning changed): realised
  quality must page for that.
* :func:`rank_drivers` (here): which features' drift moves with the quality.

**Drivers.** For each feature, the Pearson correlation between its drift statistic per window
and the quality per window, over the windows where both are known; features are ranked by its
absolute value, largest first (ties by name). Correlation is unchanged by subtracting a fixed
baseline, so the quality level stands for its change against the reference: a negative
correlation reads "more drift, lower quality". A feature with fewer than 3 usable windows, or
whose drift (or the quality) does not vary over them, has no correlation and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality_estimated import EstimatedQuality, estimated
from taxiway.monitoring.quality_join import Joined, join_outcomes
from taxiway.monitoring.quality_outcomes import read_outcomes
from taxiway.monitoring.quality_realised import RealisedQuality, realised, realised_by_window
from taxiway.monitoring.quality_reference import ECE_BOUND, MIN_CLASS_ROWS, quality_reference

__all__ = [
    "ECE_BOUND",
    "MIN_CLASS_ROWS",
    "MIN_WINDOWS",
    "EstimatedQuality",
    "Joined",
    "RealisedQuality",
    "estimated",
    "join_outcomes",
    "quality_reference",
    "rank_drivers",
    "read_outcomes",
    "realised",
    "realised_by_window",
]

MIN_WINDOWS = 3
"""Windows with both a drift value and a quality value a correlation needs."""


def rank_drivers(
    drift_by_feature: Mapping[str, Sequence[float | None]],
    quality: Sequence[float | None],
) -> list[tuple[str, float]]:
    """Features ranked by ``|Pearson|`` between their per-window drift and the per-window
    quality (``None`` or NaN: that window is skipped).

    >>> drift = {"price": [0.0, 0.1, 0.4, 0.9], "age": [0.2, 0.1, 0.2, 0.1],
    ...          "flat": [0.1, 0.1, 0.1, 0.1]}
    >>> [(name, round(r, 3)) for name, r in rank_drivers(drift, [0.9, 0.85, None, 0.6])]
    [('price', -0.999), ('age', 0.629)]
    >>> rank_drivers({"price": [0.1, 0.2]}, [0.9, 0.8])
    []
    """
    q = _floats(quality)
    ranked: list[tuple[str, float]] = []
    for name, values in drift_by_feature.items():
        d = _floats(values)
        if len(d) != len(q):
            raise MonitoringError(
                f"feature {name!r} has {len(d)} drift values for {len(q)} quality windows",
                fix="pass one drift value per window (None where it is unknown)",
            )
        known = ~np.isnan(d) & ~np.isnan(q)
        if np.count_nonzero(known) < MIN_WINDOWS:
            continue
        if np.ptp(d[known]) == 0 or np.ptp(q[known]) == 0:
            continue  # no variation: the correlation is undefined, not 0
        x, y = d[known] - d[known].mean(), q[known] - q[known].mean()
        scale = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
        ranked.append((name, max(-1.0, min(1.0, float(np.dot(x, y)) / scale))))
    ranked.sort(key=lambda item: (-abs(item[1]), item[0]))
    return ranked


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
