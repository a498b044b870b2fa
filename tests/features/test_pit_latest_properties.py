"""Property: a latest view equals a brute-force scan of its definition, on the edges.

docs/features.md, "Latest views": for a spine row (k, t) take the known row of k
(``ts + available_after <= t``) with the greatest timestamp; ties go to the newest ``created``
(nulls last), then to the smallest values of the listed columns in the order they are listed
(nulls last; NaN above every number, as DuckDB orders it); every value is null when that row's
timestamp is strictly older than ``t - ttl`` (never, in a view without ``ttl``).

The events crowd a few whole hours, so most timestamps tie, ``created`` ties or is null, and
values tie or are null. The spine is planted exactly on the edges: at a timestamp, at the
moment a row becomes known and 1 µs before it, at ``ts + ttl`` (kept) and 1 µs after (null).
Both join plans (ASOF and ttl buckets, pit.py) are forced in turn.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.features.pit import LatestPlan
from taxiway.features.training_set import build_training_set
from taxiway.spec import Project, load_spec_text

BASE = datetime(2025, 1, 1)
US = timedelta(microseconds=1)

events = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.integers(1, 2),
            "hour": st.integers(0, 12),
            "created": st.one_of(st.none(), st.integers(0, 2)),
            "a": st.one_of(st.none(), st.sampled_from(["x", "y", "z"])),
            "b": st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 2.5, math.nan])),
        }
    ),
    min_size=1,
    max_size=30,
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    rows: list[dict[str, Any]] = draw(events)
    available_after = timedelta(hours=draw(st.sampled_from([0, 1, 2])))
    hours = draw(st.sampled_from([1, 3, 24, None]))  # None: a view without ttl
    ttl = timedelta(hours=hours or 3)  # without ttl, its edges are just more probe times
    edges = [
        timedelta(0),
        available_after,
        available_after - US,
        ttl,
        ttl + US,
        available_after + ttl,
        available_after + ttl + US,
    ]
    probes = draw(
        st.lists(
            st.tuples(
                st.integers(1, 3),  # k = 3 never occurs in the source
                st.sampled_from([r["hour"] for r in rows]),
                st.sampled_from(edges),
            ),
            min_size=1,
            max_size=25,
        )
    )
    return {
        "events": rows,
        "available_after": available_after,
        "ttl": ttl if hours else None,
        "with_created": draw(st.booleans()),
        "listed": draw(st.sampled_from([["a", "b"], ["b", "a"]])),
        "probes": [(k, BASE + timedelta(hours=h) + edge) for k, h, edge in probes],
    }


def write_project(folder: Path, s: dict[str, Any]) -> Project:
    columns: list[tuple[str, pa.DataType]] = [
        ("k", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("created", pa.int64()),
        ("a", pa.string()),
        ("b", pa.float64()),
    ]
    schema = pa.schema(columns)
    rows = [{**r, "ts": BASE + timedelta(hours=r["hour"])} for r in s["events"]]
    for r in rows:
        del r["hour"]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "events.parquet")
    probes = [{"pid": i, "k": k, "t": t} for i, (k, t) in enumerate(s["probes"])]
    probe_schema = pa.schema([("pid", pa.int64()), ("k", pa.int64()), ("t", pa.timestamp("us"))])
    pq.write_table(pa.Table.from_pylist(probes, schema=probe_schema), folder / "probes.parquet")
    created = ", created: created" if s["with_created"] else ""
    hours = s["available_after"] // timedelta(hours=1)
    ttl = f", ttl: {s['ttl'] // timedelta(hours=1)}h" if s["ttl"] else ""
    text = f"""
name: pit-latest
sources:
  ev: {{kind: file, path: events.parquet, timestamp: ts{created}, available_after: {hours}h}}
  probes: {{kind: file, path: probes.parquet, timestamp: t}}
entities: {{e: k}}
features:
  last: {{source: ev, entity: e, latest: [{", ".join(s["listed"])}]{ttl}}}
spine: {{source: probes, entity: e}}
label: {{name: pid, kind: column, expr: pid}}
"""
    spec_path = folder / "taxiway.yaml"
    spec_path.write_text(text)
    return Project(
        load_spec_text(text, str(spec_path), base_dir=folder), spec_path, folder / ".state"
    )


def order_key(value: Any) -> tuple[Any, ...]:
    """Ascending, nulls last, NaN above every number: DuckDB's order of a column."""
    if value is None:
        return (2, 0)
    if isinstance(value, float) and math.isnan(value):
        return (1, 0)
    return (0, value)


def brute_force(s: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rows = [{**r, "ts": BASE + timedelta(hours=r["hour"])} for r in s["events"]]
    out: dict[int, dict[str, Any]] = {}
    for pid, (k, t) in enumerate(s["probes"]):
        known = [r for r in rows if r["k"] == k and r["ts"] + s["available_after"] <= t]
        result: dict[str, Any] = {"last__a": None, "last__b": None}
        if known:
            top = max(r["ts"] for r in known)
            tied = [r for r in known if r["ts"] == top]

            def rank(r: dict[str, Any]) -> tuple[Any, ...]:
                newest = (r["created"] is None, -(r["created"] or 0)) if s["with_created"] else ()
                return (*newest, *(order_key(r[c]) for c in s["listed"]))

            best = min(tied, key=rank)
            if s["ttl"] is None or best["ts"] >= t - s["ttl"]:
                result = {"last__a": best["a"], "last__b": best["b"]}
        out[pid] = result
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b) if a is not None and b is not None else a is None and b is None


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.parametrize("plan", ["asof", "bucketed"])
@given(scenarios())
def test_latest_view_equals_brute_force_on_ties_and_edges(
    tmp_path_factory: pytest.TempPathFactory, plan: LatestPlan, s: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("pit_latest")
    out = folder / "training.parquet"
    build_training_set(write_project(folder, s), out, latest_plan=plan)
    relation = duckdb.sql(f"SELECT pid, last__a, last__b FROM '{out}'")
    assert relation is not None
    got = {int(pid): {"last__a": a, "last__b": b} for pid, a, b in relation.fetchall()}
    expected = brute_force(s)
    assert got.keys() == expected.keys()
    for pid, want in expected.items():
        row = got[pid]
        assert all(same(row[c], want[c]) for c in want), (
            f"probe {s['probes'][pid]}: got {row}, expected {want}"
        )
