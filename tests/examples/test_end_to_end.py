"""The examples end to end, as a user runs them: check, build, materialize, skew.

These copy each example's spec and contracts next to freshly generated data in a temporary
folder, so they never depend on (or disturb) `examples/*/data`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import duckdb
import pytest
from tests.conftest import load_script

from taxiway.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _script(name: str, path: Path) -> ModuleType:
    return load_script(name, path)


def _copy_example(name: str, folder: Path) -> Path:
    shutil.copy(EXAMPLES / name / "taxiway.yaml", folder / "taxiway.yaml")
    shutil.copytree(EXAMPLES / name / "contracts", folder / "contracts")
    return folder / "taxiway.yaml"


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("retail-e2e")
    _script("retail_sim", EXAMPLES / "retail" / "simulate.py").simulate(
        folder / "data", customers=800
    )
    return _copy_example("retail", folder)


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flights-e2e")
    _script("flights_prep", EXAMPLES / "flights" / "prepare.py").prepare(folder / "data")
    return _copy_example("flights", folder)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().out


def test_retail_check_build_materialize_and_no_skew(
    retail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(retail)
    code, out = run(["check", "-f", spec, "--json"], capsys)
    assert code == 0, out
    quarantined = {s["name"]: s["quarantined_rows"] for s in json.loads(out)["sources"]}
    assert quarantined["orders"] > 0, "the simulator's dirty orders are set aside"
    out_file = retail.parent / "training.parquet"
    code, out = run(["features", "build", "-f", spec, "--out", str(out_file), "--json"], capsys)
    assert code == 0
    manifest = json.loads(out)
    assert manifest["rows"] > 1000
    assert manifest["sources"]["orders"]["quarantined"] == quarantined["orders"]
    rates = duckdb.execute(f"SELECT avg(churned) FROM '{out_file}'").fetchall()[0][0]
    assert 0.05 < rates < 0.95, "a learnable label, neither always nor never"
    # a churned customer has fewer recent orders than one who stays: the signal is there
    gap = duckdb.execute(
        f"SELECT avg(customer_orders__order_count_90d) FILTER (WHERE churned = 0) "
        f"- avg(customer_orders__order_count_90d) FILTER (WHERE churned = 1) FROM '{out_file}'"
    ).fetchall()[0][0]
    assert gap > 0
    assert run(["features", "materialize", "-f", spec, "--as-of", "2025-12-31"], capsys)[0] == 0
    code, out = run(["features", "skew", "-f", spec, "--sample", "300", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["mismatches"] == []


@pytest.mark.slow
def test_flights_event_spine_with_weather_and_a_column_label(
    flights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = flights.parent / "training.parquet"
    code, out = run(
        ["features", "build", "-f", str(flights), "--out", str(out_file), "--json"], capsys
    )
    assert code == 0
    manifest = json.loads(out)
    assert manifest["spine_rows"] == 336_776
    assert manifest["dropped"]["label_null"] > 0  # cancelled and diverted flights have no label
    assert manifest["rows"] + manifest["dropped"]["label_null"] == manifest["spine_rows"]
    assert manifest["keys"] == ["origin", "carrier", "tailnum"]
    # weather is never from the future: every served observation is at least an hour old
    early = duckdb.execute(
        f"""
        SELECT count(*) FROM '{out_file}' t
        WHERE weather_now__temp IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM '{flights.parent / "data" / "weather.parquet"}' w
            WHERE w.origin = t.origin AND w.time_hour + INTERVAL 1 HOUR <= t.timestamp
              AND w.time_hour >= t.timestamp - INTERVAL 3 HOUR)
        """
    ).fetchall()[0][0]
    assert early == 0
    code, out = run(
        ["features", "materialize", "-f", str(flights), "--as-of", "2013-06-01T12:00:00"], capsys
    )
    assert code == 0
    code, out = run(["features", "skew", "-f", str(flights), "--sample", "50", "--json"], capsys)
    assert code == 0, out
