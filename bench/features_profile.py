"""``bench/features.py --profile``: taxiway's latest-view SQL timed against rewrites of the same
join, on taxiway's own staged source and spine, each checked against taxiway's rows.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from features_checks import quoted
from features_data import FEATURES, TTL
from features_workers import taxiway_spec
from toolkit import wait_idle


def latest_variants(source_view: str) -> dict[str, str]:
    """Other ways to compute the latest view over taxiway's own staged source and spine
    (``__spine``: ``__sid``, ``entity_id``, ``__t``), each returning ``__sid`` + values."""
    cols = ", ".join(FEATURES)
    fresh = "e.__ts >= s.__t - INTERVAL 7 DAY"
    values = ", ".join(f"CASE WHEN {fresh} THEN e.{c} END AS v__{c}" for c in FEATURES)
    src = quoted(source_view)
    return {
        "struct-key ASOF, no dedup pass": f"""
            SELECT s.__sid, {values}
            FROM (SELECT *, {{'t': __t, 'known': TRUE, 'c': 'infinity'::TIMESTAMP}} AS __k
                  FROM __spine) AS s
            ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols},
                       {{'t': event_timestamp, 'known': created IS NOT NULL, 'c': created}} AS __k
                FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__k >= e.__k""",
        "struct-key ASOF + value hash as the last tie-break": f"""
            SELECT s.__sid, {values}
            FROM (SELECT *, {{'t': __t, 'known': TRUE, 'c': 'infinity'::TIMESTAMP,
                              'h': 18446744073709551615::UBIGINT}} AS __k
                  FROM __spine) AS s
            ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols},
                       {{'t': event_timestamp, 'known': created IS NOT NULL, 'c': created,
                         'h': hash({cols})}} AS __k
                FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__k >= e.__k""",
        "range join within the ttl, bucketed by ttl, arg_max over a sort key": f"""
            WITH s AS (
                SELECT __sid, entity_id, __t, unnest([b, b + 1]) AS __b
                FROM (SELECT __sid, entity_id, __t,
                             epoch_us(__t - INTERVAL 7 DAY) // {TTL // timedelta(microseconds=1)}
                             AS b FROM __spine)),
            e AS (
                SELECT entity_id, event_timestamp AS __ts, created, {cols},
                       epoch_us(event_timestamp) // {TTL // timedelta(microseconds=1)} AS __b
                FROM {src} WHERE event_timestamp IS NOT NULL AND entity_id IS NOT NULL),
            m AS (
                SELECT s.__sid,
                       arg_max({{{", ".join(f"'{c}': e.{c}" for c in FEATURES)}}},
                               create_sort_key(e.__ts, 'ASC NULLS FIRST', e.created,
                                   'ASC NULLS FIRST',
                                   {", ".join(f"e.{c}, 'DESC NULLS FIRST'" for c in FEATURES)}))
                           AS __r
                FROM s JOIN e ON s.entity_id = e.entity_id AND s.__b = e.__b
                 AND e.__ts >= s.__t - INTERVAL 7 DAY AND e.__ts <= s.__t
                GROUP BY s.__sid)
            SELECT __sid, {", ".join(f"m.__r.{c} AS v__{c}" for c in FEATURES)}
            FROM __spine LEFT JOIN m USING (__sid)""",
        "range join within the ttl": f"""
            SELECT s.__sid, {", ".join(f"e.{c} AS v__{c}" for c in FEATURES)}
            FROM __spine AS s LEFT JOIN (
                SELECT s.__sid, e.*
                FROM __spine AS s JOIN {src} AS e
                  ON s.entity_id = e.entity_id AND e.event_timestamp <= s.__t
                 AND e.event_timestamp >= s.__t - INTERVAL 7 DAY
                QUALIFY row_number() OVER (PARTITION BY s.__sid
                    ORDER BY e.event_timestamp DESC, e.created DESC NULLS LAST, {cols}) = 1
            ) AS e USING (__sid)""",
        "plain ASOF, ties unresolved (lower bound)": f"""
            SELECT s.__sid, {values}
            FROM __spine AS s ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols} FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__t >= e.__ts""",
    }


def work_profile(source: Path, spine: Path, out: Path) -> dict[str, Any]:
    """Time taxiway's latest-view SQL against rewrites, on taxiway's own staged inputs."""
    from taxiway.data.stage import stage_sources
    from taxiway.engines.duckdb import connect
    from taxiway.features.pit import compute_view, latest_plan
    from taxiway.features.spine import build_spine
    from taxiway.spec import Project, load_spec_text

    folder = out.parent / f"{out.stem}.profile"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec_file = folder / "taxiway.yaml"
    text = taxiway_spec(source, spine, "latest")
    spec_file.write_text(text)
    project = Project(load_spec_text(text, str(spec_file), base_dir=folder), spec_file, folder)
    con = connect(temp_directory=folder / "tmp")
    staged = stage_sources(project, con, ["values", "spine"], run_id="profile")
    build_spine(con, project.spec, staged["spine"].view, "__spine")
    view = staged["values"].view
    timings: dict[str, float] = {}

    def timed(name: str, action: Any) -> None:
        runs = []
        for _ in range(2):
            wait_idle(30)
            began = time.perf_counter()
            action()
            runs.append(time.perf_counter() - began)
        timings[name] = min(runs)

    timed(
        "taxiway: pit.compute_view",
        lambda: compute_view(con, project.spec, "v", view, "__spine", "__f_taxiway"),
    )
    timed(
        "taxiway: pit.latest_plan (the guard alone)",
        lambda: latest_plan(con, project.spec, "v", view, "__spine"),
    )
    for plan in ("asof", "bucketed"):
        timed(
            f"taxiway: pit.compute_view, plan={plan}",
            lambda plan=plan: compute_view(
                con, project.spec, "v", view, "__spine", f"__f_{plan}", plan=plan
            ),
        )
    cols = ", ".join(FEATURES)
    timed(
        "taxiway's dedup pass alone",
        lambda: con.execute(
            f"SELECT count(*) FROM (SELECT entity_id, {cols} FROM {quoted(view)} QUALIFY "
            "row_number() OVER (PARTITION BY entity_id, event_timestamp "
            f"ORDER BY created DESC NULLS LAST, {cols}) = 1)"
        ).fetchall(),
    )
    differs: dict[str, int] = {}
    for index, (name, sql) in enumerate(latest_variants(view).items()):
        target = f"__variant{index}"
        timed(
            name,
            lambda sql=sql, target=target: con.execute(
                f"CREATE OR REPLACE TEMP TABLE {target} AS {sql}"
            ),
        )
        pairs = " OR ".join(f"a.v__{c} IS DISTINCT FROM b.v__{c}" for c in FEATURES)
        differs[name] = int(
            con.execute(
                f"SELECT count(*) FROM __f_taxiway AS a FULL JOIN {target} AS b USING (__sid) "
                f"WHERE {pairs}"
            ).fetchone()[0]
        )
    con.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": 0.0, "timings": timings, "differs": differs, "columns": {}}
