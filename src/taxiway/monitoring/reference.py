"""A version's monitoring reference: a profile per feature and for the output, and thresholds.

Training calls :func:`build_reference` once per version (from the training columns and the
model's output on them) and stores the JSON-able dict it returns; the monitor reads it back
with :func:`load_reference`. The dict:

``{"format": 1, "statistic": {"numeric": "psi", "categorical": "chi2"},
"features": {name: profile dict}, "output": profile dict,
"thresholds": {name or "__output__": {"statistic": "psi", "by_size": {"200": 0.1, ...}}}}``

Each column's statistic is :func:`~taxiway.monitoring.statistics.default_statistic` of its
kind and the spec's choice; its thresholds are calibrated per window size
(:mod:`taxiway.monitoring.calibration`). The output is profiled as numbers when it is numeric
(scores, probabilities, regression values), as categories otherwise (predicted labels).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stored = build_reference(
...     {"age": rng.normal(40, 10, 5_000), "city": rng.choice(["a", "b"], 5_000)},
...     {"age": "numeric", "city": "categorical"},
...     rng.uniform(size=5_000),
... )
>>> stored["statistic"], sorted(stored["thresholds"])
({'numeric': 'psi', 'categorical': 'chi2'}, ['__output__', 'age', 'city'])
>>> reference = load_reference(stored)
>>> reference.statistic_of("city").name, reference.threshold("age", 500) > 0
('chi2', True)
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.calibration import RESAMPLES, SIZES, calibrate, threshold_for
from taxiway.monitoring.profiles import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    profile_from_dict,
)
from taxiway.monitoring.statistics import STATISTICS, Kind, Statistic, default_statistic

__all__ = ["FORMAT", "OUTPUT", "Reference", "Threshold", "build_reference", "load_reference"]

FORMAT: Final = 1
"""The stored reference's format number."""
OUTPUT: Final = "__output__"
"""The key of the model output's thresholds."""


@dataclass(frozen=True)
class Threshold:
    """One column's calibrated thresholds: the statistic and its value per window size.

    >>> Threshold("psi", {200: 0.1, 20_000: 0.01}).at(2_000)
    0.0316227766016838
    """

    statistic: str
    by_size: dict[int, float]

    def at(self, n: int) -> float:
        """The threshold for a window of ``n`` rows (log-log interpolated)."""
        return threshold_for(self.by_size, n)

    def to_dict(self) -> dict[str, Any]:
        """``{"statistic": name, "by_size": {"200": value, ...}}`` (JSON keys are strings)."""
        return {
            "statistic": self.statistic,
            "by_size": {str(n): v for n, v in self.by_size.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Threshold:
        """The threshold :meth:`to_dict` wrote."""
        return cls(str(d["statistic"]), {int(n): float(v) for n, v in d["by_size"].items()})


@dataclass(frozen=True)
class Reference:
    """A loaded reference: profiles, the statistic per kind, thresholds per column."""

    features: dict[str, Profile]
    output: Profile
    thresholds: dict[str, Threshold]
    statistics: dict[str, str]

    def statistic_of(self, name: str) -> Statistic:
        """The statistic a column (or :data:`OUTPUT`) is judged by."""
        return STATISTICS[self._threshold(name).statistic]

    def threshold(self, name: str, n: int) -> float:
        """A column's calibrated threshold for a window of ``n`` rows."""
        return self._threshold(name).at(n)

    def profile(self, name: str) -> Profile:
        """A column's reference profile (:data:`OUTPUT` for the output)."""
        if name == OUTPUT:
            return self.output
        if name not in self.features:
            raise MonitoringError(
                f"the reference has no feature {name!r}",
                fix="monitor the features the model version was trained on",
            )
        return self.features[name]

    def _threshold(self, name: str) -> Threshold:
        if name not in self.thresholds:
            raise MonitoringError(
                f"the reference has no threshold for {name!r}",
                fix="rebuild the version's reference (build_reference covers every column)",
            )
        return self.thresholds[name]


def _seed(seed: int, name: str) -> int:
    """A per-column seed that does not depend on the columns' order."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def _profile(values: npt.ArrayLike | Sequence[object], kind: Kind) -> Profile:
    if kind == "numeric":
        return NumericProfile.reference(values)
    if kind == "categorical":
        return CategoricalProfile.reference(values)
    raise MonitoringError(
        f"a column kind must be numeric or categorical, not {kind!r}",
        fix="pass kinds as 'numeric' or 'categorical' per column",
    )


def _output_kind(output: npt.NDArray[Any]) -> Kind:
    return "numeric" if output.dtype.kind in "fiu" else "categorical"


def build_reference(
    columns: Mapping[str, npt.ArrayLike | Sequence[object]],
    kinds: Mapping[str, Kind],
    output: npt.ArrayLike | Sequence[object],
    statistic: str = "psi",
    sizes: Sequence[int] = SIZES,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile every column and the output, and calibrate each one's thresholds.

    ``columns[name]``: numbers (NaN / None for missing) or labels (None for missing), as
    ``kinds[name]`` says; ``statistic``: the spec's ``monitoring.drift``.

    >>> stored = build_reference({"x": [1.0, 2.0, 3.0]}, {"x": "numeric"}, [0.1, 0.5, 0.9],
    ...                          sizes=(200,))
    >>> stored["thresholds"]["x"]["statistic"], list(stored["thresholds"]["x"]["by_size"])
    ('psi', ['200'])
    """
    missing = sorted(set(columns) - set(kinds))
    if missing:
        raise MonitoringError(
            f"no kind given for column(s) {', '.join(missing)}",
            fix="pass kinds[name] = 'numeric' or 'categorical' for every column",
        )
    choice = {
        "numeric": default_statistic("numeric", statistic).name,
        "categorical": default_statistic("categorical", statistic).name,
    }
    out = np.asarray(output)
    if out.ndim != 1:
        raise MonitoringError(
            f"the model output to profile has shape {out.shape}, not one value per row",
            fix="pass one score, value or label per row (e.g. the positive class's probability)",
        )
    profiles: dict[str, Profile] = {name: _profile(columns[name], kinds[name]) for name in columns}
    output_profile = _profile(out, _output_kind(out))
    thresholds: dict[str, Any] = {}
    for name, profile in [*profiles.items(), (OUTPUT, output_profile)]:
        chosen = STATISTICS[choice[profile.kind]]
        by_size = (
            calibrate(profile, chosen, sizes, resamples, seed=_seed(seed, name))
            if profile.known
            else {int(n): 0.0 for n in sizes}  # nothing known: drift is judged on missing share
        )
        thresholds[name] = Threshold(chosen.name, by_size).to_dict()
    return {
        "format": FORMAT,
        "statistic": choice,
        "features": {name: profile.to_dict() for name, profile in profiles.items()},
        "output": output_profile.to_dict(),
        "thresholds": thresholds,
    }


def load_reference(d: Mapping[str, Any]) -> Reference:
    """The :class:`Reference` a stored :func:`build_reference` dict describes.

    >>> load_reference({"format": 2})
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: the stored monitoring reference has format 2; this taxiway reads format 1
      fix: retrain the version (training stores the reference) or upgrade taxiway
    """
    if d.get("format") != FORMAT:
        raise MonitoringError(
            f"the stored monitoring reference has format {d.get('format')}; this taxiway reads"
            f" format {FORMAT}",
            fix="retrain the version (training stores the reference) or upgrade taxiway",
        )
    try:
        return Reference(
            features={name: profile_from_dict(p) for name, p in d["features"].items()},
            output=profile_from_dict(d["output"]),
            thresholds={name: Threshold.from_dict(t) for name, t in d["thresholds"].items()},
            statistics=dict(d["statistic"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MonitoringError(
            f"the stored monitoring reference is incomplete or damaged ({error!r})",
            fix="retrain the version, or rebuild its reference with build_reference",
        ) from error
