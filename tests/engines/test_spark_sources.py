"""Sources Spark reads itself: a Delta table (its version's files) and PostgreSQL over JDBC.

Conformance: a training set built on Spark from a ``kind: delta`` source and from a
``kind: postgres`` table (and query) equals the one DuckDB builds, row by row
(tests/engines/test_spark_conformance.py's comparison). The JDBC tests need Debian's
PostgreSQL driver jar: they skip without it, and fail under CI=true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import in_ci, require
from tests.engines.test_spark_conformance import assert_same_sets, both
from tests.features import test_training_set_properties as props

from taxiway.errors import TaxiwayError
from taxiway.features.training_set import build_training_set
from taxiway.spec import Project

deltalake = require("deltalake", reason="Delta sources need the stream extra")

CASE: dict[str, Any] = {
    "events": [
        {"k": k, "minute": 60 * (h + 1) + k, "v": float(h - k) if h != 3 else None, "created": h}
        for k in (1, 2, 3)
        for h in range(0, 120, 7)
    ],
    "available_after_h": 1,
    "windows_h": [5, 48],
    "ttl_h": 30,
    "every_h": 6,
    "horizon_h": 12,
    "label_kind": "sum",
    "spine": "periodic",
}


def with_source(project: Project, source: str) -> Project:
    """``project`` with its `ev` source declared as ``source`` (YAML flow mapping)."""
    lines = project.spec_path.read_text().splitlines()
    text = "\n".join(f"  ev: {source}" if line.startswith("  ev:") else line for line in lines)
    project.spec_path.write_text(text + "\n")
    return Project.load(project.spec_path, project.spec_path.parent / ".state")


def from_parquet(folder: Path) -> Path:
    """The case's set built on DuckDB from the events' Parquet file, in ``folder``."""
    folder.mkdir()
    build_training_set(props.write_spec(folder, CASE), folder / "set.parquet")
    return folder / "set.parquet"


def delta_spec(
    tmp_path: Path, *, version: int | None = None, partition_by: str | None = None
) -> Project:
    """The case's events as a Delta table in two commits (the last third appended)."""
    project = props.write_spec(tmp_path, CASE)
    events = pq.read_table(tmp_path / "events.parquet")
    cut = events.num_rows * 2 // 3
    table = tmp_path / "events_delta"
    parts = [partition_by] if partition_by else None
    deltalake.write_deltalake(str(table), events.slice(0, cut), partition_by=parts)
    deltalake.write_deltalake(str(table), events.slice(cut), mode="append", partition_by=parts)
    pinned = f", version: {version}" if version is not None else ""
    return with_source(
        project,
        "{kind: delta, path: events_delta, timestamp: ts, created: created, "
        f"available_after: 1h{pinned}}}",
    )


def test_a_delta_source_builds_the_same_set_on_spark(spark: Any, tmp_path: Path) -> None:
    rows = both(delta_spec(tmp_path), tmp_path)
    assert rows > 0
    # the same set as from the events' Parquet file: the table's newest version is every row
    assert_same_sets(from_parquet(tmp_path / "plain"), tmp_path / "spark.parquet")


def test_a_pinned_version_is_read_alike(spark: Any, tmp_path: Path) -> None:
    project = delta_spec(tmp_path, version=0)
    both(project, tmp_path)
    (tmp_path / "newest").mkdir()
    build_training_set(delta_spec(tmp_path / "newest"), tmp_path / "newest.parquet")
    # version 0 holds two thirds of the events: its label sums differ from the newest's
    assert pq.read_table(tmp_path / "spark.parquet") != pq.read_table(tmp_path / "newest.parquet")
    manifest = build_training_set(project, tmp_path / "again.parquet", engine="spark")
    assert manifest.sources["ev"]["history"]["version"] == 0


def test_a_partitioned_delta_table_keeps_its_partition_column_and_type(
    spark: Any, tmp_path: Path
) -> None:
    """`k` lives only in the folder names (k=1/...): Spark casts it back to bigint."""
    both(delta_spec(tmp_path, partition_by="k"), tmp_path)


@pytest.mark.parametrize(
    ("configuration", "named"),
    [
        ({"delta.enableDeletionVectors": "true"}, "deletion vectors"),
        ({"delta.columnMapping.mode": "name"}, "column mapping"),
    ],
)
@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_delta_table_its_files_alone_misread_is_refused_with_the_fix(
    spark: Any, tmp_path: Path, configuration: dict[str, str], named: str, engine: str
) -> None:
    """delta-rs reads a column-mapped table's columns as nulls: refused, never misread."""
    project = props.write_spec(tmp_path, CASE)
    events = pq.read_table(tmp_path / "events.parquet")
    deltalake.write_deltalake(str(tmp_path / "events_delta"), events, configuration=configuration)
    project = with_source(project, "{kind: delta, path: events_delta, timestamp: ts}")
    with pytest.raises(TaxiwayError, match=named) as raised:
        build_training_set(project, tmp_path / "x.parquet", engine=engine)  # type: ignore[arg-type]
    assert "`ev`" in str(raised.value)
    assert "point `path:` at it" in (raised.value.fix or "")


def test_spark_refuses_such_a_table_itself(spark: Any, tmp_path: Path) -> None:
    """The Spark engine's own check (a build stages on DuckDB first, which refuses sooner)."""
    from taxiway.engines.spark import SparkEngine

    events = pa.table({"k": [1, 2]})
    table = str(tmp_path / "dv")
    deltalake.write_deltalake(table, events, configuration={"delta.enableDeletionVectors": "true"})
    with pytest.raises(TaxiwayError, match="deletion vectors"):
        SparkEngine(spark, tmp_path).register_delta("v", "ev", table, None)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def jdbc_jar() -> Path:
    from taxiway.engines.spark_sources import POSTGRES_JAR

    if POSTGRES_JAR.is_file():
        return POSTGRES_JAR
    reason = f"Spark reads PostgreSQL with its JDBC driver and {POSTGRES_JAR} is missing"
    if in_ci():
        pytest.fail(f"{reason}; CI must install libpostgresql-jdbc-java (.ci/run)", pytrace=False)
    pytest.skip(f"{reason}; `apt-get install libpostgresql-jdbc-java` to run this test")


def events_in_postgres(url: str, events: pa.Table, table: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(
            f"CREATE TABLE {table} (k bigint, ts timestamp, v double precision, created bigint)"
        )
        with con.cursor().copy(f"COPY {table} (k, ts, v, created) FROM STDIN") as copy:
            for row in events.to_pylist():
                copy.write_row([row["k"], row["ts"], row["v"], row["created"]])


def postgres_spec(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, relation: str
) -> Project:
    project = props.write_spec(tmp_path, CASE)
    events_in_postgres(url, pq.read_table(tmp_path / "events.parquet"), "ev_events")
    # the password only from the environment (the server trusts loopback: any one works)
    user, rest = url.removeprefix("postgresql://").split("@", 1)
    monkeypatch.setenv("TW_SPARK_PG_URL", f"postgresql://{user}:n0t-in-any-log@{rest}")
    return with_source(
        project,
        f"{{kind: postgres, url: '${{TW_SPARK_PG_URL}}', {relation}, timestamp: ts, "
        "created: created, available_after: 1h}",
    )


def test_a_postgres_table_builds_the_same_set_over_jdbc(
    spark: Any, jdbc_jar: Path, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = postgres_spec(tmp_path, postgres_url, monkeypatch, "table: public.ev_events")
    assert both(project, tmp_path) > 0
    assert_same_sets(from_parquet(tmp_path / "plain"), tmp_path / "spark.parquet")


def test_a_postgres_query_builds_the_same_set_over_jdbc(
    spark: Any, jdbc_jar: Path, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "query: 'select k, ts, v, created from ev_events where k <> 2;'"
    assert both(postgres_spec(tmp_path, postgres_url, monkeypatch, query), tmp_path) > 0
    keys = set(pq.read_table(tmp_path / "spark.parquet").column("k").to_pylist())
    assert keys == {1, 3}


def test_a_jdbc_failure_names_the_source_and_never_the_password(
    spark: Any,
    jdbc_jar: Path,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from taxiway.engines.spark import SparkEngine

    project = postgres_spec(tmp_path, postgres_url, monkeypatch, "table: public.no_such_table")
    source = project.spec.sources["ev"]
    engine = SparkEngine(spark, tmp_path)
    with pytest.raises(TaxiwayError) as raised:
        engine.register_postgres("v", "ev", source)  # type: ignore[arg-type]
    said = f"{raised.value} {raised.value.fix} {capsys.readouterr()}"
    assert "`ev`" in said
    assert "no_such_table" in said
    assert "n0t-in-any-log" not in said


def test_jdbc_urls_carry_no_credentials() -> None:
    from taxiway.engines.spark_sources import jdbc_url

    url = jdbc_url({"host": "db", "dbname": "shop", "user": "ann", "password": "pw", "port": None})
    assert url == "jdbc:postgresql://db:5432/shop"


def test_the_session_carries_the_jdbc_driver(spark: Any, jdbc_jar: Path) -> None:
    assert str(jdbc_jar) in spark.sparkContext.getConf().get("spark.jars", "")
