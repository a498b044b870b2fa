"""The fastest faithful form of a trained model for one-row scoring, chosen by measuring.

Every trained model is turned into each form that can be built for it, and each form is
saved and loaded back the way serving will load it. A form stays a candidate only if its
predictions equal the model's own (``native``) within ``1e-6`` on every validation row. The
fastest remaining form by one-row p50 is written to a folder with ``serving.json``. Forms:

==================  =====================================================================
``lightgbm``        the Booster; one row through LightGBM's single-row C entry point
``xgboost``         the Booster; ``inplace_predict``
``sklearn``         the estimator's own ``predict_proba`` / ``predict`` (pickled)
``sklearn-forest``  a random forest's trees called directly (no joblib pool per call)
``linear``          imputer / scaler / one-hot / linear model folded into numpy weights
``onnx``            ONNX Runtime, float32 (onnxmltools for boosters, skl2onnx for sklearn)
==================  =====================================================================

Predictions are P(class 1) for binary classification and the value for regression. Float32
ONNX can move a split: when its error passes the tolerance it is rejected, and the report says
by how much. A form that cannot be built is listed with the reason; it never raises.

Every scorer is safe to share between threads.

>>> import tempfile
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> with tempfile.TemporaryDirectory() as folder:
...     report = build_serving_form(model, X, task="classification", out_dir=Path(folder))
...     scorer = load_serving_form(Path(folder))
>>> [(c.kind, c.faithful) for c in report.candidates]
[('sklearn', True), ('linear', True), ('onnx', True)]
>>> scorer.kind == report.chosen, round(scorer.predict_one(np.array([3.0])), 3)
(True, 0.808)
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from taxiway.errors import ModelError

__all__ = [
    "SERVING_FILE",
    "TOLERANCE",
    "Candidate",
    "Scorer",
    "ServingFormReport",
    "build_serving_form",
    "load_serving_form",
    "native_scorer",
]

SERVING_FILE = "serving.json"
TOLERANCE = 1e-6
FORMAT = 1
TASKS = ("classification", "regression")
ONNXMLTOOLS_OPSET = 15  # a dict opset fails in onnxmltools; 15 covers TreeEnsemble v3
SKL2ONNX_OPSET = 17
ROUNDS = 3  # latency rounds, candidates interleaved, so a burst of load hits all alike
REBUILD = "rebuild the serving form (train the model again, or call build_serving_form)"


class Scorer(Protocol):
    """A loaded serving form: a float64 matrix in, one float per row out."""

    kind: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (float64, one per row) for the float64 matrix ``X`` (NaN = missing)."""
        ...

    def predict_one(self, row: np.ndarray) -> float:
        """The prediction for one float64 row: the hot path, with no validation."""
        ...


@dataclass(frozen=True)
class Candidate:
    """One form that was tried: whether it is faithful, its error and its one-row latency."""

    kind: str
    faithful: bool
    max_abs_error: float | None
    p50_us: float | None
    p99_us: float | None
    error: str | None


@dataclass(frozen=True)
class ServingFormReport:
    """The form chosen and every candidate measured, native first."""

    chosen: str
    candidates: list[Candidate]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return {"chosen": self.chosen, "candidates": [asdict(c) for c in self.candidates]}


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
) -> ServingFormReport:
    """Build every form of ``estimator``, keep the faithful ones, write the fastest to ``out_dir``.

    Faithful: max |form - native| over all of ``X_valid`` (and over the rows timed one at a
    time) is at most ``tolerance``. Latency: ``predict_one`` over ``repeats`` rows cycled from
    ``X_valid`` after a warm-up. ``out_dir`` gets ``serving.json`` and the chosen artifact.
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
        for kind in _candidate_kinds(model, task):
            folder = Path(staging) / kind
            folder.mkdir()
            try:
                form = _BUILDERS[kind](model, task, folder, X.shape[1])
                scorer = _LOADERS[kind](folder, form, task)
                errors[kind] = _max_abs_error(scorer.predict(X), reference)
            except Exception as error:  # a converter may raise anything: the form is rejected
                failures[kind] = f"could not build: {_describe(error)}"
                continue
            built[kind] = (scorer, form)
        scorers = {kind: scorer for kind, (scorer, _) in built.items()}
        timings = _latency(scorers, X, reference, repeats, failures)
        candidates = []
        for kind in _candidate_kinds(model, task):
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
        card = {
            "format": FORMAT,
            "chosen": chosen,
            "task": task,
            "n_features": int(X.shape[1]),
            "categorical": [int(c) for c in categorical],
            "tolerance": tolerance,
            "form": built[chosen][1],
            "versions": _versions(chosen),
            "report": report.as_dict(),
        }
        _publish(out_dir, Path(staging) / chosen, card)
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
    if kind not in _LOADERS:
        raise ModelError(f"{path} names an unknown serving form `{kind}`", fix=REBUILD)
    if kind == "xgboost":
        _import_xgboost()
    try:
        return _LOADERS[kind](out_dir, form, task)
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


def _family(model: Any) -> str:
    kind = type(model)
    if kind.__name__ == "Booster" and kind.__module__.startswith("lightgbm"):
        return "lightgbm"
    if kind.__name__ == "Booster" and kind.__module__.startswith("xgboost"):
        return "xgboost"
    return "sklearn"


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


def _publish(out_dir: Path, artifact_dir: Path, card: dict[str, Any]) -> None:
    # serving.json goes first and comes back last: a folder is never half old, half new
    (out_dir / SERVING_FILE).unlink(missing_ok=True)
    for stale in ARTIFACTS:
        (out_dir / stale).unlink(missing_ok=True)
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


def _import_xgboost() -> Any:
    try:
        import xgboost
    except ImportError:
        raise ModelError(
            "this model needs xgboost, which is not installed",
            fix="pip install 'taxiway[xgboost]'",
        ) from None
    return xgboost


# --------------------------------------------------------------------------- lightgbm


class _LightGBMScorer:
    """A LightGBM Booster; one row goes through the C API's prepared single-row predictor."""

    kind = "lightgbm"

    def __init__(self, booster: Any) -> None:
        if booster.num_model_per_iteration() != 1:
            raise ModelError(
                "the LightGBM model has several outputs (multiclass?); taxiway scores "
                "binary classification and regression",
                fix="train a binary or regression objective",
            )
        self._booster = booster
        self._row = np.zeros(int(booster.num_feature()), dtype=np.float64)
        self._out = np.zeros(1, dtype=np.float64)
        self._lock = threading.Lock()
        self._length: Any = None
        self._fast = _lightgbm_single_row(self, booster)

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self._booster.predict(X)
        return np.asarray(scores, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        if self._fast is None:
            return float(self._booster.predict(row.reshape(1, -1), num_threads=1)[0])
        with self._lock:
            self._row[:] = row
            if self._fast():
                raise ModelError(f"LightGBM could not score the row: {_lightgbm_error()}")
            return float(self._out[0])


def _lightgbm_single_row(owner: _LightGBMScorer, booster: Any) -> Any:
    """A no-argument call scoring ``owner._row`` into ``owner._out``, or None if unavailable.

    ``Booster.predict`` costs ~40 us a row in argument handling; the C API's
    ``...SingleRowFast`` reuses a prepared config and costs a few us (same trees, same
    double arithmetic). The entry points are reached through ``lightgbm.basic._LIB``: if a
    LightGBM release moves them, the scorer falls back to ``Booster.predict``. The prepared
    predictor follows the iteration count of the booster's last prediction, so the booster
    must be one nobody else predicts with: a copy, or one loaded from a file.
    """
    import ctypes

    try:
        from lightgbm import basic

        library: Any = basic.__dict__["_LIB"]
        handle = booster._handle
        config = ctypes.c_void_p()
        status = library.LGBM_BoosterPredictForMatSingleRowFastInit(
            handle,
            ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities / values
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(-1),  # every iteration: the booster is the scorer's own copy
            ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
            ctypes.c_int32(owner._row.shape[0]),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(config),
        )
        if status != 0 or not config.value:
            return None
        # PYFUNCTYPE keeps the GIL during the call: nothing else can touch the buffers
        prototype = ctypes.PYFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
        )
        predict = prototype(("LGBM_BoosterPredictForMatSingleRowFast", library))
    except (AttributeError, ImportError, KeyError, OSError):
        return None
    length = ctypes.c_int64()
    address = config.value
    row, out, length_at = owner._row.ctypes.data, owner._out.ctypes.data, ctypes.addressof(length)
    weakref.finalize(owner, _free_fast_config, library, address, booster)

    owner._length = length  # the C side writes the output length here

    def fast() -> int:
        return int(predict(address, row, length_at, out))

    return fast


def _private_booster(booster: Any) -> Any:
    """A copy of ``booster`` with the trees its ``predict`` uses (up to the best iteration)."""
    import lightgbm

    return lightgbm.Booster(model_str=booster.model_to_string())


def _free_fast_config(library: Any, address: int, booster: Any) -> None:
    """Free the prepared predictor; ``booster`` is passed only to outlive it."""
    import ctypes

    library.LGBM_FastConfigFree(ctypes.c_void_p(address))


def _lightgbm_error() -> str:
    from lightgbm import basic

    return str(basic.__dict__["_LIB"].LGBM_GetLastError().decode())


def _build_lightgbm(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    model.save_model(str(folder / "model.lgb.txt"))
    return {"artifact": "model.lgb.txt"}


def _load_lightgbm(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    import lightgbm

    return _LightGBMScorer(lightgbm.Booster(model_file=str(folder / form["artifact"])))


# --------------------------------------------------------------------------- xgboost


class _XGBoostScorer:
    """An XGBoost Booster through ``inplace_predict`` (no DMatrix per call)."""

    kind = "xgboost"

    def __init__(self, booster: Any) -> None:
        self._booster = booster
        self._predict = booster.inplace_predict

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._predict(X, validate_features=False), dtype=np.float64)
        if scores.ndim != 1:
            raise ModelError(
                "the XGBoost model has several outputs (multiclass?); taxiway scores "
                "binary classification and regression",
                fix="train binary:logistic or a regression objective",
            )
        return scores

    def predict_one(self, row: np.ndarray) -> float:
        return float(self._predict(row.reshape(1, -1), validate_features=False)[0])


def _build_xgboost(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    model.save_model(str(folder / "model.xgb.json"))
    return {"artifact": "model.xgb.json"}


def _load_xgboost(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    xgboost = _import_xgboost()
    return _XGBoostScorer(xgboost.Booster(model_file=str(folder / form["artifact"])))


# --------------------------------------------------------------------------- scikit-learn


class _SklearnScorer:
    """Any estimator with ``predict_proba`` (classification) or ``predict`` (regression)."""

    kind = "sklearn"

    def __init__(self, estimator: Any, task: str) -> None:
        method = "predict_proba" if task == "classification" else "predict"
        if not callable(getattr(estimator, method, None)):
            raise ModelError(
                f"{type(estimator).__name__} has no {method}(), which {task} needs",
                fix="pass a fitted estimator (or pipeline) with that method",
            )
        classes = getattr(estimator, "classes_", None)
        if task == "classification" and classes is not None and len(classes) != 2:
            raise ModelError(
                f"{type(estimator).__name__} has {len(classes)} classes; taxiway scores "
                "binary classification",
                fix="train on a 0/1 label",
            )
        self._estimator = estimator
        self._call = getattr(estimator, method)
        self._classification = task == "classification"

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._call(X), dtype=np.float64)
        return scores[:, 1] if self._classification else scores.ravel()

    def predict_one(self, row: np.ndarray) -> float:
        scores = self._call(row.reshape(1, -1))
        return float(scores[0, 1] if self._classification else np.ravel(scores)[0])


def _build_pickle(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    with (folder / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle, protocol=5)
    return {"artifact": "model.pkl"}


def _unpickle(folder: Path, form: dict[str, Any]) -> Any:
    # the folder is written by taxiway itself; a pickle from elsewhere must not be loaded
    with (folder / form["artifact"]).open("rb") as handle:
        return pickle.load(handle)


def _load_sklearn(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _SklearnScorer(_unpickle(folder, form), task)


def _is_forest(model: Any, task: str) -> bool:
    if not type(model).__module__.startswith("sklearn."):
        return False
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    kinds = (
        (RandomForestClassifier, ExtraTreesClassifier)
        if task == "classification"
        else (RandomForestRegressor, ExtraTreesRegressor)
    )
    if not isinstance(model, kinds) or getattr(model, "n_outputs_", 1) != 1:
        return False
    return task == "regression" or len(model.classes_) == 2


class _ForestScorer:
    """A scikit-learn random forest with its trees called one after the other.

    ``predict_proba`` starts a joblib dispatch per call (~5 ms a row for 100 trees); calling
    each ``tree_.predict`` directly is the same arithmetic in the same order.
    """

    kind = "sklearn-forest"

    def __init__(self, forest: Any, task: str) -> None:
        self._predictors = [tree.tree_.predict for tree in forest.estimators_]
        self._classification = task == "classification"

    def predict(self, X: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(X, dtype=np.float32)
        total = np.zeros(len(rows), dtype=np.float64)
        for predict in self._predictors:
            total += self._one_tree(predict(rows))
        return total / len(self._predictors)

    def predict_one(self, row: np.ndarray) -> float:
        x = row.astype(np.float32).reshape(1, -1)
        total = 0.0
        if self._classification:
            for predict in self._predictors:
                value = predict(x)[0]
                norm = value[0] + value[1]
                total += value[1] / (norm if norm != 0.0 else 1.0)
        else:
            for predict in self._predictors:
                total += predict(x)[0, 0]
        return float(total / len(self._predictors))

    def _one_tree(self, values: np.ndarray) -> np.ndarray:
        if not self._classification:
            return np.asarray(values[:, 0], dtype=np.float64)
        norm = values.sum(axis=1)
        norm[norm == 0.0] = 1.0
        return np.asarray(values[:, 1] / norm, dtype=np.float64)


def _load_forest(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _ForestScorer(_unpickle(folder, form), task)


# --------------------------------------------------------------------------- linear


class _LinearScorer:
    """A linear model and its imputers, scalers and one-hot encoders, folded into weights.

    The score is ``bias + W . x`` over the numeric inputs (a missing one adds its imputed
    contribution instead) plus one looked-up weight per categorical input, then the logistic
    link for classification.
    """

    kind = "linear"

    def __init__(self, form: dict[str, Any]) -> None:
        self._logistic = form["link"] == "logistic"
        self._bias = float(form["bias"])
        numeric = form["numeric"]
        self._columns = np.array(numeric["columns"], dtype=np.intp)
        self._weights = np.array(numeric["weights"], dtype=np.float64)
        self._when_missing = np.array(_floats(numeric["when_missing"]), dtype=np.float64)
        self._categorical = [
            (
                int(item["column"]),
                {float(code): float(weight) for code, weight in item["weights"]},
                math.nan if item["missing_as"] is None else float(item["missing_as"]),
                float(item["missing_weight"]),
            )
            for item in form["categorical"]
        ]

    def predict(self, X: np.ndarray) -> np.ndarray:
        x = X[:, self._columns]
        missing = np.isnan(x)
        z = self._bias + np.where(missing, 0.0, x) @ self._weights
        z += np.where(missing, self._when_missing, 0.0).sum(axis=1)
        for column, weights, missing_as, missing_weight in self._categorical:
            values = X[:, column].copy()
            values[np.isnan(values)] = missing_as
            part = np.where(np.isnan(values), missing_weight, 0.0)
            for code, weight in weights.items():
                part[values == code] = weight
            z += part
        if self._logistic:
            from scipy.special import expit

            return np.asarray(expit(z), dtype=np.float64)
        return np.asarray(z, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        x = row[self._columns]
        missing = np.isnan(x)
        z = self._bias + float(np.where(missing, 0.0, x) @ self._weights)
        if missing.any():
            z += float(self._when_missing[missing].sum())
        for column, weights, missing_as, missing_weight in self._categorical:
            value = float(row[column])
            if value != value:
                value = missing_as
            z += missing_weight if value != value else weights.get(value, 0.0)
        if not self._logistic:
            return z
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


@dataclass
class _Feature:
    """One column on its way through a pipeline, as a function of one input column.

    Numeric: ``a * x + c``, or ``when_missing`` if x is missing. One-hot: 1 when the input
    (``when_missing`` if missing) equals ``category``, else 0.
    """

    source: int
    a: float = 1.0
    c: float = 0.0
    when_missing: float = math.nan
    category: float | None = None


class _NotLinear(ValueError):
    """The pipeline holds a step the linear form does not reproduce."""


def _is_linear_pipeline(model: Any) -> bool:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return type(final).__name__ in _LINEAR_MODELS and type(final).__module__.startswith("sklearn.")


_LINEAR_MODELS = ("LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet")


def _linearize(model: Any, task: str, n_features: int) -> dict[str, Any]:
    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    features = [_Feature(source=j) for j in range(n_features)]
    for step in steps[:-1]:
        features = _through(step, features)
    final = steps[-1]
    name = type(final).__name__
    coef = np.asarray(final.coef_, dtype=np.float64)
    if name == "LogisticRegression":
        if task != "classification" or coef.shape[0] != 1 or len(final.classes_) != 2:
            raise _NotLinear("only a binary LogisticRegression is folded")
    elif task != "regression" or coef.ndim != 1:
        raise _NotLinear(f"{name} must be a single-output regressor")
    coef = coef.ravel()
    if len(coef) != len(features):
        raise _NotLinear(f"{len(coef)} coefficients for {len(features)} columns")
    bias = float(np.ravel(final.intercept_)[0]) if np.size(final.intercept_) else 0.0
    weights: dict[int, float] = {}
    present: dict[int, float] = {}
    absent: dict[int, float] = {}
    categorical: dict[int, dict[str, Any]] = {}
    for w, feature in zip(coef.tolist(), features, strict=True):
        j = feature.source
        if feature.category is None:
            weights[j] = weights.get(j, 0.0) + w * feature.a
            present[j] = present.get(j, 0.0) + w * feature.c
            absent[j] = absent.get(j, 0.0) + w * feature.when_missing
            continue
        entry = categorical.setdefault(
            j, {"column": j, "codes": {}, "missing_as": feature.when_missing, "nan": 0.0}
        )
        if math.isnan(feature.category):
            entry["nan"] += w
        else:
            entry["codes"][feature.category] = entry["codes"].get(feature.category, 0.0) + w
    bias += sum(present.values())
    columns = sorted(weights)
    return {
        "link": "logistic" if task == "classification" else "identity",
        "bias": bias,
        "numeric": {
            "columns": columns,
            "weights": [weights[j] for j in columns],
            "when_missing": [_nullable(absent[j] - present[j]) for j in columns],
        },
        "categorical": [
            {
                "column": j,
                "weights": sorted(entry["codes"].items()),
                "missing_as": _nullable(entry["missing_as"]),
                "missing_weight": entry["nan"],
            }
            for j, entry in sorted(categorical.items())
        ],
    }


def _through(step: Any, features: list[_Feature]) -> list[_Feature]:
    name = type(step).__name__
    if name == "Pipeline":
        for _, inner in step.steps:
            features = _through(inner, features)
        return features
    if name == "ColumnTransformer":
        out: list[_Feature] = []
        for _, transformer, columns in step.transformers_:
            picked = [features[i] for i in _column_indices(columns, len(features))]
            if isinstance(transformer, str):
                if transformer == "passthrough":
                    out += picked
                elif transformer != "drop":
                    raise _NotLinear(f"unknown ColumnTransformer entry {transformer!r}")
                continue
            if picked:
                out += _through(transformer, picked)
        return out
    if name == "SimpleImputer":
        if not _is_nan(step.missing_values) or step.add_indicator:
            raise _NotLinear("SimpleImputer must impute NaN without an indicator")
        fills = np.asarray(step.statistics_, dtype=np.float64)
        if len(fills) != len(features) or np.isnan(fills).any():
            raise _NotLinear("SimpleImputer dropped an all-missing column")
        for feature, fill in zip(features, fills.tolist(), strict=True):
            if feature.category is None and math.isnan(feature.when_missing):
                feature.when_missing = fill
        return features
    if name == "StandardScaler":
        mean = step.mean_ if step.mean_ is not None else np.zeros(len(features))
        scale = step.scale_ if step.scale_ is not None else np.ones(len(features))
        for feature, m, s in zip(features, mean.tolist(), scale.tolist(), strict=True):
            if feature.category is not None:
                raise _NotLinear("a scaled one-hot column is not folded")
            feature.a, feature.c = feature.a / s, (feature.c - m) / s
            feature.when_missing = (feature.when_missing - m) / s
        return features
    if name == "OneHotEncoder":
        if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
            raise _NotLinear("OneHotEncoder with drop or infrequent categories")
        out = []
        for feature, categories in zip(features, step.categories_, strict=True):
            if feature.category is not None or (feature.a, feature.c) != (1.0, 0.0):
                raise _NotLinear("OneHotEncoder must see the raw input column")
            for category in np.asarray(categories, dtype=np.float64).tolist():
                out.append(
                    _Feature(feature.source, when_missing=feature.when_missing, category=category)
                )
        return out
    raise _NotLinear(f"{name} is not folded into the linear form")


def _column_indices(columns: Any, width: int) -> list[int]:
    if isinstance(columns, slice):
        return list(range(width))[columns]
    picked = np.asarray(columns)
    if picked.dtype == bool:
        return [int(i) for i in np.flatnonzero(picked)]
    if picked.dtype.kind not in "iu":
        raise _NotLinear("ColumnTransformer columns must be picked by position")
    return [int(i) for i in picked.ravel()]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value


def _floats(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _build_linear(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    (folder / "model.linear.json").write_text(json.dumps(_linearize(model, task, n_features)))
    return {"artifact": "model.linear.json"}


def _load_linear(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _LinearScorer(json.loads((folder / form["artifact"]).read_text()))


# --------------------------------------------------------------------------- onnx


class _OnnxScorer:
    """An ONNX model in ONNX Runtime (one thread, float32 input, one output requested)."""

    kind = "onnx"

    def __init__(self, path: Path, form: dict[str, Any]) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # otherwise it prints shape warnings to stderr
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._run = session.run
        self._input = str(form["input"])
        self._outputs = [str(form["output"])]
        self._index = int(form["index"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        (out,) = self._run(self._outputs, {self._input: X.astype(np.float32)})
        scores = out[:, self._index] if out.ndim == 2 else out
        return np.asarray(scores, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        (out,) = self._run(self._outputs, {self._input: row.astype(np.float32).reshape(1, -1)})
        return float(out.item(self._index))


def _build_onnx(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    family = _family(model)
    if family == "lightgbm":
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_lightgbm(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=ONNXMLTOOLS_OPSET,
            zipmap=False,
        )
    elif family == "xgboost":
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_xgboost(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=ONNXMLTOOLS_OPSET,
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SkFloatTensorType

        final = model.steps[-1][1] if hasattr(model, "steps") else model
        options = {id(final): {"zipmap": False}} if task == "classification" else None
        onnx_model = convert_sklearn(
            model,
            initial_types=[("input", SkFloatTensorType([None, n_features]))],
            target_opset=SKL2ONNX_OPSET,
            options=options,
        )
    outputs = [output.name for output in onnx_model.graph.output]
    if task == "classification":
        output = "probabilities" if "probabilities" in outputs else outputs[-1]
        index = 1
    else:
        output, index = outputs[0], 0
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return {"artifact": "model.onnx", "input": "input", "output": output, "index": index}


def _load_onnx(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _OnnxScorer(folder / form["artifact"], form)


_Builder = Callable[[Any, str, Path, int], dict[str, Any]]
_Loader = Callable[[Path, dict[str, Any], str], Scorer]

_BUILDERS: dict[str, _Builder] = {
    "lightgbm": _build_lightgbm,
    "xgboost": _build_xgboost,
    "sklearn": _build_pickle,
    "sklearn-forest": _build_pickle,
    "linear": _build_linear,
    "onnx": _build_onnx,
}
_LOADERS: dict[str, _Loader] = {
    "lightgbm": _load_lightgbm,
    "xgboost": _load_xgboost,
    "sklearn": _load_sklearn,
    "sklearn-forest": _load_forest,
    "linear": _load_linear,
    "onnx": _load_onnx,
}
