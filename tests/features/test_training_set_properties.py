"""Property: the built training set equals a brute-force Python scan of the definitions.

Random small event tables, random available_after, windows, ttl, ties and nulls; the
semantics are those of docs/features.md, written here the slow, obvious way.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.features.training_set import build_training_set
from taxiway.spec import Project, format_duration, load_spec_text

BASE = datetime(2025, 1, 1)
FUNCTIONS = [
    "count(*)",
    "count(v)",
    "count_distinct(v)",
    "sum(v)",
    "avg(v)",
    "min(v)",
    "max(v)",
    "stddev(v)",
]

events = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.integers(1, 3),
            # whole hours often, so rows land exactly on window, ttl and horizon boundaries
            "minute": st.one_of(
                st.integers(0, 24 * 6).map(lambda h: h * 60), st.integers(0, 60 * 24 * 6)
            ),
            "v": st.one_of(st.none(), st.integers(-5, 5).map(float)),
            "created": st.integers(0, 3),
        }
    ),
    min_size=1,
    max_size=25,
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    available_after = draw(st.sampled_from([0, 1, 6, 30]))
    # windows must outlast available_after (a shorter one is refused by the spec loader)
    windows = st.sampled_from([1, 2, 12, 24, 48, 100]).map(lambda h: h + available_after)
    return {
        "events": draw(events),
        "available_after_h": available_after,
        "windows_h": draw(st.lists(windows, min_size=1, max_size=2, unique=True)),
        "ttl_h": draw(st.sampled_from([1, 5, 24, 72])),
        "every_h": draw(st.sampled_from([7, 12, 24])),
        "horizon_h": draw(st.sampled_from([6, 24, 48])),
        "label_kind": draw(st.sampled_from(["any_event", "no_event", "count", "sum"])),
        "spine": draw(st.sampled_from(["periodic", "event"])),
    }


def write_spec(folder: Path, s: dict[str, Any]) -> Project:
    rows = [
        {
            "k": e["k"],
            "ts": BASE + timedelta(minutes=e["minute"]),
            "v": e["v"],
            "created": e["created"],
        }
        for e in s["events"]
    ]
    columns: list[tuple[str, pa.DataType]] = [
        ("k", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("v", pa.float64()),
        ("created", pa.int64()),
    ]
    schema = pa.schema(columns)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "events.parquet")
    aggregates = ", ".join(f"f{i}: {f}" for i, f in enumerate(FUNCTIONS))
    windows = ", ".join(f"{w}h" for w in s["windows_h"])
    spine = (
        f"spine: {{every: {s['every_h']}h, start: 2025-01-01T00:00:00, end: 2025-01-07T00:00:00, source: ev}}"
        if s["spine"] == "periodic"
        else "spine: {source: ev}"
    )
    label_expr = ", expr: v" if s["label_kind"] == "sum" else ""
    text = f"""
name: prop
sources:
  ev: {{kind: file, path: events.parquet, timestamp: ts, created: created, available_after: {s["available_after_h"]}h}}
entities: {{e: k}}
features:
  agg: {{source: ev, entity: e, aggregate: {{{aggregates}}}, windows: [{windows}]}}
  last: {{source: ev, entity: e, latest: [v, created], ttl: {s["ttl_h"]}h}}
{spine}
label: {{name: y, kind: {s["label_kind"]}, source: ev, entity: e, horizon: {s["horizon_h"]}h{label_expr}}}
"""
    spec_path = folder / "taxiway.yaml"
    spec_path.write_text(text)
    return Project(
        load_spec_text(text, str(spec_path), base_dir=folder), spec_path, folder / ".state"
    )


def aggregate(function: str, rows: list[dict[str, Any]]) -> Any:
    values = [r["v"] for r in rows if r["v"] is not None]
    if function == "count(*)":
        return len(rows)
    if function == "count(v)":
        return len(values)
    if function == "count_distinct(v)":
        return len(set(values))
    if function == "sum(v)":
        return 0 if not rows else (math.fsum(values) if values else None)
    if not values:
        return None
    if function == "avg(v)":
        return math.fsum(values) / len(values)
    if function == "min(v)":
        return min(values)
    if function == "max(v)":
        return max(values)
    return statistics.stdev(values) if len(values) > 1 else None


def brute_force(s: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "k": e["k"],
            "ts": BASE + timedelta(minutes=e["minute"]),
            "v": e["v"],
            "created": e["created"],
        }
        for e in s["events"]
    ]
    aa = timedelta(hours=s["available_after_h"])
    if s["spine"] == "periodic":
        spine = []
        t = BASE
        while t <= BASE + timedelta(days=6):
            for k in sorted({r["k"] for r in rows}):
                if min(r["ts"] for r in rows if r["k"] == k) + aa <= t:
                    spine.append((k, t))
            t += timedelta(hours=s["every_h"])
    else:
        spine = [(r["k"], r["ts"]) for r in rows]
    newest = max(r["ts"] for r in rows)
    horizon = timedelta(hours=s["horizon_h"])
    out = []
    for k, t in spine:
        if t + horizon > newest:
            continue
        known = [r for r in rows if r["k"] == k and r["ts"] + aa <= t]
        result: dict[str, Any] = {"k": k, "timestamp": t}
        for i, function in enumerate(FUNCTIONS):
            for w in s["windows_h"]:
                window = [r for r in known if r["ts"] > t - timedelta(hours=w)]
                result[f"agg__f{i}_{format_duration(timedelta(hours=w))}"] = aggregate(
                    function, window
                )
        if known:
            top = max(r["ts"] for r in known)
            tied = [r for r in known if r["ts"] == top]
            # ties: newest `created`, then the smallest values (nulls last): the documented order
            best = sorted(tied, key=lambda r: (-r["created"], r["v"] is None, r["v"] or 0.0))[0]
            fresh = best["ts"] >= t - timedelta(hours=s["ttl_h"])
            result["last__v"] = best["v"] if fresh else None
            result["last__created"] = best["created"] if fresh else None
        else:
            result["last__v"] = None
            result["last__created"] = None
        ahead = [r for r in rows if r["k"] == k and t < r["ts"] <= t + horizon]
        kind = s["label_kind"]
        if kind == "any_event":
            result["y"] = int(bool(ahead))
        elif kind == "no_event":
            result["y"] = int(not ahead)
        elif kind == "count":
            result["y"] = len(ahead)
        else:
            values = [r["v"] for r in ahead if r["v"] is not None]
            result["y"] = 0 if not ahead else (math.fsum(values) if values else None)
        out.append(result)
    return out


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["timestamp"], row["k"], tuple(sorted((k, str(v)) for k, v in row.items())))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios())
def test_training_set_equals_brute_force(
    tmp_path_factory: pytest.TempPathFactory, s: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("pit")
    project = write_spec(folder, s)
    out = folder / "training.parquet"
    manifest = build_training_set(project, out)
    relation = duckdb.sql(f"SELECT * FROM '{out}'")
    assert relation is not None
    built, names = relation.fetchall(), relation.columns
    got = [dict(zip(names, row, strict=True)) for row in built]
    expected = brute_force(s)
    assert manifest.rows == len(expected) == len(got)
    # event spines may hold several rows for one (k, t): compare as sorted multisets
    got.sort(key=key)
    expected.sort(key=key)
    unmatched = list(expected)
    for row in got:
        match = next((e for e in unmatched if all(same(row[c], e[c]) for c in e)), None)
        assert match is not None, f"row {row} not in the brute force result"
        unmatched.remove(match)
    if got:  # keys first, then the timestamp, as the output-columns rule says
        assert list(got[0].keys())[:2] == ["k", "timestamp"]
