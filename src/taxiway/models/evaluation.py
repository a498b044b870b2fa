"""A new version scored against its baseline: the baseline, the scores, leakage diagnostics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from taxiway.errors import ModelError
from taxiway.models.baseline import Baseline, BaselineChoice, Candidate, choose_baseline
from taxiway.models.encoding import FeatureEncoder
from taxiway.models.importance import permutation_shares
from taxiway.models.metrics import classification_metrics, regression_metrics
from taxiway.models.outcome import Outcome
from taxiway.models.segments import compare_groups, time_slices
from taxiway.spec.models import ModelSpec

__all__ = [
    "group_metrics",
    "leakage_diagnostics",
    "model_baseline",
    "segment_column",
    "validation_scores",
]


def model_baseline(
    model: ModelSpec,
    inputs: list[str],
    train_table: pa.Table,
    valid_table: pa.Table,
    y_train: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    metric: str,
) -> tuple[BaselineChoice, FeatureEncoder]:
    """The baseline (see :mod:`taxiway.models.baseline`) and the encoder of its one feature.

    The candidates are the model's own inputs that the training set has (``model.features``,
    by default every feature and request field; a pilot's columns), so the bar is the best
    single one of them, and a column the team kept from the model (a leak, an attribute it
    may not use) never becomes the bar or the service's fallback. ``model.baseline_feature``
    may pin any feature column or request field. A column that cannot be encoded (over 1,000
    categories) is no candidate.
    """
    pinned = model.baseline_feature
    names = [
        name
        for name in dict.fromkeys(inputs if pinned is None else [pinned])
        if name in train_table.column_names
    ]
    encoders: dict[str, FeatureEncoder] = {}

    def candidates() -> Iterator[Candidate]:
        for name in names:
            try:
                encoder = FeatureEncoder.fit(train_table, [name])
            except ModelError:
                continue
            encoders[name] = encoder
            yield (
                name,
                encoder.encode_table(train_table)[:, 0],
                encoder.encode_table(valid_table)[:, 0],
                bool(encoder.categorical),
            )

    choice = choose_baseline(candidates(), y_train, y_valid, task, metric, pinned=pinned)
    feature = choice.baseline.feature
    return choice, encoders[feature] if feature is not None else FeatureEncoder((), ())


def leakage_diagnostics(
    outcome: Outcome,
    train_table: pa.Table,
    valid_table: pa.Table,
    y_train: np.ndarray,
    y_valid: np.ndarray,
    task: str,
) -> dict[str, Any]:
    """Each input's own validation score (a one-feature rule) and its importance share."""
    single: dict[str, float | None] = {}
    for name in outcome.features:
        if name not in train_table.column_names:
            continue
        encoder = FeatureEncoder.fit(train_table, [name])
        rule = Baseline.of_rule(
            name,
            encoder.encode_table(train_table)[:, 0],
            y_train,
            task,
            categorical=bool(encoder.categorical),
            bins=20,
        )
        p = rule.predict(encoder.encode_table(valid_table)[:, 0])
        single[name] = _own_score(y_valid, p, task)
    shares: dict[str, float] = {}
    if outcome.predict_valid is not None and len(y_valid):
        values = permutation_shares(outcome.predict_valid, outcome.valid_inputs, y_valid, task)
        shares = dict(zip(outcome.features, values, strict=True))
    return {
        "single_feature": single,
        "single_feature_score": "roc_auc" if task == "classification" else "r2",
        "importance": shares,
    }


def _own_score(y: np.ndarray, p: np.ndarray, task: str) -> float | None:
    if task == "classification":
        auc = classification_metrics(y, p)["roc_auc"]
        return None if auc is None else max(float(auc), 1 - float(auc))
    spread = float(np.var(y))
    return None if spread == 0 else float(1 - np.mean((y - p) ** 2) / spread)


def validation_scores(y: np.ndarray, p: np.ndarray | None, task: str) -> dict[str, Any]:
    if p is None:
        return {}
    if task == "classification":
        return classification_metrics(y, p)
    return regression_metrics(y, p)


def group_metrics(
    segments: list[str],
    valid_table: pa.Table,
    y_valid: np.ndarray,
    p_model: np.ndarray | None,
    p_base: np.ndarray,
    metric: str,
) -> dict[str, Any]:
    """The model against the baseline per time slice of the validation rows and per value of
    each declared segment (see :mod:`taxiway.models.segments`): ``time_slices`` (rows) and
    ``segments`` (segment name -> rows, and the training-set column it read)."""
    if p_model is None or not len(y_valid):
        return {}
    times = valid_table.column("timestamp").to_numpy()
    out: dict[str, Any] = {
        "time_slices": compare_groups(time_slices(times), y_valid, p_model, p_base, metric),
        "segments": {},
        "interval": "95% paired bootstrap of the lift (model vs baseline on the same rows)",
    }
    for name in segments:
        column = segment_column(name, valid_table.column_names)
        values = valid_table.column(column).to_pylist()
        out["segments"][name] = {
            "column": column,
            "rows": compare_groups(values, y_valid, p_model, p_base, metric),
        }
    return out


def segment_column(name: str, columns: list[str]) -> str:
    """The training-set column a declared segment reads: ``name`` itself, else the one
    column ending in ``__name`` (a static feature's column).

    >>> segment_column("segment", ["customer_id", "customer_profile__segment"])
    'customer_profile__segment'
    """
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith(f"__{name}")]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(c for c in columns if c != "timestamp")
    which = f"matches several columns ({', '.join(matches)})" if matches else "is no column"
    raise ModelError(
        f"governance.segments names {name!r}, which {which} of the training set",
        fix=f"name one of its columns: {shown}",
    )
