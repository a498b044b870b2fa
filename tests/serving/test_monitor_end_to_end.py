"""`taxiway monitor` over a real trained model: the retail shop's production version scores
its validation rows, the service's log writer records the answers, and the monitor judges
them against the reference training stored. Healthy traffic exits 0; the same traffic with
one input shifted exits 1 with an alert naming that input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.serving.conftest import variant

from taxiway.cli import main
from taxiway.models.artifact import load_model
from taxiway.models.registry import ModelVersion, open_registry
from taxiway.serving.log import PredictionLog
from taxiway.spec.project import Project

START = datetime(2026, 12, 6, 5, tzinfo=UTC)
SHIFTED = "customer_orders__spend_90d"


@pytest.fixture(scope="module")
def served(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelVersion]:
    """A copy of the trained shop's state (registry, artifacts) under a spec of its own, so
    the log and the monitor's state written here touch no other test's."""
    folder = tmp_path_factory.mktemp("monitored-shop")
    spec = variant(shop, folder)
    shutil.copytree(
        shop.parent / ".taxiway",
        folder / ".taxiway",
        ignore=shutil.ignore_patterns("predictions", "outcomes", "monitor", "*.lock"),
    )
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.production(project.spec.name)
    finally:
        registry.close()
    assert version is not None
    return spec, version


def validation_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """The newest 20% of the training set's rows (the time-split validation set)."""
    table = pq.read_table(version.training["path"]).sort_by("timestamp")
    return table.slice(int(table.num_rows * 0.8)).to_pylist()


def write_log(
    spec: Path,
    version: ModelVersion,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """The model's answers to the validation rows over three hours, written by the service's
    log writer where the spec's service writes it; ``change`` alters each row's inputs
    before it is scored (as a source that changed would). Returns the number written."""
    project = Project.load(spec)
    folder = project.state_dir / "predictions"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(project.state_dir / "monitor", ignore_errors=True)
    model = load_model(version.artifact_dir)
    rows = validation_rows(version)
    step = timedelta(hours=3) / len(rows)
    with PredictionLog(folder, worker="e2e") as log:
        for i, row in enumerate(rows):
            values = {name: row[name] for name in version.features}
            if change is not None:
                change(values)
            log.append_sync(
                {
                    "ts": (START + i * step).isoformat(),
                    "request_id": f"r{i}",
                    "model": project.spec.name,
                    "model_version": version.version,
                    "arm": "production",
                    "unit": str(row["customer_id"]),
                    "path": "model",
                    "degraded": False,
                    "reason": None,
                    "prediction": model.predict_one(values),
                    "latency_ms": 0.5,
                    "lookup_ms": 0.1,
                    "entities": {"customer": str(row["customer_id"])},
                    "request": {},
                    "features": values,
                    "out_of_range": [],
                }
            )
    return len(rows)


def in_cents(values: dict[str, Any]) -> None:
    if values[SHIFTED] is not None:
        values[SHIFTED] = values[SHIFTED] * 100.0


def test_the_models_own_validation_traffic_is_healthy(
    served: tuple[Path, ModelVersion], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, version = served
    written = write_log(spec, version)
    code = main(["monitor", "-f", str(spec), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert [a["title"] for a in document["alerts"]] == []
    assert code == 0
    assert document["version"] == version.version
    assert document["period"]["requests"] == written
    assert {f["status"] for f in document["features"]} <= {"ok", "warn"}
    assert document["quality"]["estimated"]["roc_auc"] > 0.7


def test_a_shifted_input_drifts_and_its_alert_names_it(
    served: tuple[Path, ModelVersion], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, version = served
    write_log(spec, version, in_cents)
    assert main(["monitor", "-f", str(spec), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    drifted = [f["name"] for f in document["features"] if f["status"] == "drift"]
    assert drifted == [SHIFTED]  # that input alone
    [alert] = [a for a in document["alerts"] if a["kind"] == "drift" and SHIFTED in a["key"]]
    assert alert["title"] == f"feature {SHIFTED} drifted"
    assert alert["severity"] == "ticket"
    assert alert["where"] == "view customer_orders, source orders"
