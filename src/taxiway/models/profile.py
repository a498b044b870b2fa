"""The reference profile: what each input and the output looked like in training.

Drift monitoring compares live traffic with this. Numbers get decile bin edges with the share
of rows per bin (the layout PSI and the chi-squared test use), the null share and summary
statistics; categories get the share of each value (capped at the 50 most common, the rest
as ``__other__``).

>>> import numpy as np
>>> profile = numeric_profile(np.array([1.0, 2, 3, 4, np.nan]))
>>> profile["null_share"], profile["mean"], len(profile["shares"]) == len(profile["edges"]) + 1
(0.2, 2.5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["build_profile", "categorical_profile", "numeric_profile"]

_TOP = 50


def numeric_profile(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Decile edges, the share of known rows per bin, nulls and summary statistics."""
    values = np.asarray(values, dtype=np.float64)
    known = values[~np.isnan(values)]
    rows = len(values)
    out: dict[str, Any] = {
        "kind": "numeric",
        "rows": rows,
        "null_share": float((rows - len(known)) / rows) if rows else 0.0,
    }
    if not len(known):
        return {**out, "edges": [], "shares": [1.0] if rows else []}
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, known, side="left"), minlength=len(edges) + 1)
    return {
        **out,
        "mean": float(known.mean()),
        "std": float(known.std()),
        "min": float(known.min()),
        "max": float(known.max()),
        "quantiles": {
            q: float(v)
            for q, v in zip(
                ("p01", "p25", "p50", "p75", "p99"),
                np.quantile(known, [0.01, 0.25, 0.5, 0.75, 0.99]),
                strict=True,
            )
        },
        "edges": [float(e) for e in edges],
        "shares": [float(c / len(known)) for c in counts],
    }


def categorical_profile(codes: np.ndarray, vocabulary: Sequence[str]) -> dict[str, Any]:
    """The share of each category among known rows (top 50, the rest as ``__other__``)."""
    codes = np.asarray(codes, dtype=np.float64)
    known = codes[~np.isnan(codes)].astype(int)
    rows = len(codes)
    counts = np.bincount(known, minlength=len(vocabulary)) if len(known) else np.zeros(0)
    order = np.argsort(-counts, kind="stable")[:_TOP]
    shares = {vocabulary[i]: float(counts[i] / len(known)) for i in order if counts[i]}
    rest = float(1 - sum(shares.values())) if len(known) else 0.0
    if rest > 1e-12:
        shares["__other__"] = rest
    return {
        "kind": "categorical",
        "rows": rows,
        "null_share": float((rows - len(known)) / rows) if rows else 0.0,
        "shares": shares,
    }


def build_profile(
    X: np.ndarray,
    features: Sequence[str],
    kinds: Sequence[str],
    vocabularies: dict[str, Sequence[str]],
    output: np.ndarray,
) -> dict[str, Any]:
    """The profile of every input column of ``X`` and of the model's ``output``."""
    inputs = {}
    for index, (name, kind) in enumerate(zip(features, kinds, strict=True)):
        if kind == "categorical":
            inputs[name] = categorical_profile(X[:, index], vocabularies[name])
        else:
            inputs[name] = numeric_profile(X[:, index])
    return {"rows": len(X), "features": inputs, "output": numeric_profile(output)}
