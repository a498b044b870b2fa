"""Where taxiway's validation time goes: each SQL statement it runs, timed, beside rewrites of
the same measures and the same rules in plain pandas (``bench/contracts.py --profile``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts_data import EMAIL_PATTERN, STATUSES
from contracts_tools import CONTRACT
from toolkit import markdown_table


class _Fetched:
    def __init__(self, description: Any, rows: list[tuple[Any, ...]]) -> None:
        self.description = description
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class _TimedConnection:
    """A DuckDB connection that runs each statement to completion and logs its time."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.log: list[tuple[str, float]] = []

    def _timed(self, sql: str, run: Callable[[], Any]) -> _Fetched:
        started = time.perf_counter()
        cursor = run()
        description = cursor.description
        rows = cursor.fetchall() if description else []
        self.log.append((sql, time.perf_counter() - started))
        return _Fetched(description, rows)

    def execute(self, sql: str, *args: Any) -> _Fetched:
        return self._timed(sql, lambda: self.con.execute(sql, *args))

    def sql(self, sql: str) -> _Fetched:
        return self._timed(sql, lambda: self.con.execute(sql))


def _step(sql: str) -> str:
    if sql.startswith("DESCRIBE"):
        return "describe columns"
    if sql.startswith("SELECT count(*),"):
        return "the single aggregate query"
    if "HAVING" in sql:
        return "sample of duplicates (GROUP BY … HAVING)"
    if sql.startswith("SELECT *") and "LIMIT" in sql:
        return "samples of the 4 row checks (LIMIT 5)"
    if sql.startswith("CREATE OR REPLACE TEMP VIEW"):
        return "clean view (DDL only)"
    return "other SQL"


def _one_group_by(con: Any, row_checks: list[str]) -> None:
    """A candidate plan: uniqueness and its sample from one hash aggregation, not two."""
    con.execute(f"SELECT count(*), {', '.join(row_checks)} FROM orders").fetchall()
    _, keys = con.execute(
        'SELECT sum(n - 1), list(k)[1:5] FROM (SELECT "order_id" AS k, count(*) AS n '
        'FROM orders WHERE "order_id" IS NOT NULL GROUP BY ALL HAVING count(*) > 1)'
    ).fetchone()
    con.execute(
        'SELECT * FROM orders WHERE "order_id" IN (SELECT unnest(?)) LIMIT 5', [keys or []]
    ).fetchall()


def _query(con: Any, sql: str) -> Callable[[], object]:
    return lambda: con.execute(sql).fetchall()


@contextmanager
def _source(kind: str, frame: Any, path: Path, threads: int | None = None) -> Iterator[Any]:
    from taxiway.engines.duckdb import connect, quote_literal

    con = connect(threads=threads)
    try:
        if kind == "frame":
            con.register("__tw_frame", frame)
            con.execute("CREATE TEMP VIEW orders AS SELECT * FROM __tw_frame")
        else:
            con.execute(
                f"CREATE VIEW orders AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        yield con
    finally:
        con.close()


def profile(path: Path, repeat: int) -> None:
    """Where taxiway's validation time goes, statement by statement, beside raw pandas."""
    import importlib

    import pandas as pd

    from taxiway.data.contracts import compile_rules, load_contract_text

    internals = importlib.import_module("taxiway.data.contracts.validate")
    # each rule's failing-rows measure, as validate's one aggregate pass writes it
    failing_sql = importlib.import_module("taxiway.data.contracts.measures")._failing_sql
    contract = load_contract_text(CONTRACT)
    frame = pd.read_parquet(path)

    def best(run: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    columns: dict[str, dict[str, float]] = {}
    for kind in ("frame", "parquet"):
        steps: dict[str, float] = {}
        runs: list[tuple[float, list[tuple[str, float]]]] = []
        for _ in range(repeat):
            with _source(kind, frame, path) as con:
                timed = _TimedConnection(con)
                started = time.perf_counter()
                internals.validate(timed, "orders", contract, source="orders")
                runs.append((time.perf_counter() - started, timed.log))
        total, log = min(runs, key=lambda run: run[0])
        steps["validate(), total"] = total
        for sql, seconds in log:
            steps[_step(sql)] = steps.get(_step(sql), 0.0) + seconds
        steps["python: compile rules, build report"] = total - sum(s for _, s in log)

        with _source(kind, frame, path) as con:
            described = con.execute("DESCRIBE SELECT * FROM orders").fetchall()
            plan = compile_rules(contract, {n: str(t) for n, t, *_ in described}, source="orders")
            measures = {r.id: failing_sql(r) for r in plan.rules}
            unique = measures.pop("order_id.unique")

            everything = ", ".join(["count(*)", unique, *measures.values()])
            steps["aggregate: all 5 rules (as run)"] = best(
                _query(con, f"SELECT {everything} FROM orders")
            )
            steps["aggregate: the 4 row checks only"] = best(
                _query(con, f"SELECT count(*), {', '.join(measures.values())} FROM orders")
            )
            steps["aggregate: uniqueness only, as written"] = best(
                _query(con, f"SELECT {unique} FROM orders")
            )
            steps["aggregate: uniqueness as count(x) - count(DISTINCT x)"] = best(
                _query(con, 'SELECT count("order_id") - count(DISTINCT "order_id") FROM orders')
            )
            for rule, sql in measures.items():
                steps[f"aggregate: {rule} only"] = best(_query(con, f"SELECT {sql} FROM orders"))
            steps["what-if: row checks + ONE GROUP BY (count and sample keys) + IN sample"] = best(
                functools.partial(_one_group_by, con, list(measures.values()))
            )
        with _source(kind, frame, path, threads=1) as con:
            steps["aggregate: all 5 rules, 1 thread"] = best(
                _query(con, f"SELECT {everything} FROM orders")
            )
        columns[kind] = steps

    print(f"\n### Where taxiway's time goes (best of {repeat}, seconds)\n")
    names = list(dict.fromkeys(name for steps in columns.values() for name in steps))
    print(
        markdown_table(
            ["step", "pandas frame", "Parquet file"],
            [
                [name, *(f"{columns[k][name]:.3f}" if name in columns[k] else "—" for k in columns)]
                for name in names
            ],
        )
    )

    email = frame["email"]
    pattern = EMAIL_PATTERN
    raw = {
        "order_id.isna().sum()": lambda: frame["order_id"].isna().sum(),
        "order_id.duplicated().sum()": lambda: frame["order_id"].dropna().duplicated().sum(),
        "(amount < 0).sum()": lambda: (frame["amount"] < 0).sum(),
        "(~status.isin(...)).sum()": lambda: (~frame["status"].isin(list(STATUSES))).sum(),
        "(~email.str.match(...)).sum()": lambda: (~email.str.match(pattern)).sum(),
    }
    print(f"\n### The same rules in plain pandas, one at a time (best of {repeat})\n")
    print(
        markdown_table(
            ["pandas expression", "seconds"], [[k, f"{best(v):.3f}"] for k, v in raw.items()]
        )
    )
