"""Spark's executors write the Redis online store themselves: `materialize` on Spark local[2]
writes the same keys and documents as on DuckDB (every key under each prefix compared), its
partitions report what they wrote, and a partition that cannot write fails the command with
the partition, the reason and the fix."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from tests.conftest import require, require_service, retail_shop

from taxiway.errors import FeatureError
from taxiway.features.materialize import materialize
from taxiway.spec import Project

T = datetime(2026, 1, 1, tzinfo=UTC)
REDIS_URL = "redis://127.0.0.1:6379/0"


def documents(prefix: str) -> dict[str, Any]:
    """Every key under ``prefix:`` (the prefix cut off) and its value (JSON decoded)."""
    import json

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        values = client.mget(names) if names else []
        found = {
            name.decode()[len(prefix) + 1 :]: value
            for name, value in zip(names, values, strict=True)
        }
        # the layout marker is plain text; every other key holds a JSON document
        return {k: v if k == "layout" else json.loads(v or b"") for k, v in found.items()}
    finally:
        client.close()


def forget(prefix: str) -> None:
    """Delete every key under ``prefix:`` (the vectors and the layout marker)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if names:
            client.unlink(*names)
    finally:
        client.close()


def same(a: Any, b: Any, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ: floats within 1e-9 relative, everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{where}: {a} != {b}"]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]


@pytest.fixture
def prefixes() -> Any:
    """Two unique Redis prefixes, cleared afterwards."""
    require("redis", reason="the Redis online store needs the redis extra")
    require_service("Redis", "127.0.0.1", 6379)
    from taxiway.features.online import RedisStore

    stores = [RedisStore(REDIS_URL, f"tw-sparkexec:{uuid4().hex}", 5_000) for _ in range(2)]
    yield stores
    for store in stores:
        forget(store.prefix)
        store.close()


def test_executors_write_every_key_and_value_duckdb_writes(
    spark: Any, tmp_path: Path, prefixes: Any
) -> None:
    duck, on_spark = prefixes
    spec = retail_shop(tmp_path, customers=150)
    by_duckdb = materialize(Project.load(spec, tmp_path / "s1"), duck, as_of=T, full=True)
    by_spark = materialize(
        Project.load(spec, tmp_path / "s2"), on_spark, as_of=T, full=True, engine="spark"
    )
    left, right = documents(duck.prefix), documents(on_spark.prefix)
    assert len(left) > 150  # every customer's vector, and the layout marker
    assert left.keys() == right.keys()
    assert same(left, right) == []
    for view, info in by_spark.views.items():
        assert info["entities"] == by_duckdb.views[view]["entities"] == 150
        # written by a task per core (local[2]), not collected to one place
        assert info["partitions"] == spark.sparkContext.defaultParallelism == 2
        assert "partitions" not in by_duckdb.views[view]


def test_a_partition_that_cannot_write_fails_the_command_with_the_reason(
    spark: Any, tmp_path: Path, prefixes: Any
) -> None:
    store, _ = prefixes
    spec = retail_shop(tmp_path, customers=120)
    project = Project.load(spec, tmp_path / "s")
    store.write("customer", [])  # the layout marker, then a value that is not a vector
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{store.prefix}:customer:100001", b"not json")  # the first customer's key
    client.close()
    with pytest.raises(FeatureError) as raised:
        materialize(project, store, as_of=T, full=True, engine="spark")
    error = raised.value
    assert "Spark partitions could not write view" in error.message
    assert "holds a value that is not a feature vector" in error.message
    assert "rows were written by the others" in error.message
    assert "materialize again" in (error.fix or "")
    client = redis.Redis.from_url(REDIS_URL)
    written = list(client.scan_iter(match=f"{store.prefix}:customer:*", count=1000))
    client.close()
    assert 1 < len(written) < 120  # the other partition's keys stay, the failed one's did not
    assert not (project.state_dir / "materialized.json").exists()
