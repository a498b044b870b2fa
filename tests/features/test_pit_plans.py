"""The bucketed plan's pair count and guard, and the two latest-view plans agreeing.

pit.py joins a latest view by an ASOF join on keys and times (the default) or, when forced,
with a ``ttl``, by ttl-wide time buckets; ``latest_plan`` is the guard that counts candidate
pairs (spine rows x source rows of the key in the two buckets each reads) and would keep the
ASOF join when there are more than ``PAIRS_PER_ROW`` per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.features.pit import candidate_pairs, latest_plan
from taxiway.features.spine import build_spine
from taxiway.features.training_set import build_training_set
from taxiway.spec import Project, load_spec_text

EPOCH = datetime(1970, 1, 1)


def write_project(
    folder: Path,
    events: Sequence[tuple[int, datetime, float | None]],
    probes: Sequence[tuple[int, datetime]],
    ttl_ms: int,
    available_after_ms: int = 0,
) -> Project:
    pq.write_table(
        pa.table(
            {
                "k": pa.array([k for k, _, _ in events], pa.int64()),
                "ts": pa.array([t for _, t, _ in events], pa.timestamp("us")),
                "v": pa.array([v for _, _, v in events], pa.float64()),
            }
        ),
        folder / "events.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "pid": pa.array(range(len(probes)), pa.int64()),
                "k": pa.array([k for k, _ in probes], pa.int64()),
                "t": pa.array([t for _, t in probes], pa.timestamp("us")),
            }
        ),
        folder / "probes.parquet",
    )
    text = f"""
name: pit-plans
sources:
  ev: {{kind: file, path: events.parquet, timestamp: ts, available_after: {available_after_ms}ms}}
  probes: {{kind: file, path: probes.parquet, timestamp: t}}
entities: {{e: k}}
features:
  last: {{source: ev, entity: e, latest: [v], ttl: {ttl_ms}ms}}
spine: {{source: probes, entity: e}}
label: {{name: pid, kind: column, expr: pid}}
"""
    spec_path = folder / "taxiway.yaml"
    spec_path.write_text(text)
    return Project(
        load_spec_text(text, str(spec_path), base_dir=folder), spec_path, folder / ".state"
    )


def chosen_plan(folder: Path, project: Project) -> str:
    con = connect(temp_directory=folder / "tmp")
    try:
        staged = stage_sources(project, con, ["ev", "probes"], run_id="plans")
        build_spine(con, project.spec, staged["probes"].view, "__spine")
        return latest_plan(con, project.spec, "last", staged["ev"].view, "__spine")
    finally:
        con.close()


def counted_pairs(folder: Path, project: Project) -> tuple[int, int]:
    con = connect(temp_directory=folder / "tmp")
    try:
        staged = stage_sources(project, con, ["ev", "probes"], run_id="plans")
        build_spine(con, project.spec, staged["probes"].view, "__spine")
        return candidate_pairs(con, project.spec, "last", staged["ev"].view, "__spine")
    finally:
        con.close()


def test_the_guard_keeps_the_asof_join_for_a_heavy_key(tmp_path: Path) -> None:
    start = datetime(2025, 1, 1)
    # key 1: 400 rows and 400 spine rows inside one day, ttl 7 days: 160,000+ candidate pairs
    # for 800 rows; keys 2..401 have one row and one spine row each
    heavy = [(1, start + timedelta(minutes=i), float(i)) for i in range(400)]
    light = [(k, start, float(k)) for k in range(2, 402)]
    probes = [(1, start + timedelta(minutes=i, seconds=30)) for i in range(400)]
    project = write_project(tmp_path, heavy + light, probes, ttl_ms=7 * 86_400_000)
    assert chosen_plan(tmp_path, project) == "asof"


def test_the_guard_picks_buckets_when_each_key_has_few_rows_per_ttl(tmp_path: Path) -> None:
    start = datetime(2025, 1, 1)
    events = [(k, start + timedelta(days=d), float(d)) for k in range(200) for d in range(0, 60, 6)]
    probes = [(k, start + timedelta(days=d, hours=12)) for k in range(200) for d in range(0, 60, 7)]
    project = write_project(tmp_path, events, probes, ttl_ms=86_400_000)
    assert chosen_plan(tmp_path, project) == "bucketed"


# times a few ms-scale ttls around the epoch: buckets cross 1970, where DuckDB's `//` truncates
offsets = st.integers(-40, 40)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(
        st.tuples(st.integers(1, 2), offsets, st.one_of(st.none(), st.sampled_from([0.0, 1.0]))),
        min_size=1,
        max_size=25,
    ),
    probes=st.lists(st.tuples(st.integers(1, 2), offsets), min_size=1, max_size=20),
    ttl_ms=st.integers(1, 13),
    available_after_ms=st.integers(0, 4),
)
def test_both_plans_give_the_same_rows_on_any_bucket_grid(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[int, int, float | None]],
    probes: list[tuple[int, int]],
    ttl_ms: int,
    available_after_ms: int,
) -> None:
    ms = timedelta(milliseconds=1)
    rows = [(k, EPOCH + o * ms, v) for k, o, v in events]
    spine = [(k, EPOCH + o * ms) for k, o in probes]
    results: dict[str, list[Any]] = {}
    for plan in ("asof", "bucketed"):
        folder = tmp_path_factory.mktemp(plan)
        out = folder / "training.parquet"
        project = write_project(folder, rows, spine, ttl_ms, available_after_ms)
        build_training_set(project, out, latest_plan=plan)
        relation = duckdb.sql(f"SELECT pid, CAST(last__v AS VARCHAR) FROM '{out}' ORDER BY pid")
        assert relation is not None
        results[plan] = relation.fetchall()
    assert results["bucketed"] == results["asof"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(st.tuples(st.integers(1, 3), offsets), min_size=1, max_size=30),
    probes=st.lists(st.tuples(st.integers(1, 3), offsets), min_size=1, max_size=20),
    ttl_ms=st.integers(1, 13),
)
def test_the_guard_counts_exactly_the_pairs_the_bucketed_join_reads(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[int, int]],
    probes: list[tuple[int, int]],
    ttl_ms: int,
) -> None:
    # brute force: a spine row at t reads its key's rows in buckets floor(t / ttl) - 1 and
    # floor(t / ttl); Python's // floors, also before 1970
    ms = timedelta(milliseconds=1)
    expected = sum(
        1
        for pk, pt in probes
        for ek, et in events
        if pk == ek and et // ttl_ms in (pt // ttl_ms - 1, pt // ttl_ms)
    )
    folder = tmp_path_factory.mktemp("pairs")
    project = write_project(
        folder,
        [(k, EPOCH + o * ms, 1.0) for k, o in events],
        [(k, EPOCH + o * ms) for k, o in probes],
        ttl_ms,
    )
    assert counted_pairs(folder, project) == (len(events), expected)


@pytest.mark.parametrize("plan", ["asof", "bucketed"])
def test_rows_sharing_key_and_time_go_to_the_smallest_value(tmp_path: Path, plan: str) -> None:
    # the bucketed plan takes a spine row's one row at its (key, time) as is and decides
    # several only by the tie order: here the smallest value, nulls last
    start = datetime(2025, 1, 1)
    events = [(1, start, 2.0), (1, start, None), (1, start, 1.0), (2, start, 5.0)]
    probes = [(1, start + timedelta(seconds=1)), (2, start), (3, start)]
    project = write_project(tmp_path, events, probes, ttl_ms=86_400_000)
    out = tmp_path / "training.parquet"
    build_training_set(project, out, latest_plan="bucketed" if plan == "bucketed" else "asof")
    relation = duckdb.sql(f"SELECT pid, last__v FROM '{out}' ORDER BY pid")
    assert relation is not None
    assert relation.fetchall() == [(0, 1.0), (1, 5.0), (2, None)]
