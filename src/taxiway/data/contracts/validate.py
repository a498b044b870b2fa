"""Validate a source against its contract: set-based SQL in DuckDB, never a loop per row.

One aggregate pass counts the failing rows of every rule; only failing rules are sampled, and
rows failing a `quarantine` rule are written once to ``<dir>/<run id>.parquet`` with a
``_reason`` column. Anything DuckDB can scan works: a registered source view, an Arrow table,
a pandas or polars frame.

>>> import pyarrow as pa
>>> from taxiway.data.contracts.loader import load_contract_text
>>> contract = load_contract_text('''
... apiVersion: v3.1.0
... schema:
...   - name: orders
...     properties:
...       - {name: order_id, logicalType: integer, required: true, unique: true}
...       - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
... ''')
>>> frame = pa.table({"order_id": [1, 2, 2, None], "amount": [5.0, -1.0, 3.0, 2.0]})
>>> report = validate_frame(frame, contract, source="orders")
>>> [(r.rule, r.failing) for r in report.results]
[('order_id.required', 1), ('order_id.unique', 1), ('amount.minimum', 1)]
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from taxiway.data.contracts.model import Contract
from taxiway.data.contracts.report import RuleResult, ValidationReport
from taxiway.data.contracts.rules import Rule, RulePlan, compile_rules
from taxiway.data.findings import Finding
from taxiway.engines.duckdb import connect, fetch_one, quote_identifier, quote_literal
from taxiway.errors import SourceError
from taxiway.spec.durations import format_duration

__all__ = ["MASK", "new_run_id", "validate", "validate_frame"]

MASK = "***"
SAMPLE_ROWS = 5


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique id for one check run, e.g. ``20261122T034500Z-1a2b3c``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def validate_frame(
    frame: Any,
    contract: Contract,
    *,
    source: str = "frame",
    quarantine_dir: Path | None = None,
    as_of: datetime | None = None,
    order_by: str | None = None,
) -> ValidationReport:
    """Validate an in-memory frame (Arrow table, pandas or polars DataFrame).

    The frame's connection is closed on return, so ``clean_view`` is ``None``: read the
    quarantine file, or call :func:`validate` on your own connection to keep the clean view.
    """
    con = connect()
    try:
        con.register("__tw_frame", frame)
        con.execute(f"CREATE TEMP VIEW {quote_identifier(source)} AS SELECT * FROM __tw_frame")
        return validate(
            con, source, contract, source=source, quarantine_dir=quarantine_dir, as_of=as_of
        )
    finally:
        con.close()


@dataclass(frozen=True)
class _Query:
    con: duckdb.DuckDBPyConnection
    source: str

    def one(self, sql: str) -> tuple[Any, ...]:
        try:
            row = fetch_one(self.con, sql)
        except duckdb.Error as error:
            raise SourceError(
                f"source `{self.source}`: validation query failed: {str(error).splitlines()[0]}",
                fix="check the contract's rules against the source's columns",
            ) from None
        assert row is not None
        return tuple(row)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or None)
        names = [column[0] for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def validate(
    con: duckdb.DuckDBPyConnection,
    view: str,
    contract: Contract,
    *,
    source: str,
    quarantine_dir: Path | None = None,
    run_id: str | None = None,
    as_of: datetime | None = None,
    order_by: str | None = None,
) -> ValidationReport:
    """Check the rows of ``view`` (scannable in ``con``) against ``contract``.

    ``order_by`` (the source's timestamp) decides which of several duplicated rows is kept:
    the earliest; the others are the failing ones.
    """
    query = _Query(con, source)
    relation = quote_identifier(view)
    columns = {
        str(name): str(kind)
        for name, kind, *_ in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    }
    plan = compile_rules(contract, columns, source=source)
    findings: list[Finding] = [*plan.drift, *plan.notes]

    # one pass: row count, failing rows per rule, newest value per freshness column
    measures = ["count(*)"]
    for rule in plan.rules:
        measures.append(_failing_sql(rule))
    for fresh in plan.freshness:
        measures.append(f"max({quote_identifier(fresh.column)})")
    values = query.one(f"SELECT {', '.join(measures)} FROM {relation}")
    rows = int(values[0])
    failing_counts = list(values[1 : 1 + len(plan.rules)])
    newest = values[1 + len(plan.rules) :]
    # uniqueness: one GROUP BY per rule gives both the count and a few duplicated keys
    duplicated: dict[int, list[Any]] = {}
    for index, rule in enumerate(plan.rules):
        if rule.unique_over is not None:
            failing_counts[index], duplicated[index] = _duplicates(query, relation, rule)

    results: list[RuleResult] = []
    for index, (rule, failing_value) in enumerate(zip(plan.rules, failing_counts, strict=True)):
        results.append(
            _evaluate(rule, failing_value, rows, query, relation, plan, duplicated.get(index))
        )
    for result, rule in zip(results, plan.rules, strict=True):
        # a quarantine rule sets its failing rows aside even within its threshold: say so
        if not result.passed or (rule.policy == "quarantine" and result.failing):
            findings.append(_finding(source, rule, result))

    now = as_of or datetime.now(UTC)
    for fresh, latest in zip(plan.freshness, newest, strict=True):
        age = _age(now, latest)
        age = None if age is None else timedelta(seconds=int(age.total_seconds()))
        passed = age is not None and age <= fresh.max_age
        shown = "no rows" if age is None else f"newest {fresh.column} is {format_duration(age)} old"
        result = RuleResult(
            rule=fresh.id,
            column=fresh.column,
            policy=fresh.policy,
            passed=passed,
            failing=None,
            fraction=None,
            threshold=f"age ≤ {format_duration(fresh.max_age)}",
            value=None if age is None else age.total_seconds(),
            message=shown,
        )
        results.append(result)
        if not passed:
            findings.append(
                Finding(
                    source,
                    fresh.id,
                    fresh.policy,
                    f"stale: {shown}, the SLA allows {format_duration(fresh.max_age)}",
                    fix=f"check the pipeline that loads `{source}`; its last event is older than "
                    "the contract's latency SLA",
                )
            )

    report = ValidationReport(source=source, rows=rows, results=results, findings=findings)
    to_quarantine = [
        (rule, result)
        for rule, result in zip(plan.rules, results, strict=False)
        if rule.policy == "quarantine" and rule.row_level and (result.failing or 0) > 0
    ]
    clean = quote_identifier(f"{view}__clean")
    report.clean_view = f"{view}__clean"
    if not to_quarantine:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {clean} AS SELECT * FROM {relation}")
    else:
        failing_rules = [rule for rule, _ in to_quarantine]
        base = _with_row_numbers(relation, failing_rules, order_by, list(columns))
        failing = " OR ".join(_fails(rule, i) for i, rule in enumerate(failing_rules))
        numbers = ", ".join(f'"__tw_rn{i}"' for i in range(len(failing_rules)))
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {clean} AS "
            f"SELECT * EXCLUDE ({numbers}) FROM ({base}) WHERE NOT ({failing})"
        )
        if quarantine_dir is not None:
            quarantine_dir.mkdir(parents=True, exist_ok=True)
            path = quarantine_dir / f"{run_id or new_run_id(now)}.parquet"
            reasons = ", ".join(
                f"CASE WHEN {_fails(rule, i)} THEN {quote_literal(rule.id + ': ' + rule.reason)} END"
                for i, rule in enumerate(failing_rules)
            )
            extra = ", ".join(f'"__tw_rn{i}"' for i in range(len(failing_rules)))
            select = (
                f"SELECT * EXCLUDE ({extra}), concat_ws('; ', {reasons}) AS _reason "
                f"FROM ({base}) WHERE {failing}"
            )
            written = query.one(f"COPY ({select}) TO {quote_literal(str(path))} (FORMAT parquet)")
            report.quarantine_path = path
            report.quarantined_rows = int(written[0])
    return report


def _failing_sql(rule: Rule) -> str:
    if rule.row_check is not None:
        return f"count(*) FILTER (WHERE NOT coalesce(({rule.row_check}), FALSE))"
    return "NULL"  # uniqueness is counted by _duplicates, the rest is not row-level


def _duplicates(query: _Query, relation: str, rule: Rule) -> tuple[int, list[Any]]:
    """Extra rows of duplicated keys, and up to SAMPLE_ROWS of those keys, in one pass."""
    assert rule.unique_over is not None
    cols = [quote_identifier(c) for c in rule.unique_over]
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    key = cols[0] if len(cols) == 1 else f"row({', '.join(cols)})"
    count, keys = query.one(
        f"SELECT coalesce(sum(n - 1), 0), list(k)[1:{SAMPLE_ROWS}] FROM ("
        f"SELECT {key} AS k, count(*) AS n FROM {relation} WHERE {present} "
        f"GROUP BY ALL HAVING count(*) > 1)"
    )
    return int(count), list(keys or [])


def _fails(rule: Rule, index: int) -> str:
    """SQL that is TRUE on a failing row (over the relation with row numbers)."""
    if rule.row_check is not None:
        return f"NOT coalesce(({rule.row_check}), FALSE)"
    return f'coalesce("__tw_rn{index}" > 1, FALSE)'


def _with_row_numbers(
    relation: str, rules: list[Rule], order_by: str | None, columns: list[str]
) -> str:
    """The relation plus one row number per uniqueness rule (1 = the row that is kept)."""
    # keep, of each duplicated group, a row that passes the other checks, then the earliest
    checks = [f"NOT coalesce(({r.row_check}), FALSE)" for r in rules if r.row_check is not None]
    order = [f"({' OR '.join(checks)})"] if checks else []
    order += [quote_identifier(order_by)] if order_by else []
    order += [quote_identifier(c) for c in columns if c != order_by]
    numbers = []
    for index, rule in enumerate(rules):
        if rule.unique_over is None:
            numbers.append(f'NULL AS "__tw_rn{index}"')
            continue
        cols = [quote_identifier(c) for c in rule.unique_over]
        present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        numbers.append(
            f"CASE WHEN {present} THEN row_number() OVER (PARTITION BY {', '.join(cols)} "
            f'ORDER BY {", ".join(order)}) END AS "__tw_rn{index}"'
        )
    return f"SELECT *, {', '.join(numbers)} FROM {relation}"


def _evaluate(
    rule: Rule,
    failing_value: Any,
    rows: int,
    query: _Query,
    relation: str,
    plan: RulePlan,
    duplicated_keys: list[Any] | None = None,
) -> RuleResult:
    failing: int | None = None
    fraction: float | None = None
    if rule.measure == "failing":
        failing = int(failing_value or 0)
        fraction = failing / rows if rows else 0.0
        value = 100.0 * fraction if rule.unit == "percent" else float(failing)
    elif rule.measure == "rows":
        value = float(rows)
    else:
        assert rule.query is not None
        sql = rule.query.replace("{object}", relation).replace("${object}", relation)
        if rule.column is not None:
            sql = sql.replace("{property}", quote_identifier(rule.column))
        raw = query.one(sql)[0]
        value = float(raw) if raw is not None else 0.0
    passed = rule.passes(value)
    samples: list[dict[str, Any]] = []
    if failing and rule.row_level:
        samples = _samples(rule, query, relation, plan, duplicated_keys)
    return RuleResult(
        rule=rule.id,
        column=rule.column,
        policy=rule.policy,
        passed=passed,
        failing=failing,
        fraction=fraction,
        threshold=rule.threshold(),
        value=value,
        samples=samples,
        message=rule.reason,
    )


def _samples(
    rule: Rule,
    query: _Query,
    relation: str,
    plan: RulePlan,
    duplicated_keys: list[Any] | None = None,
) -> list[dict[str, Any]]:
    params: list[Any] = []
    if rule.row_check is not None:
        where = f"NOT coalesce(({rule.row_check}), FALSE)"
    else:
        assert rule.unique_over is not None
        cols = [quote_identifier(c) for c in rule.unique_over]
        if len(cols) == 1:  # the keys found while counting: no second pass
            where = f"list_contains(?, {cols[0]})"
            params = [duplicated_keys or []]
        else:
            listed = ", ".join(cols)
            where = (
                f"({listed}) IN (SELECT {listed} FROM {relation} "
                f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in cols)} "
                f"GROUP BY ALL HAVING count(*) > 1)"
            )
    rows = query.rows(f"SELECT * FROM {relation} WHERE {where} LIMIT {SAMPLE_ROWS}", params)
    return [
        {k: (MASK if k in plan.pii and v is not None else _jsonable(v)) for k, v in row.items()}
        for row in rows
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _finding(source: str, rule: Rule, result: RuleResult) -> Finding:
    if result.failing is not None and rule.measure == "failing":
        pct = 100.0 * (result.fraction or 0.0)
        what = f"{result.failing} row(s) ({pct:.2f}%) fail: {rule.reason}"
    elif rule.measure == "rows":
        what = f"row count is {int(result.value or 0)}"
    else:
        what = f"{rule.reason}: query returned {result.value:g}"
    message = f"{what} (pass when {result.threshold})"
    if rule.policy == "quarantine":
        fix = f"failing rows are set aside with their reason; correct them upstream in `{source}`"
    elif rule.policy == "block":
        fix = (
            f"fix the data in `{source}` upstream, or change rule `{rule.id}` in the contract if "
            "it is wrong"
        )
    else:
        fix = f"review `{source}`: rule `{rule.id}` is a warning and does not stop the pipeline"
    return Finding(source, rule.id, rule.policy, message, fix=fix, failing=result.failing)


def _age(now: datetime, latest: Any) -> timedelta | None:
    if latest is None:
        return None
    if isinstance(latest, datetime):
        moment = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    elif isinstance(latest, date):
        moment = datetime(latest.year, latest.month, latest.day, tzinfo=UTC)
    else:
        return None
    reference = now if now.tzinfo else now.replace(tzinfo=UTC)
    return max(reference - moment, timedelta(0))
