"""Conformance: a contract finds the same failing rows on Spark as on DuckDB, and sets aside
the same rows with the same reasons.

One definition, two engines: the validation SQL of ``taxiway.data.contracts`` runs on DuckDB as
written and on Spark transpiled. Rows are drawn (derandomized, so a Spark failure reproduces)
from pools of good and bad values for every kind of rule: nulls, duplicates of a key and of a
composite key, enums, ranges with NaN and infinities, regular expressions with escapes,
lengths, multiples, whole numbers stored as doubles, integers and numbers stored as text.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.conftest import retail_shop
from typer.testing import CliRunner

from taxiway.cli.app import app
from taxiway.data.contracts.loader import load_contract_text
from taxiway.data.contracts.report import ValidationReport
from taxiway.data.contracts.validate import validate
from taxiway.engines.duckdb import connect, quote_literal
from taxiway.engines.sql import DuckDBEngine, SqlEngine

CONTRACT = load_contract_text(r"""
apiVersion: v3.1.0
schema:
  - name: things
    properties:
      - {name: id, logicalType: integer, required: true, unique: true}
      - {name: shop, logicalType: string, primaryKey: true}
      - {name: seq, logicalType: integer, primaryKey: true}
      - name: email
        logicalType: string
        logicalTypeOptions: {pattern: '^[^@\s]+@[^@\s]+\.[a-z]+$'}
        customProperties: [{property: taxiway.policy, value: warn}]
      - {name: country, logicalType: string, logicalTypeOptions: {pattern: '^[A-Z]{2}$'}}
      - {name: status, logicalType: string, enum: [placed, shipped]}
      - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0, maximum: 100}}
      - {name: whole, logicalType: integer}
      - {name: code, logicalType: string, logicalTypeOptions: {minLength: 3, maxLength: 5}}
      - {name: step, logicalType: number, logicalTypeOptions: {multipleOf: 0.5}}
      - {name: qty, logicalType: integer, logicalTypeOptions: {minimum: 1}}
      - {name: price, logicalType: number, logicalTypeOptions: {exclusiveMinimum: 0}}
      - {name: ts, logicalType: timestamp, required: true}
    quality:
      - {metric: rowCount, mustBeGreaterThan: 2, severity: warning}
      - type: sql
        query: "SELECT count(*) FROM {object} WHERE amount > 50"
        mustBeLessThan: 3
        severity: warning
slaProperties:
  - {property: latency, value: 2, unit: d, element: things.ts}
""")

TYPES: dict[str, pa.DataType] = {
    "id": pa.int64(),
    "shop": pa.string(),
    "seq": pa.int64(),
    "email": pa.string(),
    "country": pa.string(),
    "status": pa.string(),
    "amount": pa.float64(),
    "whole": pa.float64(),
    "code": pa.string(),
    "step": pa.float64(),
    "qty": pa.string(),
    "price": pa.string(),
    "ts": pa.timestamp("us"),
}
SCHEMA = pa.schema([pa.field(name, kind) for name, kind in TYPES.items()])

POOLS: dict[str, list[Any]] = {
    "id": [1, 2, 3, 4, None],
    "shop": ["a", "b", None],
    "seq": [1, 2, None],
    "email": ["x@y.com", "bad", "a b@c.de", "x@y.c0m", "x@y.com\n", None],
    "country": ["DE", "FR", "de", "DEU", "D\\E", None],
    "status": ["placed", "shipped", "lost", "", None],
    "amount": [0.0, 5.5, 100.0, -1.0, 100.5, math.nan, math.inf, -math.inf, None],
    "whole": [1.0, -2.0, 1.5, 1e20, math.nan, None],
    "code": ["abc", "abcde", "ab", "abcdef", "", None],
    "step": [0.5, 1.0, 0.3, -1.5, None],
    "qty": ["1", " 7 ", "+3", "0", "-2", "1.5", "x", "", None],
    "price": ["2.5", " 1e3 ", "0", "-1", "inf", "nan", "abc", "", None],
    "ts": [datetime(2026, 1, 1, 10), datetime(2026, 1, 3, 23, 59, 59, 123456), None],
}
AS_OF = datetime(2026, 1, 4, tzinfo=UTC)

rows = st.lists(
    st.fixed_dictionaries({name: st.sampled_from(pool) for name, pool in POOLS.items()}),
    max_size=30,
)
SAMPLE = settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each try costs Spark seconds
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _spark_engine(spark: Any, folder: Path) -> SqlEngine:
    from taxiway.engines.spark import SparkEngine

    return SparkEngine(spark, folder)


def _run(engine: SqlEngine, folder: Path) -> tuple[ValidationReport, list[dict[str, Any]]]:
    report = validate(
        engine,
        "things",
        CONTRACT,
        source="things",
        quarantine_dir=folder / "quarantine",
        run_id="run",
        as_of=AS_OF,
        order_by="ts",
    )
    assert report.clean_view is not None
    return report, engine.rows(f"SELECT * FROM {report.clean_view}")


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)  # NaN, inf and None as text alike


def _same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert sorted(map(_key, a)) == sorted(map(_key, b))


def assert_same_validation(data: pa.Table, spark: Any, folder: Path) -> ValidationReport:
    """Validate ``data`` on both engines; the same results, quarantine and clean rows."""
    path = folder / "things.parquet"
    pq.write_table(data, path)
    con = connect()
    con.execute(f"CREATE VIEW things AS SELECT * FROM read_parquet({quote_literal(str(path))})")
    duck, duck_clean = _run(DuckDBEngine(con), folder / "duckdb")
    engine = _spark_engine(spark, folder / "spark-temp")
    engine.register_parquet("things", [str(path)])  # type: ignore[attr-defined]
    try:
        other, spark_clean = _run(engine, folder / "spark")
    finally:
        engine.close()
        con.close()
    assert other.rows == duck.rows == data.num_rows
    for a, b in zip(duck.results, other.results, strict=True):
        assert (a.rule, a.passed, a.failing, a.value) == (b.rule, b.passed, b.failing, b.value)
        assert len(a.samples) == len(b.samples), a.rule
    assert [(f.rule, f.severity, f.message) for f in duck.findings] == [
        (f.rule, f.severity, f.message) for f in other.findings
    ]
    assert duck.quarantined_rows == other.quarantined_rows
    if duck.quarantine_path is not None:
        assert other.quarantine_path is not None
        _same_rows(
            pq.read_table(duck.quarantine_path).to_pylist(),
            pq.read_table(other.quarantine_path).to_pylist(),
        )
    _same_rows(duck_clean, spark_clean)
    return duck


@SAMPLE
@given(drawn=rows)
def test_drawn_rows_fail_and_are_set_aside_alike(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, drawn: list[dict[str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("contract")
    assert_same_validation(pa.Table.from_pylist(drawn, schema=SCHEMA), spark, folder)


def test_every_bad_value_fails_alike(spark: Any, tmp_path: Path) -> None:
    """Each pool's values in one table (with duplicates of both keys): every rule fails."""
    longest = max(len(pool) for pool in POOLS.values())
    table = [{name: pool[i % len(pool)] for name, pool in POOLS.items()} for i in range(longest)]
    report = assert_same_validation(pa.Table.from_pylist(table, schema=SCHEMA), spark, tmp_path)
    failing = {r.rule for r in report.results if r.failing}
    # every row rule is exercised: the comparison above is not of empty results
    assert {
        "id.required",
        "id.unique",
        "primaryKey.unique",
        "email.pattern",
        "country.pattern",
        "status.enum",
        "amount.minimum",
        "amount.maximum",
        "whole.type",
        "code.minLength",
        "code.maxLength",
        "step.multipleOf",
        "qty.type",
        "qty.minimum",
        "price.type",
        "price.exclusiveMinimum",
    } <= failing
    assert report.quarantined_rows > 0


def test_taxiway_check_runs_on_spark_from_the_command_line(spark: Any, tmp_path: Path) -> None:
    """`taxiway check --engine spark` on the retail example: the same report as on DuckDB."""
    spec = retail_shop(tmp_path, customers=150)
    reports = {}
    for engine in ("duckdb", "spark"):
        state = tmp_path / f"state-{engine}"
        result = CliRunner().invoke(
            app,
            [
                *("check", "-f", str(spec), "--state-dir", str(state), "--json"),
                *("--engine", engine, "--as-of", "2026-01-01T00:00:00"),
            ],
        )
        assert result.exit_code == 0, result.output
        reports[engine] = json.loads(result.stdout)
        quarantined = list((state / "quarantine" / "orders").glob("*.parquet"))
        assert len(quarantined) == 1
        reports[engine]["quarantined"] = sorted(
            map(_key, pq.read_table(quarantined[0]).to_pylist())
        )
    duck, other = reports["duckdb"], reports["spark"]
    assert duck["quarantined"]
    assert duck["quarantined"] == other["quarantined"]
    for a, b in zip(duck["sources"], other["sources"], strict=True):
        assert (a["name"], a["rows"], a["status"], a["quarantined_rows"]) == (
            b["name"],
            b["rows"],
            b["status"],
            b["quarantined_rows"],
        )
        assert [(r["rule"], r["failing"], r["passed"]) for r in a["rules"]] == [
            (r["rule"], r["failing"], r["passed"]) for r in b["rules"]
        ]


def test_a_rule_spark_cannot_run_is_a_finding_with_its_fix(spark: Any, tmp_path: Path) -> None:
    """A `sql` rule naming a missing column: a block finding saying what failed and what to
    do, no JVM stack trace; the other sources are still checked."""
    spec = retail_shop(tmp_path, customers=120)
    contract = tmp_path / "contracts" / "orders.yaml"
    text = contract.read_text().replace("WHERE ingested_at < ordered_at", "WHERE no_such_column")
    contract.write_text(text)
    result = CliRunner().invoke(
        app,
        ["check", "-f", str(spec), "--state-dir", str(tmp_path / "s"), "--json", "--engine=spark"],
    )
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    orders = next(s for s in report["sources"] if s["name"] == "orders")
    (finding,) = [f for f in orders["findings"] if f["rule"] == "source.read"]
    assert "no_such_column" in finding["message"]
    assert "Spark failed" in finding["message"]
    assert finding["fix"]
    assert "org.apache" not in result.stdout
    assert [s["status"] for s in report["sources"]][1:] == ["warn", "warn"]
