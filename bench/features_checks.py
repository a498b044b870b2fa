"""Whether a training set is right: a tool's rows against the floor's, row by row on
``spine_id``, wrong rows traced to their cause, and the floor and the window aggregates against
brute-force joins on a sample of spine rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features_data import FEATURES, WINDOWS


def check(tool_out: dict[str, Any], floor_out: dict[str, Any], spine: Path) -> dict[str, int]:
    """Row-by-row comparison of a tool's output with the floor's, joined on ``spine_id``."""
    import duckdb

    con = duckdb.connect()
    spine_rows = con.execute(f"SELECT count(*) FROM read_parquet('{spine}')").fetchone()[0]
    mine = tool_out["columns"]
    pairs = [(f"t.{quoted(mine[c])}", f"f.{quoted(c)}") for c in FEATURES]
    differs = " OR ".join(f"{a} IS DISTINCT FROM {b}" for a, b in pairs)
    null_extra = " OR ".join(f"({a} IS NULL AND {b} IS NOT NULL)" for a, b in pairs)
    value_extra = " OR ".join(f"({a} IS NOT NULL AND {b} IS NULL)" for a, b in pairs)
    other = " OR ".join(f"({a} <> {b})" for a, b in pairs)
    tool_file, floor_file = tool_out["out"], floor_out["out"]
    row = con.execute(
        f"""
        WITH t AS (SELECT * FROM read_parquet('{tool_file}')),
             f AS (SELECT * FROM read_parquet('{floor_file}')),
             counted AS (SELECT spine_id, count(*) AS n FROM t GROUP BY spine_id)
        SELECT
            (SELECT count(*) FROM t),
            (SELECT count(*) FROM f WHERE spine_id NOT IN (SELECT spine_id FROM t)),
            (SELECT coalesce(sum(n - 1), 0) FROM counted WHERE n > 1),
            (SELECT count(*) FROM t WHERE spine_id NOT IN (SELECT spine_id FROM f)),
            count(*) FILTER (WHERE {differs}),
            count(*) FILTER (WHERE {null_extra}),
            count(*) FILTER (WHERE {value_extra}),
            count(*) FILTER (WHERE {other})
        FROM t JOIN f USING (spine_id)
        """
    ).fetchone()
    con.close()
    keys = (
        "rows",
        "missing",
        "duplicated",
        "unknown",
        "wrong",
        "null_not_value",
        "value_not_null",
        "other_value",
    )
    result = dict(zip(keys, (int(v) for v in row), strict=True))
    result["spine_rows"] = int(spine_rows)
    result["bad"] = result["missing"] + result["duplicated"] + result["unknown"] + result["wrong"]
    return result


PLANTED = {0: "random t", 1: "t on a source timestamp", 2: "t = ts + ttl", 3: "t = ts + ttl + 1µs"}


def diagnose(
    tool_out: dict[str, Any], floor_out: dict[str, Any], source: Path, spine: Path
) -> list[str]:
    """Why rows differ: each wrong ``f0`` traced back to the source row it came from."""
    import duckdb

    con = duckdb.connect()
    f0 = quoted(tool_out["columns"]["f0"])
    wrong = con.execute(
        f"""
        WITH t AS (SELECT spine_id, {f0} AS f0 FROM read_parquet('{tool_out["out"]}')),
             f AS (SELECT spine_id, f0 FROM read_parquet('{floor_out["out"]}')),
             s AS (SELECT spine_id, entity_id, event_timestamp AS t, planted
                   FROM read_parquet('{spine}')),
             w AS (SELECT s.*, t.f0 AS tf0, f.f0 AS ff0 FROM s JOIN t USING (spine_id)
                   JOIN f USING (spine_id) WHERE t.f0 IS DISTINCT FROM f.f0),
             src AS (SELECT entity_id, f0, event_timestamp AS ts FROM read_parquet('{source}')
                     WHERE entity_id IN (SELECT entity_id FROM w))
        SELECT w.planted,
          CASE WHEN w.tf0 IS NULL THEN 'null instead of a value'
               WHEN tr.ts IS NULL THEN 'a value from no source row'
               WHEN tr.ts > w.t THEN 'a row from after t (leak)'
               WHEN tr.ts < w.t - INTERVAL 7 DAY THEN 'a row older than the ttl'
               WHEN fr.ts IS NULL THEN 'a value where no row is fresh'
               WHEN tr.ts = fr.ts THEN 'the losing row of a tie (older created)'
               WHEN tr.ts < fr.ts THEN 'an older row than the latest'
               ELSE 'other' END AS cause,
          count(*)
        FROM w LEFT JOIN src AS tr ON tr.entity_id = w.entity_id AND tr.f0 = w.tf0
               LEFT JOIN src AS fr ON fr.entity_id = w.entity_id AND fr.f0 = w.ff0
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    missing = con.execute(
        f"""
        SELECT s.planted, f.f0 IS NULL, count(*)
        FROM read_parquet('{floor_out["out"]}') AS f JOIN read_parquet('{spine}') AS s USING (spine_id)
        WHERE spine_id NOT IN (SELECT spine_id FROM read_parquet('{tool_out["out"]}'))
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    con.close()
    lines = [f"wrong f0, {PLANTED[k]}: {cause}: {n:,}" for k, cause, n in wrong]
    lines += [
        f"missing row, {PLANTED[k]}, floor value {'null' if null else 'present'}: {n:,}"
        for k, null, n in missing
    ]
    return lines


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_floor(
    floor_out: dict[str, Any], source: Path, spine: Path, sample: int
) -> dict[str, Any]:
    """The floor against a brute-force join (no ASOF, no window dedup) on a sample of rows."""
    import duckdb

    con = duckdb.connect()
    features = ", ".join(FEATURES)
    pairs = " OR ".join(f"r.{c} IS DISTINCT FROM f.{c}" for c in FEATURES)
    row = con.execute(
        f"""
        WITH s AS (SELECT * FROM read_parquet('{spine}') USING SAMPLE {sample} ROWS (reservoir, 7)),
             cand AS (
                SELECT s.spine_id, e.*, row_number() OVER (
                    PARTITION BY s.spine_id ORDER BY e.event_timestamp DESC, e.created DESC) AS rk
                FROM s JOIN read_parquet('{source}') AS e
                  ON e.entity_id = s.entity_id AND e.event_timestamp <= s.event_timestamp
                 AND e.event_timestamp >= s.event_timestamp - INTERVAL 7 DAY
             ),
             r AS (
                SELECT s.spine_id, {", ".join(f"c.{c}" for c in FEATURES)}
                FROM s LEFT JOIN (SELECT spine_id, {features} FROM cand WHERE rk = 1) AS c
                  USING (spine_id)
             )
        SELECT count(*), count(*) FILTER (WHERE {pairs}), count(*) FILTER (WHERE r.f0 IS NULL)
        FROM r JOIN read_parquet('{floor_out["out"]}') AS f USING (spine_id)
        """
    ).fetchone()
    con.close()
    return {"sampled": int(row[0]), "wrong": int(row[1]), "null": int(row[2])}


def check_windows(out: Path, source: Path, spine: Path, sample: int) -> dict[str, int]:
    """Window aggregates against a brute-force range join on a sample of spine rows."""
    import duckdb

    con = duckdb.connect()
    exprs, compare = [], []
    for window in WINDOWS:
        days = int(window[:-1])
        inside = (
            f"e.event_timestamp <= s.event_timestamp AND "
            f"e.event_timestamp > s.event_timestamp - INTERVAL {days} DAY"
        )
        exprs += [
            f"count(e.entity_id) FILTER (WHERE {inside}) AS n_{window}",
            f"coalesce(sum(e.f0) FILTER (WHERE {inside}), 0) AS total_{window}",
            f"avg(e.f0) FILTER (WHERE {inside}) AS mean_{window}",
        ]
        compare += [
            f"r.n_{window} <> t.v__n_{window}",
            f"abs(r.total_{window} - t.v__total_{window}) > 1e-9 * (1 + abs(r.total_{window}))",
            f"(r.mean_{window} IS NULL) <> (t.v__mean_{window} IS NULL)",
            f"abs(r.mean_{window} - t.v__mean_{window}) > 1e-9 * (1 + abs(r.mean_{window}))",
        ]
    row = con.execute(
        f"""
        WITH s AS (SELECT * FROM read_parquet('{spine}') USING SAMPLE {sample} ROWS (reservoir, 7)),
             r AS (
                SELECT s.spine_id, {", ".join(exprs)}
                FROM s LEFT JOIN read_parquet('{source}') AS e
                  ON e.entity_id = s.entity_id
                 AND e.event_timestamp > s.event_timestamp - INTERVAL 30 DAY
                 AND e.event_timestamp <= s.event_timestamp
                GROUP BY s.spine_id
             )
        SELECT count(*), count(*) FILTER (WHERE {" OR ".join(f"coalesce({c}, FALSE)" for c in compare)})
        FROM r JOIN read_parquet('{out}') AS t USING (spine_id)
        """
    ).fetchone()
    con.close()
    return {"sampled": int(row[0]), "wrong": int(row[1])}
