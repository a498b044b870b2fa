"""The bar a model must clear: the best, on validation, of the prior and one-feature rules.

A **prior** predicts the training rate (classification) or mean (regression) for everyone. A
**one-feature rule** bins one feature on the training rows (10 quantile bins for a number, one
bin per value for a category, one bin for missing) and predicts each bin's training rate or
mean, smoothed towards the prior by one pseudo-row. It is what a careful analyst would ship
without machine learning, and the fallback the service can always compute.

How the baseline is chosen (:func:`choose_baseline`), so that a model beating it is evidence:

1. Every candidate feature (``taxiway train`` passes the model's inputs) gets its rule,
   **fitted on the training split only**: the bin edges and each bin's rate come from
   training rows; validation rows are never used to fit.
2. Each rule, and the prior, predicts the **validation** rows and is scored there on the
   spec's metric (``model.metric``): the scores the model is compared with.
3. The baseline is the best of them; a tie keeps the prior, then the earlier candidate. So its
   validation score is at least the prior's and at least every rule's. A rule's direction is
   the one its training bins learned (a feature that ranks the other way on validation scores
   below 0.5 ROC AUC there and loses to the prior); it is never flipped on validation.

``model.baseline_feature`` pins the rule to one feature: the baseline is then the better of
that rule and the prior. A rule costs one quantile pass, one ``searchsorted`` and one
``bincount`` over the training rows, and one metric (a sort, for ROC AUC) on validation.

>>> import numpy as np
>>> x = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, np.nan, np.nan])
>>> y = np.array([1.0, 1, 1, 1, 0, 0, 0, 0, 1, 1])
>>> rule = Baseline.of_rule("recent_orders", x, y, "classification", categorical=False, bins=2)
>>> rule.predict(np.array([1.0, 6.0, np.nan])).round(2).tolist()
[0.92, 0.12, 0.87]
>>> Baseline.of_prior(y, "classification").predict(np.array([3.0])).round(2).tolist()
[0.6]
>>> noise = np.array([3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3])
>>> choice = choose_baseline(
...     [("noise", noise, noise, False), ("recent_orders", x, x, False)],
...     y, y, "classification", "roc_auc")
>>> choice.baseline.feature, round(choice.score, 2), choice.prior_score
('recent_orders', 1.0, 0.5)
>>> choice.describe()
'a one-feature rule on `recent_orders` (ROC AUC 1 on validation), the best of 2 candidate features and the prior (0.5)'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from taxiway.models.metrics import better, display_name, score

__all__ = ["Baseline", "BaselineChoice", "Candidate", "choose_baseline"]

Candidate = tuple[str, np.ndarray, np.ndarray, bool]
"""A candidate feature: name, encoded training values, encoded validation values, categorical."""

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
        missing = (
            _smoothed(y[~known].sum(), int((~known).sum()), prior) if (~known).any() else prior
        )
        del task  # rates and means are both averages of y
        if categorical:
            codes = x[known].astype(np.int64)
            coded = codes >= 0  # the encoder's codes are 0..n-1; anything else is no category
            size = int(codes.max()) + 1 if coded.any() else 0
            values = _bin_values(codes[coded], y[known][coded], size, prior)
            return cls("rule", prior, feature, True, (), values, missing)
        quantiles = np.quantile(x[known], np.linspace(0, 1, bins + 1)[1:-1]) if known.any() else []
        edges = tuple(float(e) for e in np.unique(quantiles))
        index = np.searchsorted(edges, x[known], side="left")
        values = _bin_values(index, y[known], len(edges) + 1, prior)
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


def _smoothed(total: float, count: int, prior: float) -> float:
    return float((total + _SMOOTHING * prior) / (count + _SMOOTHING))


def _bin_values(index: np.ndarray, y: np.ndarray, size: int, prior: float) -> tuple[float, ...]:
    """Each bin's smoothed mean of ``y`` (an empty bin predicts the prior)."""
    if size == 0:
        return ()
    totals = np.bincount(index, weights=y, minlength=size)
    counts = np.bincount(index, minlength=size)
    return tuple(float(v) for v in (totals + _SMOOTHING * prior) / (counts + _SMOOTHING))


@dataclass(frozen=True)
class BaselineChoice:
    """The chosen baseline and the validation scores it was chosen on."""

    baseline: Baseline
    metric: str
    score: float | None  # the chosen baseline's validation score
    prior_score: float | None
    rule_scores: dict[str, float | None] = field(default_factory=dict)  # per candidate
    pinned: str | None = None  # model.baseline_feature, when it pinned the rule

    def describe(self) -> str:
        """Which baseline, its validation score, and what it was chosen among, in words."""
        if self.baseline.kind == "prior":
            what = f"the training prior ({self.baseline.prior:.4g}) for everyone"
        else:
            what = f"a one-feature rule on `{self.baseline.feature}`"
        text = f"{what} ({display_name(self.metric)} {_figure(self.score)} on validation)"
        count = len(self.rule_scores)
        features = f"{count} candidate feature{'' if count == 1 else 's'}"
        if self.pinned is not None:
            if self.baseline.kind == "rule":
                return f"{text}, pinned by model.baseline_feature; the prior scores " + _figure(
                    self.prior_score
                )
            if not count:
                return f"{text}: model.baseline_feature `{self.pinned}` is not in the training set"
            return f"{text}: the rule on `{self.pinned}` (model.baseline_feature) scores " + (
                _figure(self.rule_scores[self.pinned])
            )
        if self.baseline.kind == "rule":
            return f"{text}, the best of {features} and the prior ({_figure(self.prior_score)})"
        if not count:
            return f"{text}; there is no candidate feature"
        return f"{text}: no one-feature rule of the {features} scores better"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the registry's ``metrics.baseline_choice``)."""
        return {
            "kind": self.baseline.kind,
            "feature": self.baseline.feature,
            "metric": self.metric,
            "score": self.score,
            "prior_score": self.prior_score,
            "pinned": self.pinned,
            "candidates": len(self.rule_scores),
            "rule_scores": dict(self.rule_scores),
        }


def choose_baseline(
    candidates: Iterable[Candidate],
    y_train: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    metric: str,
    *,
    pinned: str | None = None,
    bins: int = 10,
) -> BaselineChoice:
    """The best on validation of the prior and each candidate's rule fitted on training.

    ``candidates`` yields ``(name, x_train, x_valid, categorical)`` (encoded values of the
    training and validation rows), one at a time so that only one feature is held at once.
    With ``pinned``, only that candidate is considered. See the module docstring.
    """
    prior = Baseline.of_prior(y_train, task)
    prior_score = score(metric, y_valid, np.full(len(y_valid), prior.prior))
    best, best_score = prior, prior_score
    rule_scores: dict[str, float | None] = {}
    for name, x_train, x_valid, categorical in candidates:
        if pinned is not None and name != pinned:
            continue
        rule = Baseline.of_rule(name, x_train, y_train, task, categorical=categorical, bins=bins)
        rule_score = score(metric, y_valid, rule.predict(x_valid))
        rule_scores[name] = rule_score
        if better(metric, rule_score, best_score):
            best, best_score = rule, rule_score
    return BaselineChoice(best, metric, best_score, prior_score, rule_scores, pinned)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
