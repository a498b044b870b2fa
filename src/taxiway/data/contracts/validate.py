"""Validate a source against its contract: set-based SQL in DuckDB, never a loop per row.

One aggregate pass counts the failing rows of every rule; only failing rules are sampled, and
rows failing a `quarantine` rule are written once to ``<dir>/<run id>.parquet`` with a
``_reason`` column. Anything DuckDB can scan works: a registered source view, an Arrow table,
a pandas or polars frame. The same SQL runs on Spark when ``validate`` is given a Spark engine
(:mod:`taxiway.engines.spark`; ``taxiway check --engine spark``).

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from taxiway.data.contracts.measures import MASK, SourceQuery, measure
from taxiway.data.contracts.measures import SAMPLE_ROWS as SAMPLE_ROWS
from taxiway.data.contracts.measures import samples as _samples
from taxiway.data.contracts.model import Contract
from taxiway.data.contracts.quarantine import set_aside
from taxiway.data.contracts.report import RuleResult, ValidationReport
from taxiway.data.contracts.rules import FreshnessRule, Rule, RulePlan, compile_rules
from taxiway.data.findings import Finding
from taxiway.engines.duckdb import connect, quote_identifier
from taxiway.engines.sql import SqlEngine, as_engine
from taxiway.spec.durations import format_duration

__all__ = ["MASK", "new_run_id", "validate", "validate_frame"]

# The names this module had before the SQL moved to measures.py and quarantine.py (issue 14).
_Query = SourceQuery


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
        con.execute(f"CREATE TEMP VIEW {quote_identifier(source)} AS SELECT * FROM __tw_frame")  # nosec B608
        return validate(
            con, source, contract, source=source, quarantine_dir=quarantine_dir, as_of=as_of
        )
    finally:
        con.close()


def validate(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    view: str,
    contract: Contract,
    *,
    source: str,
    quarantine_dir: Path | None = None,
    run_id: str | None = None,
    as_of: datetime | None = None,
    order_by: str | None = None,
) -> ValidationReport:
    """Check the rows of ``view`` (scannable in ``con``, a DuckDB connection or an engine)
    against ``contract``.

    ``order_by`` (the source's timestamp) decides which of several duplicated rows is kept:
    the earliest; the others are the failing ones.
    """
    engine = as_engine(con)
    query = SourceQuery(engine, source)
    relation = quote_identifier(view)
    columns = engine.columns(view)
    plan = compile_rules(contract, columns, source=source)
    findings: list[Finding] = [*plan.drift, *plan.notes]
    measured = measure(query, relation, plan)
    rows = measured.rows
    results: list[RuleResult] = []
    for index, (rule, failing_value) in enumerate(
        zip(plan.rules, measured.failing_counts, strict=True)
    ):
        results.append(
            _evaluate(
                rule, failing_value, rows, query, relation, plan, measured.duplicated.get(index)
            )
        )
    for result, rule in zip(results, plan.rules, strict=True):
        # a quarantine rule sets its failing rows aside even within its threshold: say so
        if not result.passed or (rule.policy == "quarantine" and result.failing):
            findings.append(_finding(source, rule, result))

    now = as_of or datetime.now(UTC)
    for fresh, result in _freshness(plan, measured.newest, now):
        results.append(result)
        if not result.passed:
            findings.append(_stale_finding(source, fresh, result))

    report = ValidationReport(source=source, rows=rows, results=results, findings=findings)
    set_aside(
        query,
        view,
        list(columns),
        plan,
        report,
        order_by=order_by,
        quarantine_dir=quarantine_dir,
        run_id=run_id or new_run_id(now),
    )
    return report


def _freshness(
    plan: RulePlan, newest: tuple[Any, ...], now: datetime
) -> list[tuple[FreshnessRule, RuleResult]]:
    """One result per freshness rule: the age of the newest value against the SLA."""
    results: list[tuple[FreshnessRule, RuleResult]] = []
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
        results.append((fresh, result))
    return results


def _stale_finding(source: str, fresh: FreshnessRule, result: RuleResult) -> Finding:
    return Finding(
        source,
        fresh.id,
        fresh.policy,
        f"stale: {result.message}, the SLA allows {format_duration(fresh.max_age)}",
        fix=f"check the pipeline that loads `{source}`; its last event is older than "
        "the contract's latency SLA",
    )


def _evaluate(
    rule: Rule,
    failing_value: Any,
    rows: int,
    query: SourceQuery,
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
        assert rule.query is not None  # nosec B101
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
