"""Monitoring of a served model: drift, latency and quality over its prediction log.

Profiles (``profiles.py``) summarise a column mergeably; drift statistics
(``statistics/``) compare a window's profile with the reference's; thresholds are
calibrated per window size (``calibration.py``); training stores a version's reference
(``reference.py``: :func:`build_reference`, read back with :func:`load_reference`). The
package sits below ``models`` and never imports ``models``, ``serving``, ``sprint`` or
``cli``. The names below load on first use, so importing the package costs nothing.

>>> import taxiway.monitoring as monitoring
>>> monitoring.NumericProfile.reference([1.0, 2.0]).known
2
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxiway.monitoring.calibration import SIZES, calibrate, threshold_for
    from taxiway.monitoring.profiles import (
        CategoricalProfile,
        NumericProfile,
        Profile,
        profile_from_dict,
    )
    from taxiway.monitoring.reference import Reference, Threshold, build_reference, load_reference
    from taxiway.monitoring.statistics import STATISTICS, Statistic, default_statistic

_WHERE = {
    "SIZES": "calibration",
    "calibrate": "calibration",
    "threshold_for": "calibration",
    "CategoricalProfile": "profiles",
    "NumericProfile": "profiles",
    "Profile": "profiles",
    "profile_from_dict": "profiles",
    "Reference": "reference",
    "Threshold": "reference",
    "build_reference": "reference",
    "load_reference": "reference",
    "STATISTICS": "statistics",
    "Statistic": "statistics",
    "default_statistic": "statistics",
}

__all__ = [
    "SIZES",
    "STATISTICS",
    "CategoricalProfile",
    "NumericProfile",
    "Profile",
    "Reference",
    "Statistic",
    "Threshold",
    "build_reference",
    "calibrate",
    "default_statistic",
    "load_reference",
    "profile_from_dict",
    "threshold_for",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'taxiway.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taxiway.monitoring.{_WHERE[name]}"), name)
