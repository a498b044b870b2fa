"""Conformance: the point-in-time training set is the same on Spark as on DuckDB.

One plan, two engines (docs/architecture.md, "One plan, two engines"). A fixed sample of the
property tests' cases (tests/features/test_training_set_properties.py: every aggregate, the
windows, available_after, the labels, periodic and event spines; test_pit_latest_properties.py:
ties on time, ``created`` and values, nulls and NaN, spine rows planted on the ttl and
available_after edges, keys with no rows) and the retail example are built on both engines
and compared: the same columns and types, then row by row in the set's order, exact for
counts, keys and times, within 1e-9 relative for floating values. Spark starts once (one
``local[2]`` session for the run); each case costs it a few seconds.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from tests.conftest import retail_shop
from tests.features import test_pit_latest_properties as latest
from tests.features import test_training_set_properties as props

from taxiway.errors import FeatureError
from taxiway.features.training_set import TrainingSetManifest, build_training_set
from taxiway.spec import Project

# derandomized: the same sample every run, so a Spark failure reproduces
SAMPLE = settings(
    max_examples=8,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


def assert_same_sets(duck: Path, spark: Path) -> int:
    """The two Parquet files hold the same columns, types and rows, in the same order."""
    a, b = pq.read_table(duck), pq.read_table(spark)
    assert a.column_names == b.column_names
    for field in a.schema:
        other = b.schema.field(field.name)
        assert field.type == other.type, f"{field.name}: {field.type} vs {other.type}"
    assert a.num_rows == b.num_rows
    for index, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist(), strict=True)):
        different = {c: (x[c], y[c]) for c in x if not same_value(x[c], y[c])}
        assert not different, f"row {index} differs (duckdb, spark): {different}"
    return a.num_rows


def assert_same_manifests(duck: TrainingSetManifest, spark: TrainingSetManifest) -> None:
    assert (duck.rows, duck.spine_rows, duck.dropped) == (
        spark.rows,
        spark.spine_rows,
        spark.dropped,
    )
    assert (duck.features, duck.keys, duck.label) == (spark.features, spark.keys, spark.label)
    assert duck.fingerprint == spark.fingerprint  # the engine is not part of the definitions


def both(project: Project, folder: Path) -> int:
    duck = build_training_set(project, folder / "duckdb.parquet")
    spark = build_training_set(project, folder / "spark.parquet", engine="spark")
    assert_same_manifests(duck, spark)
    return assert_same_sets(folder / "duckdb.parquet", folder / "spark.parquet")


@SAMPLE
@given(props.scenarios())
def test_training_set_cases_agree(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, s: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("conform")
    both(props.write_spec(folder, s), folder)


@SAMPLE
@given(latest.scenarios())
def test_latest_view_ties_and_edges_agree(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, s: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("conform_latest")
    rows = both(latest.write_project(folder, s), folder)
    assert rows == len(s["probes"])  # every probe is a row, found or not


def test_a_late_spine_and_empty_windows_agree(spark: Any, tmp_path: Path) -> None:
    """Rows known only after most spine times, windows that hold nothing, a spine running a
    month past the data (its labels unknown: dropped alike), ties on one timestamp."""
    s = {
        "events": [
            {"k": 1, "minute": 60 * 24 * 5, "v": 2.0, "created": 1},
            {"k": 1, "minute": 60 * 24 * 5, "v": -1.0, "created": 1},  # a tie on time, created
            {"k": 2, "minute": 60 * 24 * 5 + 1, "v": None, "created": 0},
            {"k": 2, "minute": 60 * 24 * 6, "v": 3.0, "created": 2},
        ],
        "available_after_h": 30,
        "windows_h": [31, 130],
        "ttl_h": 1,
        "every_h": 7,
        "horizon_h": 6,
        "label_kind": "sum",
        "spine": "periodic",
    }
    project = props.write_spec(tmp_path, s)
    text = project.spec_path.read_text().replace("2025-01-07T00:00:00", "2025-02-07T00:00:00")
    project.spec_path.write_text(text)
    both(Project.load(project.spec_path, tmp_path / ".state"), tmp_path)


@pytest.mark.slow
def test_the_retail_example_agrees(spark: Any, tmp_path: Path) -> None:
    """Contracts (quarantined rows handed over clean), aggregate, latest and static views, a
    weekly spine and a no-event label, on a small simulated shop."""
    spec = retail_shop(tmp_path, customers=150)
    rows = both(Project.load(spec, tmp_path / ".state"), tmp_path)
    assert rows > 1000


def latest_case(ttl: timedelta | None) -> dict[str, Any]:
    """Two rows of key 1 tied on time (created breaks the tie), key 2 once, probes on edges."""
    base = latest.BASE
    return {
        "events": [
            {"k": 1, "hour": 2, "created": 1, "a": "y", "b": 0.0},
            {"k": 1, "hour": 2, "created": 2, "a": "z", "b": math.nan},
            {"k": 2, "hour": 5, "created": None, "a": None, "b": 2.5},
        ],
        "available_after": timedelta(hours=1),
        "ttl": ttl,
        "with_created": True,
        "listed": ["a", "b"],
        "probes": [
            (1, base + timedelta(hours=3)),
            (1, base + timedelta(hours=3) - latest.US),
            (2, base + timedelta(hours=9)),
            (3, base + timedelta(hours=9)),
        ],
    }


def test_a_spine_key_type_other_than_the_sources_is_cast_alike(spark: Any, tmp_path: Path) -> None:
    """The probes' key is a string where the events' is an integer: both engines cast."""
    s = latest_case(ttl=timedelta(hours=3))
    project = latest.write_project(tmp_path, s)
    table = pq.read_table(tmp_path / "probes.parquet")
    keys = pa.array([str(k) for k in table.column("k").to_pylist()], pa.string())
    pq.write_table(table.set_column(1, "k", keys), tmp_path / "probes.parquet")
    both(Project.load(project.spec_path, tmp_path / ".state"), tmp_path)


def test_the_bucketed_plan_is_refused_on_spark_with_the_fix(spark: Any, tmp_path: Path) -> None:
    s = latest_case(ttl=timedelta(hours=3))
    project = latest.write_project(tmp_path, s)
    with pytest.raises(FeatureError, match="DuckDB only") as raised:
        build_training_set(project, tmp_path / "x.parquet", engine="spark", latest_plan="bucketed")
    assert "auto" in (raised.value.fix or "")


def test_features_build_runs_on_spark_from_the_command_line(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taxiway.cli.app import main

    project = latest.write_project(tmp_path, latest_case(ttl=None))
    spec = str(project.spec_path)
    assert main(["features", "build", "-f", spec, "--out", str(tmp_path / "d.parquet")]) == 0
    out = str(tmp_path / "s.parquet")
    assert main(["features", "build", "-f", spec, "--out", out, "--engine", "spark"]) == 0
    assert "4 rows" in capsys.readouterr().out
    assert_same_sets(tmp_path / "d.parquet", tmp_path / "s.parquet")


def test_a_spark_failure_on_the_command_line_says_what_to_do(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label expression Spark cannot resolve: exit 1, one message and its fix, no JVM trace."""
    from taxiway.cli.app import main

    project = latest.write_project(tmp_path, latest_case(ttl=None))
    text = project.spec_path.read_text().replace("expr: pid", "expr: pid + no_such_column")
    project.spec_path.write_text(text)
    code = main(["features", "build", "-f", str(project.spec_path), "--engine", "spark"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no_such_column" in err
    assert "fix:" in err
    assert "org.apache" not in err


def test_a_glob_of_files_with_different_columns_and_zoned_times_agrees(
    spark: Any, tmp_path: Path
) -> None:
    """Spark reads a Parquet source without a contract itself: files whose columns differ are
    read by name (one lacks ``note``), and zone-aware times are taken in UTC, as on DuckDB."""
    s = {
        "events": [
            {"k": k, "minute": (m * 389) % 8000, "v": float(m % 4) or None, "created": m % 2}
            for k in (1, 2)
            for m in range(10)
        ],
        "available_after_h": 1,
        "windows_h": [7, 49],
        "ttl_h": 24,
        "every_h": 12,
        "horizon_h": 24,
        "label_kind": "count",
        "spine": "event",
    }
    project = props.write_spec(tmp_path, s)
    table = pq.read_table(tmp_path / "events.parquet")
    zoned = table.set_column(1, "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC")))
    half = zoned.num_rows // 2
    (tmp_path / "events").mkdir()
    pq.write_table(zoned.slice(0, half), tmp_path / "events" / "a.parquet")
    rest = zoned.slice(half).append_column("note", pa.array(["x"] * (zoned.num_rows - half)))
    pq.write_table(rest, tmp_path / "events" / "b.parquet")
    (tmp_path / "events.parquet").unlink()
    text = project.spec_path.read_text().replace("path: events.parquet", "path: events/*.parquet")
    project.spec_path.write_text(text)
    assert both(Project.load(project.spec_path, tmp_path / ".state"), tmp_path) > 0
