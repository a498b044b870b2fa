"""Conformance: `taxiway features materialize --engine spark` writes the same online values as
DuckDB, into SQLite and into Redis, fully and incrementally (the retail example)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from tests.conftest import require_service, retail_shop
from typer.testing import CliRunner

from taxiway.cli.app import app
from taxiway.features.materialize import materialize
from taxiway.features.online import OnlineStore, RedisStore, ViewValues, open_online_store
from taxiway.spec import Project

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)
KEYS = [str(k) for k in range(100_000, 100_400)]


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return bool(a == b) and type(a) is type(b)


def assert_same_store(a: OnlineStore, b: OnlineStore) -> int:
    """The same views, values (floats within 1e-9 relative), event times and as-of times."""
    left, right = a.read("customer", KEYS), b.read("customer", KEYS)
    assert left.keys() == right.keys()
    for key, views in left.items():
        other: list[ViewValues] = sorted(right[key])
        for x, y in zip(sorted(views), other, strict=True):
            assert (x.view, x.event_time, x.as_of) == (y.view, y.event_time, y.as_of), key
            assert x.values.keys() == y.values.keys()
            different = {
                n: (v, y.values[n]) for n, v in x.values.items() if not same_value(v, y.values[n])
            }
            assert not different, f"{key} {x.view}: {different}"
    return len(left)


def _store(project: Project) -> OnlineStore:
    spec = project.spec
    return open_online_store(spec.online_store, state_dir=project.state_dir, namespace=spec.name)


def test_materialized_values_agree_in_sqlite_and_redis(spark: Any, tmp_path: Path) -> None:
    spec = retail_shop(tmp_path, customers=120)
    duck = Project.load(spec, tmp_path / "state-duckdb")
    other = Project.load(spec, tmp_path / "state-spark")
    duck_store, spark_store = _store(duck), _store(other)
    try:
        first = materialize(duck, duck_store, as_of=T1, full=True)
        result = CliRunner().invoke(
            app,
            [
                *("features", "materialize", "-f", str(spec), "--state-dir", str(other.state_dir)),
                *("--as-of", T1.isoformat(), "--full", "--engine", "spark"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "customer_orders: 120 entities written" in result.stdout
        assert assert_same_store(duck_store, spark_store) == 120
        # incremental: only the entities whose values can change are recomputed, alike
        second = materialize(duck, duck_store, as_of=T2)
        again = materialize(other, spark_store, as_of=T2, engine="spark")
        assert {v: i["entities"] for v, i in second.views.items()} == {
            v: i["entities"] for v, i in again.views.items()
        }
        assert all(i["incremental"] for i in again.views.values())
        assert first.views.keys() == again.views.keys()
        assert assert_same_store(duck_store, spark_store) == 120
    finally:
        duck_store.close()
        spark_store.close()

    require_service("Redis", "127.0.0.1", 6379)
    full = Project.load(spec, tmp_path / "state-full")
    redis = RedisStore("redis://127.0.0.1:6379/0", f"tw-test:{uuid4().hex}", timeout_ms=2_000)
    sqlite = _store(full)
    try:
        materialize(full, sqlite, as_of=T2, full=True)
        materialize(Project.load(spec, tmp_path / "state-redis"), redis, as_of=T2, engine="spark")
        assert assert_same_store(sqlite, redis) == 120
    finally:
        redis.clear()
        redis.close()
        sqlite.close()
