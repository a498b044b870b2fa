"""Building and loading a serving form: try every form, keep the faithful ones, publish the fastest.

``build_serving_form`` builds each form a model can have, loads it back the way serving
will, compares it with ``native_scorer`` and times one-row scoring; ``load_serving_form``
loads the form a folder's ``serving.json`` names. ``_FORMS`` maps each kind to its builder
and loader.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from taxiway.errors import ModelError
from taxiway.models.serving_form.base import (
    SERVING_FILE,
    TOLERANCE,
    Candidate,
    Scorer,
    ServingFormReport,
    _build_pickle,
    _family,
)
from taxiway.models.serving_form.forest import _is_forest, _load_forest
from taxiway.models.serving_form.lightgbm import (
    _build_lightgbm,
    _LightGBMScorer,
    _load_lightgbm,
    _private_booster,
)
from taxiway.models.serving_form.linear import _build_linear, _is_linear_pipeline, _load_linear
from taxiway.models.serving_form.onnx import _build_onnx, _load_onnx
from taxiway.models.serving_form.sklearn import _load_sklearn, _SklearnScorer
from taxiway.models.serving_form.xgboost import (
    _build_xgboost,
    _import_xgboost,
    _load_xgboost,
    _XGBoostScorer,
)

FORMAT = 1
TASKS = ("classification", "regression")
ROUNDS = 3  # latency rounds, candidates interleaved, so a burst of load hits all alike
REBUILD = "rebuild the serving form (train the model again, or call build_serving_form)"

_Builder = Callable[[Any, str, Path, int], dict[str, Any]]
_Loader = Callable[[Path, dict[str, Any], str], Scorer]


class _Form(NamedTuple):
    """How one kind of serving form is written to a folder and read back from it."""

    build: _Builder
    load: _Loader


_FORMS: dict[str, _Form] = {
    "lightgbm": _Form(_build_lightgbm, _load_lightgbm),
    "xgboost": _Form(_build_xgboost, _load_xgboost),
    "sklearn": _Form(_build_pickle, _load_sklearn),
    "sklearn-forest": _Form(_build_pickle, _load_forest),
    "linear": _Form(_build_linear, _load_linear),
    "onnx": _Form(_build_onnx, _load_onnx),
}


# --------------------------------------------------------------------------- public API


def native_scorer(estimator: Any, task: str) -> Scorer:
    """The model's own library as a :class:`Scorer`: the reference every form must match.

    A LightGBM or XGBoost scikit-learn wrapper is scored through its Booster.
    """
    _check_task(task)
    model = _unwrap(estimator)
    family = _family(model)
    if family == "lightgbm":
        return _LightGBMScorer(_private_booster(model))
    if family == "xgboost":
        _import_xgboost()
        return _XGBoostScorer(model)
    return _SklearnScorer(model, task)


def build_serving_form(
    estimator: Any,
    X_valid: np.ndarray,
    *,
    task: str,
    out_dir: Path,
    categorical: Sequence[int] = (),
    repeats: int = 300,
    tolerance: float = TOLERANCE,
    exclude: Collection[str] = (),
) -> ServingFormReport:
    """Build every form of ``estimator``, keep the faithful ones, write the fastest to ``out_dir``.

    Faithful: max |form - native| over all of ``X_valid`` (and over the rows timed one at a
    time) is at most ``tolerance``. Latency: ``predict_one`` over ``repeats`` rows cycled from
    ``X_valid`` after a warm-up. ``out_dir`` gets ``serving.json`` and the chosen artifact.
    Kinds in ``exclude`` are not tried (an imported pilot excludes ``sklearn``, the pickled
    object itself: its code is the pilot's, not a form that scores in microseconds).
    """
    _check_task(task)
    X = _matrix(X_valid)
    model = _unwrap(estimator)
    if _family(model) == "lightgbm":
        model = _private_booster(model)  # every form then holds the trees predict() uses
    native = native_scorer(model, task)
    expected = _n_features(model)
    if expected is not None and expected != X.shape[1]:
        raise ModelError(
            f"the model expects {expected} features but the validation matrix has {X.shape[1]}",
            fix="pass the validation rows encoded the same way as the training rows",
        )
    try:
        reference = native.predict(X)
    except Exception as error:
        raise ModelError(
            f"the model cannot score the validation rows: {_describe(error)}",
            fix="pass the validation rows encoded the same way as the training rows",
        ) from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".serving-", dir=out_dir) as staging:
        built: dict[str, tuple[Scorer, dict[str, Any]]] = {}
        errors: dict[str, float] = {}
        failures: dict[str, str] = {}
        kinds = [k for k in _candidate_kinds(model, task) if k not in exclude]
        for kind in kinds:
            folder = Path(staging) / kind
            folder.mkdir()
            try:
                form = _FORMS[kind].build(model, task, folder, X.shape[1])
                scorer = _FORMS[kind].load(folder, form, task)
                errors[kind] = _max_abs_error(scorer.predict(X), reference)
            except Exception as error:  # a converter may raise anything: the form is rejected
                failures[kind] = f"could not build: {_describe(error)}"
                continue
            built[kind] = (scorer, form)
        scorers = {kind: scorer for kind, (scorer, _) in built.items()}
        timings = _latency(scorers, X, reference, repeats, failures)
        candidates = []
        for kind in kinds:
            if kind in failures:
                candidates.append(Candidate(kind, False, None, None, None, failures[kind]))
                continue
            p50, p99, one_row_error = timings[kind]
            worst = max(errors[kind], one_row_error)
            faithful = worst <= tolerance
            reason = None
            if not faithful:
                reason = (
                    f"max |{kind} - native| = {worst:.3g} on {len(X)} validation rows, "
                    f"above the tolerance {tolerance:g}"
                )
            candidates.append(Candidate(kind, faithful, worst, p50, p99, reason))
        faithful_ones = [c for c in candidates if c.faithful and c.p50_us is not None]
        if not faithful_ones:
            details = "; ".join(f"{c.kind}: {c.error}" for c in candidates)
            raise ModelError(
                f"no serving form reproduces the model's own predictions ({details})",
                fix="check that the model scores the validation rows without error",
            )
        chosen = min(faithful_ones, key=lambda c: c.p50_us or 0.0).kind
        report = ServingFormReport(chosen=chosen, candidates=candidates)
        explain = _explain_kind(model, {c.kind for c in faithful_ones})
        card = {
            "format": FORMAT,
            "chosen": chosen,
            "task": task,
            "n_features": int(X.shape[1]),
            "categorical": [int(c) for c in categorical],
            "tolerance": tolerance,
            "form": built[chosen][1],
            # the form feature contributions are computed from (models/explain.py): the
            # chosen one when it can give them, else its faithful native sibling (kept too)
            "explain": None if explain is None else {"kind": explain, "form": built[explain][1]},
            "versions": _versions(chosen),
            "report": report.as_dict(),
        }
        extra = [] if explain in (None, chosen) else [Path(staging) / str(explain)]
        _publish(out_dir, [Path(staging) / chosen, *extra], card)
    return report


def load_serving_form(out_dir: Path) -> Scorer:
    """Load the form that ``out_dir/serving.json`` names."""
    out_dir = Path(out_dir)
    path = out_dir / SERVING_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no {SERVING_FILE} in {out_dir}", fix=REBUILD) from None
    except (OSError, ValueError) as error:
        raise ModelError(f"{path} cannot be read: {error}", fix=REBUILD) from None
    if not isinstance(card, dict) or not {"chosen", "task", "form"} <= card.keys():
        raise ModelError(f"{path} lacks `chosen`, `task` or `form`", fix=REBUILD)
    if card.get("format") != FORMAT:
        raise ModelError(
            f"{path} has format {card.get('format')!r}; this taxiway reads format {FORMAT}",
            fix=REBUILD,
        )
    kind, task, form = card["chosen"], card["task"], card["form"]
    if kind not in _FORMS:
        raise ModelError(f"{path} names an unknown serving form `{kind}`", fix=REBUILD)
    if kind == "xgboost":
        _import_xgboost()
    try:
        return _FORMS[kind].load(out_dir, form, task)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(
            f"the `{kind}` serving form in {out_dir} cannot be loaded: {_describe(error)}",
            fix=REBUILD,
        ) from None


# --------------------------------------------------------------------------- choosing
def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ModelError(f"unknown task `{task}`", fix=f"use one of {', '.join(TASKS)}")


def _matrix(X: np.ndarray) -> np.ndarray:
    matrix = np.ascontiguousarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ModelError(
            f"the validation rows must be a non-empty 2-D matrix, got shape {matrix.shape}",
            fix="pass at least one encoded validation row",
        )
    return matrix


def _unwrap(estimator: Any) -> Any:
    module = type(estimator).__module__
    if module.startswith("lightgbm.") and hasattr(estimator, "booster_"):
        return estimator.booster_
    if module.startswith("xgboost.") and hasattr(estimator, "get_booster"):
        return estimator.get_booster()
    return estimator


def _n_features(model: Any) -> int | None:
    family = _family(model)
    if family == "lightgbm":
        return int(model.num_feature())
    if family == "xgboost":
        return int(model.num_features())
    count = getattr(model, "n_features_in_", None)
    return int(count) if count is not None else None


def _candidate_kinds(model: Any, task: str) -> list[str]:
    family = _family(model)
    if family in ("lightgbm", "xgboost"):
        return [family, "onnx"]
    kinds = ["sklearn"]
    if _is_forest(model, task):
        kinds.append("sklearn-forest")
    if _is_linear_pipeline(model):
        kinds.append("linear")
    return [*kinds, "onnx"]


def _max_abs_error(got: np.ndarray, want: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64).ravel()
    if got.shape != want.shape:
        return math.inf
    both_missing = np.isnan(got) & np.isnan(want)
    diff = np.abs(got - want)
    diff[both_missing] = 0.0
    return float(np.max(np.where(np.isnan(diff), math.inf, diff)))


def _latency(
    scorers: dict[str, Scorer],
    X: np.ndarray,
    reference: np.ndarray,
    repeats: int,
    failures: dict[str, str],
) -> dict[str, tuple[float, float, float]]:
    """p50 and p99 in microseconds, and the worst one-row error, per scorer.

    A scorer whose ``predict_one`` raises is dropped and its reason put in ``failures``.
    """
    count = max(int(repeats), 1)
    indices = [i % len(X) for i in range(count)]
    rows = [X[i] for i in indices]
    times: dict[str, list[float]] = {kind: [] for kind in scorers}
    worst = dict.fromkeys(scorers, 0.0)
    live = dict(scorers)
    chunk = math.ceil(count / ROUNDS)
    clock = time.perf_counter_ns
    for start in [-1, *range(0, count, chunk)]:  # -1: the warm-up, not timed
        for kind, scorer in list(live.items()):
            predict_one, spent, got = scorer.predict_one, times[kind], []
            batch = rows[: min(count, 30)] if start < 0 else rows[start : start + chunk]
            try:
                for row in batch:
                    began = clock()
                    value = predict_one(row)
                    spent.append((clock() - began) / 1e3)
                    got.append(value)
            except Exception as error:  # the form cannot score one row: it is rejected
                failures[kind] = f"could not score one row: {_describe(error)}"
                del live[kind]
                continue
            if start < 0:
                spent.clear()
                continue
            want = reference[indices[start : start + chunk]]
            worst[kind] = max(worst[kind], _max_abs_error(np.array(got), want))
    result = {}
    for kind in live:
        spent = sorted(times[kind])
        p99 = spent[min(len(spent) - 1, int(len(spent) * 0.99))]
        result[kind] = (float(np.median(spent)), p99, worst[kind])
    return result


ARTIFACTS = ("model.lgb.txt", "model.xgb.json", "model.pkl", "model.linear.json", "model.onnx")


def _explain_kind(model: Any, faithful: Collection[str]) -> str | None:
    """The form whose contributions explain the model's scores (TreeSHAP for boosters, exact
    terms for a linear model), or None when no such form is faithful (a random forest)."""
    family = _family(model)
    for kind in (family, "linear"):
        if kind in EXPLAINABLE and kind in faithful:
            return kind
    return None


EXPLAINABLE = ("lightgbm", "xgboost", "linear")


def _publish(out_dir: Path, artifact_dirs: Sequence[Path], card: dict[str, Any]) -> None:
    # serving.json goes first and comes back last: a folder is never half old, half new
    (out_dir / SERVING_FILE).unlink(missing_ok=True)
    for stale in ARTIFACTS:
        (out_dir / stale).unlink(missing_ok=True)
    for artifact_dir in artifact_dirs:
        for item in artifact_dir.iterdir():
            shutil.copy2(item, out_dir / item.name)
    temporary = out_dir / f".{SERVING_FILE}.tmp"
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, out_dir / SERVING_FILE)


def _versions(kind: str) -> dict[str, str]:
    from importlib import metadata

    names = {
        "lightgbm": ["lightgbm"],
        "xgboost": ["xgboost"],
        "sklearn": ["scikit-learn"],
        "sklearn-forest": ["scikit-learn"],
        "linear": [],
        "onnx": ["onnxruntime"],
    }[kind]
    found = {}
    for name in ["numpy", *names]:
        for distribution in (name, f"{name}-cpu"):  # xgboost ships as xgboost-cpu too
            try:
                found[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]
