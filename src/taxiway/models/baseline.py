"""The bar a model must clear: the training prior (or mean), or a one-feature rule.

The rule bins one feature on the training rows (quantile bins for numbers, one bin per value
for categories, a bin for missing) and predicts each bin's training rate (or mean). It is what
a careful analyst would ship without machine learning, and it is the fallback the service can
always compute. The baseline is whichever of the two scores better on validation.

>>> import numpy as np
>>> x = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, np.nan, np.nan])
>>> y = np.array([1.0, 1, 1, 1, 0, 0, 0, 0, 1, 1])
>>> rule = Baseline.of_rule("recent_orders", x, y, "classification", categorical=False, bins=2)
>>> rule.predict(np.array([1.0, 6.0, np.nan])).round(2).tolist()
[0.92, 0.12, 0.87]
>>> Baseline.of_prior(y, "classification").predict(np.array([3.0])).round(2).tolist()
[0.6]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["Baseline"]

_SMOOTHING = 1.0  # pseudo-rows at the prior, so a thin bin cannot predict exactly 0 or 1


@dataclass(frozen=True)
class Baseline:
    """A prior, or a lookup from one feature's bin to a prediction; JSON-serializable."""

    kind: Literal["prior", "rule"]
    prior: float
    feature: str | None = None
    categorical: bool = False
    edges: tuple[float, ...] = ()  # numeric: inner bin edges (right-closed bins)
    values: tuple[float, ...] = ()  # one per bin (categorical: one per code)
    missing: float | None = None  # the prediction when the feature is missing

    @classmethod
    def of_prior(cls, y: np.ndarray, task: str) -> Baseline:
        """The training rate (classification) or mean (regression), for every row."""
        del task  # the mean of 0/1 labels is the rate
        return cls(kind="prior", prior=float(np.mean(y)) if len(y) else 0.0)

    @classmethod
    def of_rule(
        cls,
        feature: str,
        x: np.ndarray,
        y: np.ndarray,
        task: str,
        *,
        categorical: bool,
        bins: int = 10,
    ) -> Baseline:
        """Bin ``x`` (training values of ``feature``) and learn each bin's rate or mean."""
        prior = float(np.mean(y)) if len(y) else 0.0
        known = ~np.isnan(x)

        def smoothed(mask: np.ndarray) -> float:
            count = int(mask.sum())
            return float((y[mask].sum() + _SMOOTHING * prior) / (count + _SMOOTHING))

        missing = smoothed(~known) if (~known).any() else prior
        del task  # rates and means are both averages of y
        if categorical:
            codes = x[known].astype(int)
            size = int(codes.max()) + 1 if len(codes) else 0
            values = tuple(smoothed(known & (np.nan_to_num(x, nan=-1) == c)) for c in range(size))
            return cls("rule", prior, feature, True, (), values, missing)
        quantiles = np.quantile(x[known], np.linspace(0, 1, bins + 1)[1:-1]) if known.any() else []
        edges = tuple(float(e) for e in np.unique(quantiles))
        index = np.searchsorted(edges, x, side="left")
        values = tuple(smoothed(known & (index == b)) for b in range(len(edges) + 1))
        return cls("rule", prior, feature, False, edges, values, missing)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for the baseline feature's encoded values ``x`` (ignored by a prior)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "prior":
            return np.full(len(x), self.prior)
        out = np.full(len(x), self.missing if self.missing is not None else self.prior)
        known = ~np.isnan(x)
        if self.categorical:
            codes = x[known].astype(int)
            table = np.array((*self.values, self.prior))  # unseen code -> prior
            out[known] = table[np.where((codes >= 0) & (codes < len(self.values)), codes, -1)]
        else:
            out[known] = np.asarray(self.values)[np.searchsorted(self.edges, x[known], "left")]
        return out

    def predict_one(self, value: float | None) -> float:
        """The prediction for one value (the fallback path of the service)."""
        return float(self.predict(np.array([np.nan if value is None else value]))[0])

    def describe(self) -> str:
        """In words, for reports."""
        if self.kind == "prior":
            return f"the training prior ({self.prior:.4g}) for everyone"
        how = "category" if self.categorical else f"{len(self.values)} quantile bins"
        return f"a one-feature rule on `{self.feature}` ({how}, rate per bin)"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved as ``baseline.json``)."""
        return {
            "kind": self.kind,
            "prior": self.prior,
            "feature": self.feature,
            "categorical": self.categorical,
            "edges": list(self.edges),
            "values": list(self.values),
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """The inverse of :meth:`as_dict`."""
        return cls(
            kind=data["kind"],
            prior=float(data["prior"]),
            feature=data.get("feature"),
            categorical=bool(data.get("categorical", False)),
            edges=tuple(data.get("edges", ())),
            values=tuple(data.get("values", ())),
            missing=data.get("missing"),
        )
