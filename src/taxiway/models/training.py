"""`taxiway train`: training set → time split → model and baseline → registered version.

The training set is reused when its manifest's fingerprint is current (same definitions, same
data), else rebuilt; every built set is also a new version of the Delta table
``<state dir>/training/delta/`` (:func:`training_snapshots_path`), recorded with the version,
and retention (``model.snapshots``) runs after each registration (:mod:`~taxiway.models.retention`). The newest share of spine times is validation; the model (trained, or the
imported pilot) and the baseline are scored there on the same rows. The baseline is the best
on validation of the prior and a one-feature rule (fitted on the training rows) per input of
the model, or the rule on ``model.baseline_feature`` (see
:mod:`taxiway.models.baseline`); the report names it. Every trained model gets
its fastest faithful serving form; every version records its metrics, inputs, lineage and the
reference profile for drift monitoring.

The parts: :mod:`~taxiway.models.fitting` (the spec's algorithm fitted),
:mod:`~taxiway.models.pilot_import` (the pilot scored and compiled),
:mod:`~taxiway.models.evaluation` (the baseline, the scores, leakage diagnostics) and
:mod:`~taxiway.models.provenance` (what the registry records); this module reads and splits
the training set, runs them in turn and registers the version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.errors import ModelError
from taxiway.features.training_set import TrainingSetManifest, cached_training_set
from taxiway.models.artifact import ModelCard, save_card
from taxiway.models.card import build_card, write_card
from taxiway.models.evaluation import (
    group_metrics,
    leakage_diagnostics,
    model_baseline,
    validation_scores,
)
from taxiway.models.fitting import fit_algorithm, model_inputs
from taxiway.models.importance import contribution_importance
from taxiway.models.metrics import better, calibration_table, default_metric
from taxiway.models.outcome import Outcome
from taxiway.models.pilot_import import import_pilot
from taxiway.models.provenance import new_version
from taxiway.models.registry import ModelVersion, Registry, open_registry
from taxiway.models.retention import retain_snapshots
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
    "training_snapshots_path",
]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What `taxiway train` did, and the registered version."""

    version: ModelVersion
    reused_training_set: bool
    timings: dict[str, float] = field(default_factory=dict)
    reused_model: bool = False
    snapshots_removed: list[int] = field(default_factory=list)
    """Training-set versions whose files retention removed after this registration."""

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
                "snapshot": v.training.get("snapshot") or None,
                "snapshots_removed": self.snapshots_removed,
            },
            "artifact_dir": v.artifact_dir,
            "reused_model": self.reused_model,
            "timings_s": self.timings,
        }


def training_set_path(project: Project) -> Path:
    """Where `taxiway train` keeps the training set it reuses."""
    return project.state_dir / "training" / "training.parquet"


def training_snapshots_path(project: Project) -> Path:
    """The Delta table whose versions are the training sets `taxiway train` built."""
    return project.state_dir / "training" / "delta"


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


def train_model(
    project: Project,
    *,
    registry: Registry | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    memory_limit: str | None = None,
    created_by: str | None = None,
    reuse: bool = False,
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or import) the spec's model, score it against the baseline, register it.

    With ``reuse``, a registered candidate or production version trained from the same
    inputs (:func:`model_key`: the training set's fingerprint, the label and model sections of
    the spec, the pilot's files, taxiway's version) is returned instead of training and
    registering an identical one; ``reused_model`` says so. Archived versions are never
    reused: someone retired them. ``lineage`` is added to the registered version's lineage
    (`taxiway retrain` records the previous version and the trigger there).
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
        project,
        out,
        rebuild=rebuild,
        progress=say,
        memory_limit=memory_limit,
        snapshots=training_snapshots_path(project),
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
        result = _train_and_register(
            project, manifest, reused, store, key, say, lap, timings, created_by, lineage
        )
        result.snapshots_removed = retain_snapshots(
            training_snapshots_path(project),
            (spec.model or ModelSpec()).snapshots.keep_last,
            store,
            say,
        )
        return result
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
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    spec = project.spec
    model = spec.model or ModelSpec()
    out = training_set_path(project)
    rows = _split_rows(spec, model, out)
    say(f"split: {rows.split.describe()}")
    folder = Path(tempfile.mkdtemp(prefix="taxiway-model-", dir=_tmp_root(project)))
    try:
        if model.pilot is not None:
            say(f"importing the pilot {model.pilot}")
            outcome = import_pilot(
                Path(model.pilot), rows.table, rows.valid_table, rows.y_valid, rows.task, folder
            )
        else:
            say(f"training {model.algorithm} ({rows.task})")
            outcome = fit_algorithm(
                model,
                spec,
                manifest,
                rows.table,
                rows.train_table,
                rows.split,
                rows.y_train,
                rows.y_valid,
                rows.task,
                folder,
            )
        lap("model")
        segments = spec.governance.segments if spec.governance else []
        metrics = _evaluate(model, outcome, rows, folder, say, segments)
        lap("evaluate")
        card = ModelCard(
            kind="pilot" if model.pilot else "trained",
            algorithm="pilot" if model.pilot else model.algorithm,
            task=rows.task,
            label=rows.label,
            features=outcome.features,
            metric=rows.metric,
            request_fields=list(manifest.request_fields),
            pilot=outcome.pilot_name,
        )
        save_card(folder, card)
        shutil.copy2(out.with_name(f"{out.stem}.manifest.json"), folder / "training.manifest.json")
        new = new_version(project, manifest, key, card, outcome, metrics, created_by, rows.y_valid)
        if lineage:
            new = replace(new, lineage={**new.lineage, **lineage})
        version = store.register(new, folder)
        write_card(build_card(spec, version), version.artifact_dir)
        lap("register")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return TrainResult(version=version, reused_training_set=reused, timings=timings)


@dataclass
class _Rows:
    """The training set, its label and its time split."""

    table: pa.Table
    label: str
    task: str
    metric: str
    split: TimeSplit
    train_table: pa.Table
    valid_table: pa.Table
    y_train: np.ndarray
    y_valid: np.ndarray


def _split_rows(spec: TaxiwaySpec, model: ModelSpec, out: Path) -> _Rows:
    """Read the training set at ``out``, check its label, and split it in time."""
    assert spec.label is not None  # nosec B101
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
    return _Rows(
        table=table,
        label=label_name,
        task=task,
        metric=metric,
        split=split,
        train_table=table.filter(pa.array(split.train)),
        valid_table=table.filter(pa.array(split.valid)),
        y_train=y[split.train],
        y_valid=y[split.valid],
    )


def _evaluate(
    model: ModelSpec,
    outcome: Outcome,
    rows: _Rows,
    folder: Path,
    say: Progress,
    segments: list[str],
) -> dict[str, Any]:
    """The version's metrics: the model and its baseline (saved in ``folder``) on validation,
    overall, per time slice and per declared segment; each input's own score and importance,
    and the calibration of a classifier."""
    say("baseline and metrics")
    task, metric, split = rows.task, rows.metric, rows.split
    train_table, valid_table, y_train, y_valid = (
        rows.train_table,
        rows.valid_table,
        rows.y_train,
        rows.y_valid,
    )
    choice, baseline_encoder = model_baseline(
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
    scores = validation_scores(y_valid, outcome.p_valid, task)
    base_scores = validation_scores(y_valid, p_base, task)
    beats = outcome.p_valid is not None and better(
        metric, scores.get(metric), base_scores.get(metric)
    )
    say("leakage diagnostics: single-feature scores and importance")
    diagnostics = leakage_diagnostics(outcome, train_table, valid_table, y_train, y_valid, task)
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
        # mean |contribution| on the validation rows, beside the permutation importance
        "contribution_importance": contribution_importance(
            folder / "serving", outcome.features, outcome.valid_matrix
        ),
        **group_metrics(segments, valid_table, y_valid, outcome.p_valid, p_base, metric),
    }
    if task == "classification" and outcome.p_valid is not None:
        metrics["calibration"] = calibration_table(y_valid, outcome.p_valid)
    return metrics


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
