"""A training set reads only the source rows its spine can reach.

A retrain's window is a year of a source that holds several: the aggregate views, the latest
views with a ttl and the label compute over the rows from the earliest spine time less the
longest window (or ttl) to the latest spine time (plus the label's horizon), and never read
the rest. The source here is a view that fails when a row outside that reach is read, so a
plan that reads all history fails; the values are those worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from taxiway.errors import FeatureError
from taxiway.features.labels import compute_label
from taxiway.features.pit import compute_view
from taxiway.spec import load_spec_text

SPEC = """
name: reach
sources:
  ev: {kind: file, path: ev.parquet, timestamp: ts}
entities: {e: k}
features:
  recent: {source: ev, entity: e, aggregate: {total: sum(v)}, windows: [30d]}
  last: {source: ev, entity: e, latest: [v], ttl: 30d}
spine: {every: 1d, start: 2025-01-15, end: 2025-02-01, source: ev}
label: {name: later, kind: sum, expr: v, source: ev, entity: e, horizon: 30d}
"""

ROWS = [
    ("2023-01-05", 100.0),  # two years before the spine: no window reaches it
    ("2024-12-20", 2.0),
    ("2025-01-10", 3.0),
    ("2025-03-01", 4.0),
    ("2026-06-01", 500.0),  # after every label horizon: nothing reaches it
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    values = ", ".join(f"(1, TIMESTAMP '{ts}', {v})" for ts, v in ROWS)
    con.execute(f"CREATE TABLE raw AS SELECT * FROM (VALUES {values}) AS r(k, ts, v)")
    con.execute(
        "CREATE VIEW ev AS SELECT k, ts, CASE WHEN ts < TIMESTAMP '2024-12-01' OR "
        "ts > TIMESTAMP '2025-06-01' THEN error('a row no spine row reaches was read') "
        "ELSE v END AS v FROM raw"
    )
    con.execute(
        "CREATE TABLE spine AS SELECT * FROM (VALUES (1, 1, TIMESTAMP '2025-01-15'), "
        "(2, 1, TIMESTAMP '2025-02-01')) AS s(__sid, k, __t)"
    )
    return con


def test_views_and_label_never_read_rows_out_of_the_spines_reach(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    spec = load_spec_text(SPEC, str(tmp_path / "taxiway.yaml"), base_dir=tmp_path)
    compute_view(con, spec, "recent", "ev", "spine", "f_recent")
    compute_view(con, spec, "last", "ev", "spine", "f_last")
    compute_label(con, spec, "ev", "spine", "label")
    rows = con.execute(
        "SELECT s.__t::DATE::VARCHAR, r.recent__total_30d, l.last__v, b.__label "
        "FROM spine s JOIN f_recent r USING (__sid) JOIN f_last l USING (__sid) "
        "JOIN label b USING (__sid) ORDER BY s.__sid"
    ).fetchall()
    assert rows == [
        # (12-16, 01-15]: 2.0 + 3.0; the newest row within 30d: 3.0; (01-15, 02-14]: none
        ("2025-01-15", 5.0, 3.0, 0.0),
        # (01-02, 02-01]: 3.0; newest: 3.0; (02-01, 03-03]: 4.0
        ("2025-02-01", 3.0, 3.0, 4.0),
    ]


def test_a_view_that_reaches_all_history_reads_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A latest view without a ttl reads back to the first row: the guard view fails there
    (so the test above would fail too if a bound were dropped)."""
    text = SPEC.replace("latest: [v], ttl: 30d", "latest: [v]")
    spec = load_spec_text(text, str(tmp_path / "taxiway.yaml"), base_dir=tmp_path)
    with pytest.raises(FeatureError, match="a row no spine row reaches was read"):
        compute_view(con, spec, "last", "ev", "spine", "f_last")
