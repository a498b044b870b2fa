"""`taxiway train` against the default baseline: the best of the prior and a one-feature
rule on each of the model's inputs, so a weak model loses to a perfect input and says so
(exit 1).

The data: one visit per two hours; `signal` (sent with the request) equals the label, `noise`
carries nothing. The weak models: a LightGBM that cannot split (no leaf may hold fewer than
100,000 rows, so it predicts a constant), and a pilot whose pipeline drops `signal`.
"""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from taxiway.cli import main
from taxiway.models.artifact import load_model
from taxiway.models.registry import open_registry
from taxiway.models.training import train_model
from taxiway.spec.project import Project

SPEC = """\
name: perfect-signal
sources:
  visits: {kind: file, path: visits.csv, timestamp: at}
entities: {customer: customer_id}
features:
  history: {source: visits, entity: customer, aggregate: {visits: count(*)}, windows: [7d]}
spine: {source: visits}
label: {name: bought, kind: column, expr: "outcome = 1"}
model: {request_fields: [signal, noise], MORE}
"""
WEAK = "params: {min_data_in_leaf: 100000}"


def _project(folder: Path, model: str = WEAK) -> Path:
    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 1)
    with (folder / "visits.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "at", "signal", "noise", "outcome"])
        for i in range(600):
            outcome = int(rng.integers(0, 2))
            at = (start + timedelta(hours=2 * i)).isoformat(sep=" ")
            noise = round(float(rng.normal()), 4)
            writer.writerow([int(rng.integers(0, 40)), at, outcome, noise, outcome])
    spec = folder / "taxiway.yaml"
    spec.write_text(SPEC.replace("MORE", model))
    return spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict[str, Any]]:
    spec = _project(tmp_path_factory.mktemp("perfect"))
    done = subprocess.run(
        [sys.executable, "-m", "taxiway", "train", "-f", str(spec), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return spec, done.returncode, json.loads(done.stdout)


def test_a_weak_model_does_not_beat_a_perfect_single_feature(
    trained: tuple[Path, int, dict[str, Any]],
) -> None:
    _, code, document = trained
    assert code == 1
    assert document["beats_baseline"] is False
    assert document["baseline_choice"]["feature"] == "signal"
    assert document["baseline_choice"]["candidates"] == 3  # signal, noise, history__visits_7d
    assert document["metrics"]["baseline"]["roc_auc"] == 1.0
    assert document["metrics"]["model"]["roc_auc"] == 0.5  # a constant
    assert document["baseline"] == (
        "a one-feature rule on `signal` (ROC AUC 1 on validation), "
        "the best of 3 candidate features and the prior (0.5)"
    )


def test_the_registry_keeps_the_choice_and_the_service_falls_back_to_it(
    trained: tuple[Path, int, dict[str, Any]],
) -> None:
    spec, _, document = trained
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get("perfect-signal", document["version"])
    finally:
        registry.close()
    assert version.metrics["baseline_choice"]["rule_scores"]["signal"] == 1.0
    assert version.metrics["baseline_description"] == document["baseline"]
    model = load_model(version.artifact_dir)
    assert model.baseline.feature == "signal"
    assert model.baseline_one({"signal": 1}) > 0.9 > 0.1 > model.baseline_one({"signal": 0})


def test_the_terminal_report_names_the_baseline_and_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _project(tmp_path)
    assert main(["train", "-f", str(spec)]) == 1
    text = " ".join(capsys.readouterr().out.split())  # the terminal wraps long lines
    assert "baseline: a one-feature rule on `signal` (ROC AUC 1 on validation)" in text
    assert "the best of 3 candidate features and the prior (0.5)" in text
    assert "on roc_auc: the model does not beat the baseline" in text


def test_model_baseline_feature_pins_the_rule(tmp_path: Path) -> None:
    spec = _project(tmp_path, WEAK + ", baseline_feature: noise")
    result = train_model(Project.load(spec))
    choice = result.version.metrics["baseline_choice"]
    assert choice["pinned"] == "noise"
    assert set(choice["rule_scores"]) == {"noise"}  # the perfect `signal` is not considered
    assert choice["feature"] in ("noise", None)
    assert "model.baseline_feature" in result.version.metrics["baseline_description"]


def test_an_input_kept_from_the_model_is_kept_from_the_baseline(tmp_path: Path) -> None:
    """A column left out of model.features (a leak, an attribute the team may not use) is
    neither the bar nor the service's fallback."""
    spec = _project(tmp_path, "algorithm: logistic, features: [noise, history]")
    result = train_model(Project.load(spec))
    choice = result.version.metrics["baseline_choice"]
    assert set(choice["rule_scores"]) == {"noise", "history__visits_7d"}
    assert choice["feature"] != "signal"


def test_a_pilot_that_ignores_its_best_input_does_not_beat_it(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    spec = _project(tmp_path)
    frame = pd.read_csv(tmp_path / "visits.csv")
    pilot = make_pipeline(
        ColumnTransformer([("noise", "passthrough", ["noise"])]), LogisticRegression()
    ).fit(frame[["signal", "noise"]], frame["outcome"])
    with (tmp_path / "pilot.pkl").open("wb") as out:
        pickle.dump(pilot, out)
    spec.write_text(spec.read_text().replace(WEAK, "pilot: pilot.pkl"))
    result = train_model(Project.load(spec))
    metrics = result.version.metrics
    assert result.version.features == ["signal", "noise"]
    assert metrics["baseline_choice"]["feature"] == "signal"
    assert metrics["baseline"]["roc_auc"] == 1.0 > metrics["model"]["roc_auc"]
    assert result.beats_baseline is False
