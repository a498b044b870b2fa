"""The prediction log's windows profiled on Spark (local[2]) equal the Python path's: counts,
missing, fine bins and labels exactly, KLL quantiles within the sketch's rank error, and the
monitor's verdicts from either are the same."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import datasketches  # type: ignore[import-untyped]
import numpy as np
import pytest
from tests.cli.test_monitor import SPEC, _version
from tests.monitoring.monitor_world import VERSION, World, reference, shift_spend, spend_as_text

from taxiway.cli import main
from taxiway.models.registry import open_registry
from taxiway.monitoring.monitor import LOG_PATTERN, run_monitor
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.reference import load_reference
from taxiway.monitoring.spark_windows import spark_windows
from taxiway.monitoring.windows import Window, WindowStore
from taxiway.spec.project import Project

RANK_ERROR = 0.0133  # the KLL sketch's normalised rank error at k = 200 (99% of the time)
QS = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Five hours of log: stationary, then the spend shifted, then sent as text; a record of
    another version and a line with no readable time."""
    built = World(tmp_path_factory.mktemp("log"), reference())
    built.write_window(0)
    built.write_window(1, rows=900)
    for hour in (2, 3):
        built.write_window(hour, shift=shift_spend)
    built.write_window(4, shift=spend_as_text)
    built.write_window(4, rows=50, version=VERSION + 1)
    with (built.log / "predictions-zz-hand.jsonl").open("w") as out:
        out.write('{"ts": "soon", "model_version": 3, "prediction": 0.5}\n')
        out.write('{"ts": "2026-12-06T07:10:00+00:00", "model_version": 3, "prediction": 0.4,')
    return built


def python_windows(world: World, folder: Path) -> list[Window]:
    return WindowStore(folder).update(
        world.log,
        LOG_PATTERN,
        load_reference(world.stored),
        window=world.inputs().window,
        budget_ms=50.0,
        version=VERSION,
    )


def on_spark(spark: Any, world: World) -> tuple[list[Window], int]:
    return spark_windows(
        spark,
        sorted(world.log.glob(LOG_PATTERN)),
        world.stored,
        window=world.inputs().window,
        budget_ms=50.0,
        version=VERSION,
    )


def assert_same_profile(spark: Profile, python: Profile) -> None:
    assert spark.kind == python.kind
    assert (spark.rows, spark.missing) == (python.rows, python.missing)
    if isinstance(python, CategoricalProfile):
        assert isinstance(spark, CategoricalProfile)
        assert spark.counts == python.counts
        exact = datasketches.frequent_items_error_type.NO_FALSE_POSITIVES
        # a few labels: the sketch counts them exactly
        assert sorted(spark.sketch.get_frequent_items(exact)) == sorted(
            python.sketch.get_frequent_items(exact)
        )
        return
    assert isinstance(spark, NumericProfile)
    assert isinstance(python, NumericProfile)
    assert spark.counts.tolist() == python.counts.tolist()
    assert (spark.invalid, spark.below, spark.above) == (python.invalid, python.below, python.above)
    assert (spark.min, spark.max) == (python.min, python.max)
    assert spark.sum == pytest.approx(python.sum, rel=1e-12)
    assert spark.sum_sq == pytest.approx(python.sum_sq, rel=1e-12)
    assert spark.sketch.n == python.sketch.n
    if not python.known:
        return
    # each sketch's quantile sits within its rank error of the true rank in the other's data
    for q, value in zip(QS, spark.quantiles(QS), strict=True):
        assert abs(python.sketch.get_rank(value) - q) <= 2 * RANK_ERROR
    for q, value in zip(QS, python.quantiles(QS), strict=True):
        assert abs(spark.sketch.get_rank(value) - q) <= 2 * RANK_ERROR


def test_the_windows_profiled_on_spark_equal_the_python_ones(
    spark: Any, world: World, tmp_path: Path
) -> None:
    expected = python_windows(world, tmp_path / "windows")
    got, untimed = on_spark(spark, world)
    assert untimed == 1  # "soon"; the line cut short is dropped, as the Python reader skips it
    assert [w.start for w in got] == [w.start for w in expected]
    for s, p in zip(got, expected, strict=True):
        assert (s.end, s.requests, s.profiled) == (p.end, p.requests, p.profiled)
        assert (s.fallbacks, s.degraded, s.errors, s.slow) == (
            p.fallbacks,
            p.degraded,
            p.errors,
            p.slow,
        )
        assert (s.missing, s.out_of_range, s.versions, s.arms, s.minutes) == (
            p.missing,
            p.out_of_range,
            p.versions,
            p.arms,
            p.minutes,
        )
        assert s.features.keys() == p.features.keys()
        for name in p.features:
            assert_same_profile(s.features[name], p.features[name])
        assert_same_profile(s.output, p.output)
        assert_same_profile(s.latency, p.latency)
    spends = [w.features["spend"] for w in got]
    assert all(isinstance(spend, NumericProfile) for spend in spends)
    # the spends sent as text count as invalid, as they do in process
    assert any(spend.invalid for spend in spends if isinstance(spend, NumericProfile))
    age = got[0].features["age"]
    assert isinstance(age, NumericProfile)
    assert not math.isnan(age.quantiles([0.5])[0])


def test_the_monitor_gives_the_same_verdicts_from_either(
    spark: Any, world: World, tmp_path: Path
) -> None:
    windows, _ = on_spark(spark, world)
    from_spark = run_monitor(world.inputs(state_folder=tmp_path / "spark", windows=windows))
    from_python = run_monitor(world.inputs(state_folder=tmp_path / "python"))
    assert from_spark.period == from_python.period
    statuses = {f.name: f.status for f in from_python.features}
    assert statuses == {"age": "ok", "spend": "drift", "plan": "ok"}
    for s, p in zip(from_spark.features, from_python.features, strict=True):
        assert (s.name, s.status, s.why) == (p.name, p.status, p.why)
        assert [h.over for h in s.history] == [h.over for h in p.history]
        assert np.allclose(
            [np.nan if h.value is None else h.value for h in s.history],
            [np.nan if h.value is None else h.value for h in p.history],
            equal_nan=True,
        )
    assert [a.text for a in from_spark.alerts] == [a.text for a in from_python.alerts]


def test_taxiway_monitor_on_spark_reports_what_it_reports_in_process(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TAXIWAY_STATE_DIR", raising=False)
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(SPEC)
    loaded = Project.load(spec)
    registry = open_registry(loaded.spec.registry, state_dir=loaded.state_dir)
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.json").write_text("{}")
    stored = reference()
    try:
        for version in range(1, VERSION + 1):
            profile = {"monitor": stored} if version == VERSION else {}
            registry.register(_version(profile), tmp_path / "artifacts")
    finally:
        registry.close()
    world = World(tmp_path, stored)
    world.write_window(0)
    for hour in (1, 2):
        world.write_window(hour, shift=shift_spend)
    assert main(["monitor", "-f", str(spec), "--json"]) == 1
    in_process = json.loads(capsys.readouterr().out)
    assert main(["monitor", "-f", str(spec), "--json", "--engine", "spark"]) == 1
    on_spark = json.loads(capsys.readouterr().out)
    assert on_spark["period"] == in_process["period"]
    assert {f["name"]: f["status"] for f in on_spark["features"]} == {
        "age": "ok",
        "spend": "drift",
        "plan": "ok",
    }
    assert [(f["name"], f["status"], f["why"]) for f in on_spark["features"]] == [
        (f["name"], f["status"], f["why"]) for f in in_process["features"]
    ]
    assert [a["title"] for a in on_spark["alerts"]] == [a["title"] for a in in_process["alerts"]]
