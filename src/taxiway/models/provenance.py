"""What the registry records of a new version besides its files: its metrics, lineage and
reference profile, who made it, and from which spec file and git commit."""

from __future__ import annotations

import getpass
import hashlib
import subprocess  # nosec B404
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.features.training_set import TrainingSetManifest
from taxiway.models.artifact import ModelCard
from taxiway.models.lineage import build_lineage
from taxiway.models.outcome import Outcome
from taxiway.models.profile import build_profile
from taxiway.models.registry import NewVersion
from taxiway.monitoring.quality_reference import quality_reference
from taxiway.monitoring.reference import build_reference
from taxiway.spec.project import Project

__all__ = [
    "MIN_REFERENCE_ROWS",
    "git_commit",
    "jsonable",
    "monitor_reference",
    "new_version",
    "spec_hash",
    "user",
]

MIN_REFERENCE_ROWS = 1_000
"""Validation rows the monitor's input reference needs; fewer, and the training rows stand in."""


def new_version(
    project: Project,
    manifest: TrainingSetManifest,
    key: str,
    card: ModelCard,
    outcome: Outcome,
    metrics: dict[str, Any],
    created_by: str | None,
    y_valid: np.ndarray | None = None,
) -> NewVersion:
    """What the registry records of the version: metrics, lineage, profile, provenance.

    The profile holds the serving checks' ranges and, under ``monitor``, the monitor's
    reference (:func:`monitor_reference`).
    """
    spec = project.spec
    output = outcome.p_valid if outcome.p_valid is not None else np.zeros(0)
    profile = build_profile(
        outcome.profile_matrix,
        outcome.profile_encoder.features,
        outcome.profile_encoder.kinds,
        dict(outcome.profile_encoder.vocabularies),
        output,
    )
    profile["monitor"] = monitor_reference(project, outcome, card.task, y_valid)
    return NewVersion(
        name=spec.name,
        created_by=created_by or user(),
        algorithm=card.algorithm,
        task=card.task,
        metrics=jsonable(metrics),
        features=outcome.features,
        definitions_hash=manifest.definitions_hash,
        spec_hash=spec_hash(project.spec_path),
        git_commit=git_commit(project.spec_path),
        training=jsonable({**manifest.as_dict(), "model_key": key}),
        lineage=build_lineage(spec, manifest, outcome.features),
        profile=jsonable(profile),
        serving=outcome.serving,
    )


def monitor_reference(
    project: Project, outcome: Outcome, task: str, y_valid: np.ndarray | None
) -> dict[str, Any]:
    """The monitor's reference for the version (``taxiway.monitoring``): a mergeable profile
    and calibrated thresholds per input and for the output, from the validation rows and the
    model's predictions on them; under ``quality``, what CBPE needs to estimate quality before
    labels arrive, from the same predictions and their labels.

    The validation rows are the newest the model was judged on (the split is by time), so
    live traffic is compared with the latest known world rather than with the whole training
    history (features with a trend, such as a growing shop's order counts, would otherwise
    read as drifted from the first window), and inputs and output describe the same rows:
    out-of-sample scores, as live ones are (in-sample scores are sharper). With fewer than
    :data:`MIN_REFERENCE_ROWS` validation rows the training rows stand in for the inputs.
    Booleans are profiled as 0/1; timestamp inputs are not monitored (none is served today)."""
    encoder = outcome.profile_encoder
    matrix = outcome.valid_matrix
    if matrix is None or len(matrix) < MIN_REFERENCE_ROWS:
        matrix = outcome.profile_matrix
    columns: dict[str, Any] = {}
    kinds: dict[str, Any] = {}
    for index, (name, kind) in enumerate(zip(encoder.features, encoder.kinds, strict=True)):
        values = matrix[:, index].astype(np.float64)
        if kind == "categorical":
            vocabulary = encoder.vocabularies[name]
            columns[name] = [None if v != v else vocabulary[int(v)] for v in values]
            kinds[name] = "categorical"
        elif kind in ("numeric", "boolean"):
            columns[name], kinds[name] = values, "numeric"
    drift = project.spec.monitoring.drift if project.spec.monitoring else "psi"
    output = outcome.p_valid if outcome.p_valid is not None else np.zeros(0)
    reference = build_reference(columns, kinds, output, statistic=drift)
    if outcome.p_valid is not None and y_valid is not None and len(y_valid):
        reference["quality"] = quality_reference(
            outcome.p_valid, y_valid, "regression" if task == "regression" else "classification"
        )
    return reference


def spec_hash(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def git_commit(path: Path | None) -> str | None:
    where = Path(path).parent if path is not None else Path.cwd()
    try:
        done = subprocess.run(  # nosec B603 B607
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


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
