"""Contract validation: counts equal a brute-force scan; quarantine loses no row."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.data.contracts import load_contract_text, validate, validate_frame

CONTRACT = load_contract_text(
    """
apiVersion: v3.1.0
kind: DataContract
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, required: true, unique: true}
      - name: amount
        logicalType: number
        logicalTypeOptions: {minimum: 0, maximum: 1000}
        quality: [{metric: nullValues, mustBeLessThan: 50, unit: percent, severity: warning}]
      - {name: status, logicalType: string, enum: [placed, shipped]}
      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions: {pattern: '^[a-z]+@[a-z]+$'}
    quality:
      - {metric: rowCount, mustBeGreaterThan: 0, severity: error}
"""
)

rows = st.lists(
    st.fixed_dictionaries(
        {
            "order_id": st.one_of(st.none(), st.integers(0, 8)),
            "amount": st.one_of(st.none(), st.floats(-10, 1200, allow_nan=False)),
            "status": st.one_of(st.none(), st.sampled_from(["placed", "shipped", "lost"])),
            "email": st.one_of(st.none(), st.sampled_from(["a@b", "bad", "x@y", "Q@R"])),
        }
    ),
    min_size=0,
    max_size=40,
)


def brute_force(data: list[dict[str, object]]) -> dict[str, int]:
    """The failing counts, computed the slow, obvious way."""
    ids = [r["order_id"] for r in data if r["order_id"] is not None]
    return {
        "order_id.required": sum(r["order_id"] is None for r in data),
        "order_id.unique": len(ids) - len(set(ids)),
        "amount.minimum": sum(r["amount"] is not None and r["amount"] < 0 for r in data),  # type: ignore[operator]
        "amount.maximum": sum(r["amount"] is not None and r["amount"] > 1000 for r in data),  # type: ignore[operator]
        "amount.nullValues": sum(r["amount"] is None for r in data),
        "status.enum": sum(r["status"] not in (None, "placed", "shipped") for r in data),
        "email.pattern": sum(
            r["email"] is not None and not re.search(r"^[a-z]+@[a-z]+$", str(r["email"]))
            for r in data
        ),
    }


def as_table(data: Sequence[Mapping[str, object]]) -> pa.Table:
    columns: list[tuple[str, pa.DataType]] = [
        ("order_id", pa.int64()),
        ("amount", pa.float64()),
        ("status", pa.string()),
        ("email", pa.string()),
    ]
    schema = pa.schema(columns)
    return pa.Table.from_pylist(data, schema=schema)


@settings(max_examples=60, deadline=None)
@given(rows)
def test_failing_counts_equal_a_brute_force_scan(data: list[dict[str, object]]) -> None:
    report = validate_frame(as_table(data), CONTRACT, source="orders")
    expected = brute_force(data)
    for rule, count in expected.items():
        assert report.result(rule).failing == count, rule
    assert report.rows == len(data)
    assert report.result("rowCount").passed == (len(data) > 0)


@settings(max_examples=40, deadline=None)
@given(rows)
def test_quarantine_plus_clean_rows_is_every_row(
    tmp_path_factory: pytest.TempPathFactory, data: list[dict[str, object]]
) -> None:
    folder = tmp_path_factory.mktemp("q")
    con = duckdb.connect()
    con.register("orders", as_table(data))
    report = validate(con, "orders", CONTRACT, source="orders", quarantine_dir=folder)
    quarantined = 0
    if report.quarantine_path is not None:
        path = report.quarantine_path
        quarantined = con.execute(f"SELECT count(*) FROM '{path}'").fetchall()[0][0]
        unexplained = con.execute(f"SELECT count(*) FROM '{path}' WHERE _reason = ''").fetchall()
        assert unexplained[0][0] == 0, "every quarantined row says why"
    assert quarantined == report.quarantined_rows
    clean = con.execute(f'SELECT * FROM "{report.clean_view}"').fetchall()
    assert len(clean) + quarantined == len(data)
    # the clean rows pass every quarantine rule: ids unique and present, values in range
    ids = [row[0] for row in clean]
    assert None not in ids
    assert len(ids) == len(set(ids))
    assert all(row[1] is None or 0 <= row[1] <= 1000 for row in clean)


def test_samples_mask_pii_and_are_at_most_five(tmp_path: Path) -> None:
    data = [
        {"order_id": i, "amount": -1.0, "status": "placed", "email": "secret@mail"}
        for i in range(9)
    ]
    report = validate_frame(as_table(data), CONTRACT, source="orders", quarantine_dir=tmp_path)
    result = report.result("amount.minimum")
    assert result.failing == 9
    assert result.fraction == 1.0
    assert len(result.samples) == 5
    assert all(sample["email"] == "***" for sample in result.samples)
    assert "secret@mail" not in str(report.as_dict())
    # the quarantine file is data, not a log: it keeps the real value for repair
    assert report.quarantined_rows == 9


def test_duplicates_keep_the_row_that_passes_everything_else(tmp_path: Path) -> None:
    data = [
        {"order_id": 1, "amount": -5.0, "status": "placed", "email": "a@b"},
        {"order_id": 1, "amount": 5.0, "status": "placed", "email": "a@b"},
    ]
    report = validate_frame(as_table(data), CONTRACT, source="orders", quarantine_dir=tmp_path)
    assert report.quarantine_path is not None
    [(amount, reason)] = duckdb.execute(
        f"SELECT amount, _reason FROM '{report.quarantine_path}'"
    ).fetchall()
    assert amount == -5.0  # the valid copy (5.0) is the one kept
    assert reason == "order_id.unique: duplicate order_id; amount.minimum: amount not >= 0"


def test_percent_thresholds_and_warn_policy() -> None:
    data = [
        {"order_id": i, "amount": None if i < 3 else 1.0, "status": "placed", "email": None}
        for i in range(4)
    ]
    report = validate_frame(as_table(data), CONTRACT, source="orders")
    result = report.result("amount.nullValues")
    assert result.value == pytest.approx(75.0)
    assert not result.passed
    finding = next(f for f in report.findings if f.rule == "amount.nullValues")
    assert finding.severity == "warn"
    assert not report.blocked


def test_block_rule_blocks() -> None:
    report = validate_frame(as_table([]), CONTRACT, source="orders")
    assert report.blocked
    assert any(f.rule == "rowCount" and f.blocks for f in report.findings)


def test_schema_drift_added_removed_retyped() -> None:
    table = pa.table(
        {"order_id": ["1", "x", None], "status": pa.array([1, 2, 3]), "extra": [1, 2, 3]}
    )
    report = validate_frame(table, CONTRACT, source="orders")
    rules = {f.rule: f.severity for f in report.findings}
    assert rules["schema.added.extra"] == "warn"
    assert rules["schema.removed.amount"] == "block"
    assert rules["schema.removed.email"] == "block"
    assert rules["schema.retyped.status"] == "warn"
    # an integer column delivered as text is checked value by value
    assert report.result("order_id.type").failing == 1


def test_sql_rule_and_freshness_sla() -> None:
    contract = load_contract_text(
        """
apiVersion: v3.1.0
schema:
  - name: events
    properties: [{name: at, logicalType: timestamp}, {name: v, logicalType: number}]
    quality:
      - {type: sql, query: "SELECT count(*) FROM {object} WHERE v > 10", mustBeLessThan: 2, severity: error}
slaProperties: [{property: latency, value: 2, unit: d, element: events.at}]
"""
    )
    now = datetime(2026, 1, 10, tzinfo=UTC)
    table = pa.table({"at": [datetime(2026, 1, 7), datetime(2026, 1, 5)], "v": [11.0, 12.0]})
    report = validate_frame(table, contract, source="events", as_of=now)
    assert report.result("sql[0]").value == 2.0
    assert not report.result("sql[0]").passed
    fresh = report.result("at.freshness")
    assert not fresh.passed
    assert fresh.value == timedelta(days=3).total_seconds()
    fresh_ok = validate_frame(table, contract, source="events", as_of=now - timedelta(days=2))
    assert fresh_ok.result("at.freshness").passed


def test_policy_override_by_custom_property() -> None:
    contract = load_contract_text(
        """
apiVersion: v3.1.0
schema:
  - name: t
    properties:
      - name: x
        logicalType: integer
        required: true
        customProperties: [{property: taxiway.policy, value: block}]
"""
    )
    report = validate_frame(pa.table({"x": pa.array([None, 1], pa.int64())}), contract, source="t")
    assert report.blocked


def test_composite_primary_key_is_unique_as_a_whole_not_per_column() -> None:
    contract = load_contract_text(
        """
apiVersion: v3.1.0
schema:
  - name: lines
    properties:
      - {name: order_id, logicalType: integer, primaryKey: true, primaryKeyPosition: 1}
      - {name: line, logicalType: integer, primaryKey: true, primaryKeyPosition: 2}
"""
    )
    table = pa.table({"order_id": [1, 1, 2, 2], "line": [1, 2, 1, 1]})
    report = validate_frame(table, contract, source="lines")
    assert report.result("primaryKey.unique").failing == 1
    assert "order_id.unique" not in {r.rule for r in report.results}


def test_odcs_v30_boolean_exclusive_bounds_and_float_multiples() -> None:
    contract = load_contract_text(
        """
apiVersion: v3.0.0
schema:
  - name: t
    properties:
      - name: x
        logicalType: number
        logicalTypeOptions: {minimum: 0, exclusiveMinimum: true, multipleOf: 0.1}
"""
    )
    report = validate_frame(pa.table({"x": [0.0, 0.3, 0.7, 0.25]}), contract, source="t")
    assert report.result("x.minimum").failing == 1  # 0 is not > 0
    assert report.result("x.multipleOf").failing == 1  # only 0.25


def test_integers_delivered_as_text_must_be_whole() -> None:
    contract = load_contract_text(
        "apiVersion: v3.1.0\nschema: [{name: t, properties: [{name: n, logicalType: integer}]}]\n"
    )
    report = validate_frame(pa.table({"n": ["12", " 7", "12.5", "x", None]}), contract, source="t")
    assert report.result("n.type").failing == 2


def test_quarantine_within_threshold_still_reports_the_rows_set_aside(tmp_path: Path) -> None:
    contract = load_contract_text(
        """
apiVersion: v3.1.0
schema:
  - name: t
    properties:
      - name: a
        quality:
          - metric: nullValues
            mustBeLessThan: 50
            unit: percent
            customProperties: [{property: taxiway.policy, value: quarantine}]
"""
    )
    report = validate_frame(
        pa.table({"a": [1, None, 3, 4]}), contract, source="t", quarantine_dir=tmp_path
    )
    assert report.result("a.nullValues").passed
    assert report.quarantined_rows == 1
    assert [f.severity for f in report.findings] == ["quarantine"]
