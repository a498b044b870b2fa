"""Real distributed execution: a Spark standalone cluster (a master and two workers, each its
own JVM, from PySpark's own launcher) on loopback builds the retail training set, and its rows
are DuckDB's. The cluster stops afterwards, also when the test fails: no JVM is left behind.

The build runs in a child process (``taxiway features build --master spark://...``) because a
process has one Spark session and this test run's is ``local[2]`` (the ``spark`` fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import require, retail_shop
from tests.engines.conftest import require_java
from tests.engines.test_spark_conformance import assert_same_sets

from taxiway.engines.standalone import StandaloneCluster
from taxiway.features.training_set import build_training_set
from taxiway.spec import Project

# an executor may take all of a worker's memory (the default, 1g, would never be granted)
CLUSTER_CONF = "spark:\n  conf:\n    spark.executor.memory: 512m\n    spark.cores.max: '2'\n"
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def running_pids(cluster: StandaloneCluster) -> list[int]:
    return [p.pid for p in cluster.processes if p.poll() is None]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A master and two workers (1 core, 512m each) on free loopback ports."""
    require("pyspark", reason="a Spark cluster needs the spark extra")
    require_java()
    started = StandaloneCluster(tmp_path_factory.mktemp("cluster"), workers=2, memory="512m")
    with started:
        yield started
    assert not running_pids(started)


@pytest.mark.slow
def test_a_two_worker_cluster_builds_the_retail_set_as_duckdb_does(
    cluster: StandaloneCluster, tmp_path: Path
) -> None:
    assert cluster.alive_workers() == 2
    spec = retail_shop(tmp_path, customers=150)
    spec.write_text(spec.read_text() + CLUSTER_CONF)
    duck = tmp_path / "duckdb.parquet"
    build_training_set(Project.load(spec, tmp_path / ".state"), duck)

    out = tmp_path / "spark.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "taxiway", "features", "build", "-f", str(spec)]
    command += ["--state-dir", str(tmp_path / ".state-spark"), "--out", str(out)]
    command += ["--engine", "spark", "--master", cluster.master_url]
    shown = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert shown.returncode == 0, shown.stdout + shown.stderr

    assert assert_same_sets(duck, out) > 1000
    apps = cluster.status()["completedapps"]  # the build ran on the cluster, not locally
    assert [app["name"] for app in apps] == ["taxiway"]
    assert apps[0]["cores"] == 2  # one executor on each worker


def test_a_cluster_that_cannot_start_says_where_its_logs_are(tmp_path: Path) -> None:
    require("pyspark", reason="a Spark cluster needs the spark extra")
    require_java()
    from taxiway.engines.sql import EngineError

    broken = StandaloneCluster(tmp_path, workers=1, memory="not-a-size")
    with pytest.raises(EngineError, match="did not start") as raised:
        broken.start(timeout=60)
    assert str(tmp_path) in (raised.value.fix or "")
    assert not running_pids(broken)


@pytest.mark.slow
def test_a_cluster_that_goes_away_mid_build_is_reported_not_waited_for(tmp_path: Path) -> None:
    """Spark alone would wait for executors forever; the build stops and says what to do."""
    require("pyspark", reason="a Spark cluster needs the spark extra")
    require_java()
    spec = retail_shop(tmp_path, customers=1500)
    spec.write_text(spec.read_text() + CLUSTER_CONF + "    spark.taxiway.executorLossTimeout: 5s\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with StandaloneCluster(tmp_path / "cluster", workers=1, memory="512m") as doomed:
        command = [sys.executable, "-m", "taxiway", "features", "build", "-f", str(spec)]
        command += ["--state-dir", str(tmp_path / ".state"), "--out", str(tmp_path / "o.parquet")]
        command += ["--engine", "spark", "--master", doomed.master_url]
        build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            while not doomed.status()["activeapps"] and build.poll() is None:
                time.sleep(0.2)
            time.sleep(2.0)  # the application has its executor: now the cluster goes away
            doomed.stop()
            shown, _ = build.communicate(timeout=300)
        finally:
            if build.poll() is None:
                build.kill()
                build.wait()
    text = shown.decode()
    assert build.returncode != 0
    assert "no executor left on spark://127.0.0.1" in text, text[-3000:]
    assert "check that the master and its workers run" in text
    assert "\tat org.apache" not in text  # what failed and what to do, not a JVM stack


@pytest.mark.slow
def test_the_cluster_s_executors_write_redis_as_duckdb_does(
    cluster: StandaloneCluster, tmp_path: Path
) -> None:
    """`features materialize --master spark://...` into Redis: the executors (the workers'
    Python) write every key; the keys and documents are DuckDB's."""
    from tests.conftest import require_service
    from tests.engines.test_spark_redis import REDIS_URL, documents, forget, same

    require("redis", reason="the Redis online store needs the redis extra")
    require_service("Redis", "127.0.0.1", 6379)
    from taxiway.features.materialize import materialize
    from taxiway.features.online import RedisStore

    spec = retail_shop(tmp_path, customers=150)
    prefix = f"tw-sparkexec-cluster:{uuid.uuid4().hex}"
    spec.write_text(
        spec.read_text()
        + CLUSTER_CONF
        + f"online_store:\n  kind: redis\n  url: {REDIS_URL}\n  prefix: '{prefix}'\n"
    )
    duck = RedisStore(REDIS_URL, f"{prefix}-duckdb", 5_000)
    on_cluster = RedisStore(REDIS_URL, prefix, 5_000)
    try:
        materialize(Project.load(spec, tmp_path / ".state"), duck, as_of=AS_OF, full=True)
        before = len(cluster.status()["completedapps"])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        command = [sys.executable, "-m", "taxiway", "features", "materialize", "-f", str(spec)]
        command += ["--state-dir", str(tmp_path / ".state-spark"), "--as-of", AS_OF.isoformat()]
        command += ["--full", "--engine", "spark", "--master", cluster.master_url]
        shown = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "customer_orders: 150 entities written" in shown.stdout

        left, right = documents(duck.prefix), documents(prefix)
        assert len(left) > 150
        assert left.keys() == right.keys()
        assert same(left, right) == []
        apps = cluster.status()["completedapps"]  # it ran on the cluster, on both workers
        assert len(apps) == before + 1
        assert max(apps, key=lambda app: app["id"])["cores"] == 2
    finally:
        for store in (duck, on_cluster):
            forget(store.prefix)
            store.close()
