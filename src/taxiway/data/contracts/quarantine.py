"""The clean view of a validated source, and its quarantined rows written with their reason."""

from __future__ import annotations

from pathlib import Path

from taxiway.data.contracts.measures import SourceQuery
from taxiway.data.contracts.report import RuleResult, ValidationReport
from taxiway.data.contracts.rules import Rule, RulePlan
from taxiway.engines.duckdb import quote_identifier, quote_literal

__all__ = ["set_aside"]


def set_aside(
    query: SourceQuery,
    view: str,
    columns: list[str],
    plan: RulePlan,
    report: ValidationReport,
    *,
    order_by: str | None,
    quarantine_dir: Path | None,
    run_id: str,
) -> None:
    """Create ``<view>__clean`` without the rows failing a quarantine rule; write those rows to
    ``<quarantine_dir>/<run_id>.parquet`` with a ``_reason`` column, and record both in
    ``report``. The clean view is a view on either engine: computed by what reads it."""
    engine = query.engine
    relation = quote_identifier(view)
    results: list[RuleResult] = report.results
    to_quarantine = [
        (rule, result)
        for rule, result in zip(plan.rules, results, strict=False)
        if rule.policy == "quarantine" and rule.row_level and (result.failing or 0) > 0
    ]
    report.clean_view = f"{view}__clean"
    if not to_quarantine:
        engine.create_view(report.clean_view, f"SELECT * FROM {relation}")  # nosec B608
    else:
        failing_rules = [rule for rule, _ in to_quarantine]
        base = _with_row_numbers(relation, failing_rules, order_by, columns)
        failing = " OR ".join(_fails(rule, i) for i, rule in enumerate(failing_rules))
        numbers = ", ".join(f'"__tw_rn{i}"' for i in range(len(failing_rules)))
        engine.create_view(
            report.clean_view,
            f"SELECT * EXCLUDE ({numbers}) FROM ({base}) WHERE NOT ({failing})",  # nosec B608
        )
        if quarantine_dir is not None:
            quarantine_dir.mkdir(parents=True, exist_ok=True)
            path = quarantine_dir / f"{run_id}.parquet"
            reasons = ", ".join(
                f"CASE WHEN {_fails(rule, i)} THEN {quote_literal(rule.id + ': ' + rule.reason)} END"
                for i, rule in enumerate(failing_rules)
            )
            extra = ", ".join(f'"__tw_rn{i}"' for i in range(len(failing_rules)))
            select = (
                f"SELECT * EXCLUDE ({extra}), concat_ws('; ', {reasons}) AS _reason "  # nosec B608
                f"FROM ({base}) WHERE {failing}"
            )
            report.quarantine_path = path
            report.quarantined_rows = engine.write_parquet(select, path)


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
    return f"SELECT *, {', '.join(numbers)} FROM {relation}"  # nosec B608
