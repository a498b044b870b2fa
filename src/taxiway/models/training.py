"""`taxiway train`: training set → time split → model and baseline → registered version.

The training set is reused when its manifest's fingerprint is current (same definitions, same
data), else rebuilt. The newest share of spine times is validation; the model (trained, or the
imported pilot) and the baseline are scored there on the same rows. The baseline is the best
on validation of the prior and a one-feature rule (fitted on the training rows) per input of
the model, or the rule on ``model.baseline_feature`` (see
:mod:`taxiway.models.baseline`); the report names it. Every trained model gets
its fastest faithful serving form; every version records its metrics, inputs, lineage and the
reference profile for drift monitoring.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.errors import ModelError
from taxiway.features.training_set import TrainingSetManifest, cached_training_set
from taxiway.models.algorithms import fit
from taxiway.models.artifact import ModelCard, copy_pilot, save_card
from taxiway.models.baseline import Baseline, BaselineChoice, Candidate, choose_baseline
from taxiway.models.encoding import FeatureEncoder
from taxiway.models.importance import permutation_shares
from taxiway.models.lineage import build_lineage
from taxiway.models.metrics import (
    better,
    calibration_table,
    classification_metrics,
    default_metric,
    regression_metrics,
)
from taxiway.models.pilot import Pilot, load_pilot
from taxiway.models.profile import build_profile
from taxiway.models.registry import ModelVersion, NewVersion, Registry, open_registry
from taxiway.models.split import TimeSplit, time_split
from taxiway.spec.models import ColumnLabel, EventLabel, ModelSpec, TaxiwaySpec
from taxiway.spec.project import Project

__all__ = [
    "TrainResult",
    "infer_task",
    "model_inputs",
    "model_key",
    "train_model",
    "training_set_path",
]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What `taxiway train` did, and the registered version."""

    version: ModelVersion
    reused_training_set: bool
    timings: dict[str, float] = field(default_factory=dict)
    reused_model: bool = False

    @property
    def beats_baseline(self) -> bool:
        """Whether the model scored better than the baseline on the spec's metric."""
        return bool(self.version.metrics.get("beats_baseline"))

    def as_dict(self) -> dict[str, Any]:
        """The `taxiway train --json` document."""
        v = self.version
        return {
            "name": v.name,
            "version": v.version,
            "stage": v.stage,
            "algorithm": v.algorithm,
            "task": v.task,
            "metric": v.metrics.get("metric"),
            "metrics": {"model": v.metrics.get("model"), "baseline": v.metrics.get("baseline")},
            "baseline": v.metrics.get("baseline_description"),
            "baseline_choice": v.metrics.get("baseline_choice"),
            "beats_baseline": self.beats_baseline,
            "split": v.metrics.get("split"),
            "features": v.features,
            "serving_form": v.serving.get("chosen"),
            "training_set": {
                "path": v.training.get("path"),
                "rows": v.training.get("rows"),
                "reused": self.reused_training_set,
            },
            "artifact_dir": v.artifact_dir,
            "reused_model": self.reused_model,
            "timings_s": self.timings,
        }


def training_set_path(project: Project) -> Path:
    """Where `taxiway train` keeps the training set it reuses."""
    return project.state_dir / "training" / "training.parquet"


def infer_task(spec: TaxiwaySpec, labels: pa.ChunkedArray[Any] | None = None) -> str:
    """``model.task``, else classification for event labels, bool or 0/1 columns."""
    if spec.model is not None and spec.model.task is not None:
        return spec.model.task
    label = spec.label
    if isinstance(label, EventLabel):
        return "classification" if label.kind != "count" else "regression"
    if isinstance(label, ColumnLabel) and labels is not None:
        if pa.types.is_boolean(labels.type):
            return "classification"
        values = set(labels.unique().drop_null().to_pylist()[:3])
        if values <= {0, 1}:
            return "classification"
    return "regression"


def model_inputs(spec: TaxiwaySpec, manifest: TrainingSetManifest) -> list[str]:
    """The trained model's inputs: ``model.features`` (views expanded) or every feature."""
    model = spec.model or ModelSpec()
    available = [*manifest.request_fields, *manifest.features]
    if model.features is None:
        return available
    chosen: list[str] = []
    for name in model.features:
        if name in spec.features:
            chosen.extend(spec.features[name].output_names(name))
        else:
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def train_model(
    project: Project,
    *,
    registry: Registry | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    memory_limit: str | None = None,
    created_by: str | None = None,
    reuse: bool = False,
) -> TrainResult:
    """Train (or import) the spec's model, score it against the baseline, register it.

    With ``reuse``, a registered candidate or production version trained from the same
    inputs (:func:`model_key`: the training set's fingerprint, the label and model sections of
    the spec, the pilot's files, taxiway's version) is returned instead of training and
    registering an identical one; ``reused_model`` says so. Archived versions are never
    reused: someone retired them.
    """
    spec = project.spec
    say = progress or (lambda _: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    if spec.label is None:
        raise ModelError("the spec has no `label:`: there is nothing to predict", fix="add one")
    out = training_set_path(project)
    say("training set: checking whether the last one is current")
    manifest, reused = cached_training_set(
        project, out, rebuild=rebuild, progress=say, memory_limit=memory_limit
    )
    say(f"training set: {'reused' if reused else 'built'} ({manifest.rows:,} rows)")
    lap("training_set")
    key = model_key(project, manifest)
    own = registry is None
    store = registry or open_registry(spec.registry, state_dir=project.state_dir)
    try:
        if reuse:
            same = _same_model(store.list(spec.name), key)
            if same is not None:
                say(f"model: v{same.version} was trained from these same inputs; reusing it")
                lap("model")
                return TrainResult(same, reused, timings, reused_model=True)
        return _train_and_register(
            project, manifest, reused, store, key, say, lap, timings, created_by
        )
    finally:
        if own:
            store.close()


def model_key(project: Project, manifest: TrainingSetManifest) -> str:
    """What a trained version depends on, hashed: equal keys train the same model.

    The training set's fingerprint (definitions, request fields and every source's data and
    contract), the spec's label and model sections, the pilot's files (path, size and
    modification time of each) and taxiway's version.
    """
    spec = project.spec
    model = spec.model or ModelSpec()
    parts: dict[str, Any] = {
        "training_set": manifest.fingerprint,
        "label": spec.label.model_dump(mode="json") if spec.label else None,
        "model": model.model_dump(mode="json"),
        "taxiway": package_version("taxiway"),
    }
    if model.pilot is not None:
        pilot = Path(model.pilot)
        files = sorted(pilot.rglob("*")) if pilot.is_dir() else [pilot]
        parts["pilot"] = [
            (str(f.relative_to(pilot.parent)), f.stat().st_size, f.stat().st_mtime_ns)
            for f in files
            if f.is_file()
        ]
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _same_model(versions: list[ModelVersion], key: str) -> ModelVersion | None:
    """The newest candidate or production version registered with ``key``, artifacts intact."""
    for version in reversed(versions):
        if (
            version.training.get("model_key") == key
            and version.stage in ("candidate", "production")
            and Path(version.artifact_dir).is_dir()
        ):
            return version
    return None


def _train_and_register(
    project: Project,
    manifest: TrainingSetManifest,
    reused: bool,
    store: Registry,
    key: str,
    say: Progress,
    lap: Callable[[str], None],
    timings: dict[str, float],
    created_by: str | None,
) -> TrainResult:
    spec = project.spec
    model = spec.model or ModelSpec()
    out = training_set_path(project)
    assert spec.label is not None
    table = pq.read_table(out)
    if table.num_rows == 0:
        raise ModelError(
            "the training set has no rows", fix="check the spine period and the label horizon"
        )
    label_name = spec.label.name
    task = infer_task(spec, table.column(label_name))
    y = _labels(table.column(label_name), task, label_name)
    times = table.column("timestamp").to_numpy()
    split = time_split(times, model.validation)
    metric = model.metric or default_metric(task)
    say(f"split: {split.describe()}")
    train_rows = pa.array(split.train)
    train_table = table.filter(train_rows)
    valid_table = table.filter(pa.array(split.valid))
    y_train, y_valid = y[split.train], y[split.valid]
    folder = Path(tempfile.mkdtemp(prefix="taxiway-model-", dir=_tmp_root(project)))
    try:
        if model.pilot is not None:
            say(f"importing the pilot {model.pilot}")
            outcome = _import_pilot(Path(model.pilot), table, valid_table, y_valid, task, folder)
        else:
            say(f"training {model.algorithm} ({task})")
            outcome = _train(
                model, spec, manifest, table, train_table, split, y_train, y_valid, task, folder
            )
        lap("model")
        say("baseline and metrics")
        choice, baseline_encoder = _baseline(
            model, outcome.features, train_table, valid_table, y_train, y_valid, task, metric
        )
        baseline = choice.baseline
        (folder / "baseline.json").write_text(json.dumps(baseline.as_dict()) + "\n")
        (folder / "baseline_encoder.json").write_text(json.dumps(baseline_encoder.as_dict()))
        p_base = (
            baseline.predict(baseline_encoder.encode_table(valid_table)[:, 0])
            if baseline.feature
            else np.full(len(y_valid), baseline.prior)
        )
        scores = _metrics(y_valid, outcome.p_valid, task)
        base_scores = _metrics(y_valid, p_base, task)
        beats = outcome.p_valid is not None and better(
            metric, scores.get(metric), base_scores.get(metric)
        )
        say("leakage diagnostics: single-feature scores and importance")
        diagnostics = _diagnostics(outcome, train_table, valid_table, y_train, y_valid, task)
        lap("evaluate")
        card = ModelCard(
            kind="pilot" if model.pilot else "trained",
            algorithm="pilot" if model.pilot else model.algorithm,
            task=task,
            label=label_name,
            features=outcome.features,
            metric=metric,
            request_fields=list(manifest.request_fields),
            pilot=outcome.pilot_name,
        )
        save_card(folder, card)
        shutil.copy2(out.with_name(f"{out.stem}.manifest.json"), folder / "training.manifest.json")
        metrics: dict[str, Any] = {
            "metric": metric,
            "model": scores,
            "baseline": base_scores,
            "baseline_description": choice.describe(),
            "baseline_choice": choice.as_dict(),
            "beats_baseline": bool(beats),
            "split": {
                "cut": split.cut_text,
                "train_rows": int(split.train.sum()),
                "valid_rows": int(split.valid.sum()),
                "validation_share": model.validation,
            },
            "not_evaluated": outcome.not_evaluated,
            **diagnostics,
        }
        if task == "classification" and outcome.p_valid is not None:
            metrics["calibration"] = calibration_table(y_valid, outcome.p_valid)
        profile = build_profile(
            outcome.profile_matrix,
            outcome.profile_encoder.features,
            outcome.profile_encoder.kinds,
            dict(outcome.profile_encoder.vocabularies),
            outcome.p_valid if outcome.p_valid is not None else np.zeros(0),
        )
        new = NewVersion(
            name=spec.name,
            created_by=created_by or _user(),
            algorithm=card.algorithm,
            task=task,
            metrics=_jsonable(metrics),
            features=outcome.features,
            definitions_hash=manifest.definitions_hash,
            spec_hash=_spec_hash(project.spec_path),
            git_commit=_git_commit(project.spec_path),
            training=_jsonable({**manifest.as_dict(), "model_key": key}),
            lineage=build_lineage(spec, manifest, outcome.features),
            profile=_jsonable(profile),
            serving=outcome.serving,
        )
        version = store.register(new, folder)
        lap("register")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return TrainResult(version=version, reused_training_set=reused, timings=timings)


@dataclass
class _Outcome:
    features: list[str]
    p_valid: np.ndarray | None
    serving: dict[str, Any]
    profile_encoder: FeatureEncoder
    profile_matrix: np.ndarray
    predict_valid: Callable[[Any], np.ndarray] | None
    valid_inputs: Any
    pilot_name: str | None = None
    not_evaluated: str | None = None


def _train(
    model: ModelSpec,
    spec: TaxiwaySpec,
    manifest: TrainingSetManifest,
    table: pa.Table,
    train_table: pa.Table,
    split: TimeSplit,
    y_train: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    folder: Path,
) -> _Outcome:
    from taxiway.models.serving_form import build_serving_form, native_scorer

    features = model_inputs(spec, manifest)
    encoder = FeatureEncoder.fit(train_table, features)
    X = encoder.encode_table(table)
    X_train, X_valid = X[split.train], X[split.valid]
    estimator = fit(
        model.algorithm,
        task,
        X_train,
        y_train,
        categorical=encoder.categorical,
        params=model.params,
        seed=model.seed,
    )
    native = native_scorer(estimator, task)
    p_valid = native.predict(X_valid)
    (folder / "encoder.json").write_text(json.dumps(encoder.as_dict()) + "\n")
    report = build_serving_form(
        estimator,
        X_valid if len(X_valid) else X_train[:100],
        task=task,
        out_dir=folder / "serving",
        categorical=encoder.categorical,
    )
    del y_valid
    return _Outcome(
        features=features,
        p_valid=p_valid,
        serving=report.as_dict(),
        profile_encoder=encoder,
        profile_matrix=X_train,
        predict_valid=native.predict,
        valid_inputs=X_valid,
    )


def _import_pilot(
    path: Path,
    table: pa.Table,
    valid_table: pa.Table,
    y_valid: np.ndarray,
    task: str,
    folder: Path,
) -> _Outcome:
    pilot: Pilot = load_pilot(path)
    name = copy_pilot(path, folder)
    present = [f for f in pilot.features if f in table.column_names]
    missing = [f for f in pilot.features if f not in table.column_names]
    encoder = FeatureEncoder.fit(table, present)
    p_valid = None
    frame = None
    note = None
    if missing:
        note = (
            f"the pilot expects {', '.join(missing)}, which the training set does not have: "
            "it cannot be scored on production's data"
        )
    else:
        frame = valid_table.select(pilot.features).to_pandas()
        try:
            p_valid = pilot.predict_frame(frame, task)
        except Exception as error:  # the pilot's own code: any failure is reported, not raised
            note = f"the pilot failed to score the validation rows: {type(error).__name__}: {error}"
            frame = None
    del y_valid
    serving: dict[str, Any] = {"chosen": "pilot", "flavour": pilot.flavour, "candidates": []}
    if p_valid is not None and len(p_valid):
        compiled, why_not = _compile_pilot(pilot, table, valid_table, p_valid, task, folder)
        serving = compiled if compiled is not None else {**serving, "not_compiled": why_not}

    def predict(inputs: Any) -> np.ndarray:
        return pilot.predict_frame(inputs, task)

    return _Outcome(
        features=pilot.features,
        p_valid=p_valid,
        serving=serving,
        profile_encoder=encoder,
        profile_matrix=encoder.encode_table(table),
        predict_valid=predict if frame is not None else None,
        valid_inputs=frame,
        pilot_name=name,
        not_evaluated=note,
    )


def _compile_pilot(
    pilot: Pilot,
    table: pa.Table,
    valid_table: pa.Table,
    p_valid: np.ndarray,
    task: str,
    folder: Path,
) -> tuple[dict[str, Any] | None, str | None]:
    """The pilot's estimator in a compiled serving form, when one reproduces it exactly.

    A pickled LightGBM, XGBoost, forest or linear model need not be served through pandas
    and its own Python code: when the taxiway encoding of the validation rows, scored by
    the estimator's library, gives the pilot's own predictions (within the serving
    tolerance), the serving forms are built from it as for a trained model, minus the
    pickle itself. Otherwise the pilot is served as it is; the reason is kept.
    """
    from taxiway.models.serving_form import TOLERANCE, build_serving_form, native_scorer

    if pilot.flavour == "mlflow-pyfunc":
        return None, "an MLflow pyfunc model is scored through MLflow"
    encoder = FeatureEncoder.fit(table, pilot.features)
    X_valid = encoder.encode_table(valid_table)
    with warnings.catch_warnings():
        # fitted on a frame, scored on its encoded matrix: the same columns, in order
        warnings.filterwarnings("ignore", message=".*valid feature names", category=UserWarning)
        try:
            native = native_scorer(pilot.estimator, task).predict(X_valid)
        except Exception as error:  # the pilot's own code: any failure means "not compiled"
            return None, f"its library cannot score the encoded rows: {type(error).__name__}"
        worst = float(np.max(np.abs(np.asarray(native, dtype=np.float64) - p_valid)))
        if not worst <= TOLERANCE:
            return None, f"the encoded rows score {worst:.3g} away from the pilot's own"
        try:
            report = build_serving_form(
                pilot.estimator,
                X_valid,
                task=task,
                out_dir=folder / "serving",
                categorical=encoder.categorical,
                exclude=("sklearn",),
            )
        except ModelError as error:
            shutil.rmtree(folder / "serving", ignore_errors=True)
            return None, error.message
    (folder / "encoder.json").write_text(json.dumps(encoder.as_dict()) + "\n")
    return {**report.as_dict(), "from_pilot": pilot.flavour}, None


def _baseline(
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


def _diagnostics(
    outcome: _Outcome,
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


def _metrics(y: np.ndarray, p: np.ndarray | None, task: str) -> dict[str, Any]:
    if p is None:
        return {}
    if task == "classification":
        return classification_metrics(y, p)
    return regression_metrics(y, p)


def _labels(column: pa.ChunkedArray[Any], task: str, name: str) -> np.ndarray:
    y = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if task == "classification":
        values = set(np.unique(y[~np.isnan(y)]).tolist())
        if not values <= {0.0, 1.0}:
            shown = ", ".join(f"{v:g}" for v in sorted(values)[:5])
            raise ModelError(
                f"label `{name}` has values {shown}: binary classification needs 0/1 or true/false",
                fix="make the label a condition (e.g. `expr: arr_delay > 15`) or set "
                "model.task: regression",
            )
    return y


def _tmp_root(project: Project) -> Path:
    root = project.state_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _spec_hash(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _git_commit(path: Path | None) -> str | None:
    where = Path(path).parent if path is not None else Path.cwd()
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
