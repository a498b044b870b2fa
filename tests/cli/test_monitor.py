"""`taxiway monitor` as a user runs it: the version from the registry, its stored reference,
the log where the spec says; exit 0 healthy, 1 when an alert fires, 2 for bad options; the
errors that say what to do; `taxiway monitor export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from tests.monitoring.monitor_world import VERSION, World, reference, shift_spend

from taxiway.cli import main
from taxiway.models.registry import NewVersion, open_registry
from taxiway.spec.project import Project

SPEC = """\
name: churn
sources:
  orders: {kind: file, path: data/orders.csv, timestamp: ordered_at}
entities: {customer: customer_id}
features:
  orders:
    source: orders
    entity: customer
    aggregate: {spend: sum(amount)}
    windows: [30d]
model: {metric: roc_auc}
serving:
  latency_budget_ms: 50
  log: {path: predictions}
monitoring: {window: 1h}
"""


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return reference()


@pytest.fixture
def project(
    tmp_path: Path, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, World]:
    """A spec, a registry holding versions 1 and 2 (trained before the monitor: no
    reference) and 3 (with one), and an empty prediction log where the spec says."""
    monkeypatch.delenv("TAXIWAY_STATE_DIR", raising=False)
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(SPEC)
    loaded = Project.load(spec)
    registry = open_registry(loaded.spec.registry, state_dir=loaded.state_dir)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.json").write_text("{}")
    try:
        for version in range(1, VERSION + 1):
            profile = {"monitor": stored} if version == VERSION else {}
            registry.register(_version(profile), artifacts)
    finally:
        registry.close()
    return spec, World(tmp_path, stored)


def _version(profile: dict[str, Any]) -> NewVersion:
    return NewVersion(
        name="churn",
        created_by="tests",
        algorithm="logistic",
        task="classification",
        metrics={},
        features=["age", "spend", "plan"],
        definitions_hash="",
        spec_hash="",
        git_commit=None,
        training={},
        lineage={},
        profile=profile,
        serving={},
    )


def test_a_healthy_log_exits_0(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, world = project
    for hour in range(3):
        world.write_window(hour)
    assert main(["monitor", "-f", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("churn v3: healthy over 3 window(s), 1,800 requests")
    assert "ok    spend: psi" in out


def test_a_drifted_feature_exits_1_and_the_report_names_it(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec, world = project
    world.write_window(0)
    for hour in (1, 2):
        world.write_window(hour, shift=shift_spend)
    out = tmp_path / "report"
    assert main(["monitor", "-f", str(spec), "--json", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == ""
    assert document["healthy"] is False
    assert {f["name"]: f["status"] for f in document["features"]} == {
        "age": "ok",
        "spend": "drift",
        "plan": "ok",
    }
    [alert] = [a for a in document["alerts"] if a["kind"] == "drift" and "spend" in a["key"]]
    assert alert["severity"] == "ticket"
    assert "feature spend drifted" in alert["title"]
    assert json.loads((out / "monitor.json").read_text())["features"] == document["features"]
    assert "| spend | psi |" in (out / "monitor.md").read_text()
    assert '<svg id="chart-dist-spend"' in (out / "monitor.html").read_text()


def test_window_and_since_narrow_the_report(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, world = project
    for hour in range(2):
        world.write_window(hour)
    assert main(["monitor", "-f", str(spec), "--json", "--window", "30m"]) == 0
    assert json.loads(capsys.readouterr().out)["period"]["windows"] == 4
    since = "2026-12-06T06:00"
    assert main(["monitor", "-f", str(spec), "--json", "--window", "30m", "--since", since]) == 0
    assert json.loads(capsys.readouterr().out)["period"]["start"] == "2026-12-06T06:00:00+00:00"


def test_no_log_yet_says_to_serve_first(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = project
    assert main(["monitor", "-f", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "no prediction log at" in err
    assert "fix: serve the model first (`taxiway serve`)" in err


def test_a_version_without_a_reference_says_to_retrain(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, world = project
    world.write_window(0)
    assert main(["monitor", "-f", str(spec), "--model-version", "2"]) == 1
    err = capsys.readouterr().err
    assert "this version has no monitor reference: churn v2" in err
    assert "fix: retrain" in err


def test_a_version_the_registry_lacks_is_named(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = project
    assert main(["monitor", "-f", str(spec), "--model-version", "9"]) == 1
    assert "9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [("--window", "hourly", "--window 'hourly'"), ("--since", "yesterday", "--since 'yesterday'")],
)
def test_bad_options_exit_2(
    project: tuple[Path, World],
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    said: str,
) -> None:
    spec, _ = project
    assert main(["monitor", "-f", str(spec), option, value]) == 2
    assert said in capsys.readouterr().err


def test_export_writes_prometheus_rules_and_a_grafana_dashboard(
    project: tuple[Path, World], tmp_path: Path
) -> None:
    spec, _ = project
    rules, board = tmp_path / "out" / "rules.yml", tmp_path / "out" / "board.json"
    assert main(["monitor", "export", "-f", str(spec), "--prometheus-rules", str(rules),
                 "--grafana", str(board)]) == 0  # fmt: skip
    text = rules.read_text()
    groups = YAML(typ="safe").load(text)["groups"]
    assert groups
    assert "taxiway_drift_status" in text
    assert "spend" in text  # the newest version's features
    # the quality floor the monitor pages at: the training-time roc_auc minus 0.05
    floor = reference()["quality"]["metrics"]["roc_auc"] - 0.05
    assert "TaxiwayQualityBelowFloor" in text
    assert f'taxiway_quality{{model="churn",metric="roc_auc"}} < {floor:g}' in text
    assert 'le="0.05"' in text  # the spec's 50 ms budget
    assert json.loads(board.read_text())["panels"]


def test_export_before_any_version_covers_the_slos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAXIWAY_STATE_DIR", raising=False)
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(SPEC)
    rules = tmp_path / "rules.yml"
    assert main(["monitor", "export", "-f", str(spec), "--prometheus-rules", str(rules)]) == 0
    assert "TaxiwayLatencySloBurn" in rules.read_text()


def test_export_needs_something_to_write(
    project: tuple[Path, World], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = project
    assert main(["monitor", "export", "-f", str(spec)]) == 2
    assert "nothing to export" in capsys.readouterr().err


def test_the_help_names_the_exit_codes() -> None:
    from typer.testing import CliRunner

    from taxiway.cli.app import app

    result = CliRunner().invoke(app, ["monitor", "--help"])
    assert result.exit_code == 0
    assert "Exit 0 healthy, 1 when an alert" in " ".join(result.output.split())
    assert "export" in result.output
