"""`--engine` and `--master` as a new user meets them: Spark asked for where PySpark or Java is
missing, and a Spark master given to a DuckDB run. The real CLI runs in a subprocess (PySpark
hidden the way tests/cli/test_extras.py hides an extra); each failure is one message with its
fix and the project's exit code, never a traceback nor the JVM launcher's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.test_extras import HIDING
from tests.conftest import require

from taxiway.errors import EXIT_BAD_SPEC, EXIT_FAILURE, EXIT_NOT_INSTALLED

COMMANDS = [["check"], ["features", "build"], ["features", "materialize"], ["monitor"]]
SPEC = """\
name: shop
sources:
  orders: {kind: file, path: orders.csv, timestamp: ordered_at}
entities: {customer: customer_id}
features:
  spend: {source: orders, entity: customer, aggregate: {total: sum(amount)}, windows: [30d]}
spine: {source: orders}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("engine")
    (folder / "orders.csv").write_text(
        "order_id,customer_id,amount,ordered_at\n1,10,5.0,2025-01-01 10:00:00\n"
    )
    path = folder / "taxiway.yaml"
    path.write_text(SPEC)
    return path


def taxiway(
    spec: Path, *args: str, hide: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI on ``spec`` with the modules ``hide`` (comma-separated) unimportable."""
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    environment.pop("TAXIWAY_STATE_DIR", None)
    state = spec.parent / "state"
    return subprocess.run(
        [sys.executable, "-c", HIDING, hide, *args, "-f", str(spec), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=spec.parent,
        check=False,
    )


def assert_one_message(done: subprocess.CompletedProcess[str]) -> None:
    for noise in ("Traceback", "internal error", "spark-class", "JAVA_GATEWAY", "Exception"):
        assert noise not in done.stdout + done.stderr, done.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_spark_without_pyspark_names_the_extra_to_install(spec: Path, command: list[str]) -> None:
    done = taxiway(spec, *command, "--engine", "spark", hide="pyspark")
    assert done.returncode == EXIT_NOT_INSTALLED, done.stderr
    assert "error: engine: spark needs taxiway[spark], which is not installed (no pyspark)" in (
        done.stderr
    )
    assert "fix: pip install 'taxiway[spark]'" in done.stderr
    assert_one_message(done)
    assert "loaded: \n" in done.stderr, "nothing imported PySpark"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_spark_with_java_home_pointing_nowhere_says_so_and_how_to_install_java(
    spec: Path, tmp_path: Path, command: list[str]
) -> None:
    require("pyspark", reason="the Java check comes after PySpark's")
    nowhere, empty = tmp_path / "no-jdk", tmp_path / "bin"
    empty.mkdir()  # a PATH with no java on it (the CLI runs from sys.executable's full path)
    env = {"JAVA_HOME": str(nowhere), "PATH": str(empty)}
    done = taxiway(spec, *command, "--engine", "spark", env=env)
    assert done.returncode == EXIT_FAILURE, done.stderr
    assert f"error: Spark cannot start: JAVA_HOME is {nowhere}, which holds no bin/java" in (
        done.stderr
    )
    assert "fix: install Java 17: `apt-get install openjdk-17-jre-headless`" in done.stderr
    assert_one_message(done)


def test_spark_with_no_java_anywhere_says_how_to_install_it(spec: Path, tmp_path: Path) -> None:
    require("pyspark", reason="the Java check comes after PySpark's")
    env = {key: value for key, value in os.environ.items() if key != "JAVA_HOME"}
    (tmp_path / "bin").mkdir()
    env["PATH"] = str(tmp_path / "bin")
    environment = {**env, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", HIDING, "", "check", "-f", str(spec), "--engine", "spark"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=spec.parent,
        check=False,
    )
    assert done.returncode == EXIT_FAILURE, done.stderr
    assert "error: Spark cannot start: no Java runtime (no `java` on PATH, no JAVA_HOME)" in (
        done.stderr
    )
    assert "fix: install Java 17: `apt-get install openjdk-17-jre-headless`" in done.stderr
    assert_one_message(done)


@pytest.mark.parametrize(
    ("args", "origin"),
    [
        (["check", "--engine", "duckdb"], "(--engine duckdb)"),
        (["features", "build"], "(the spec's `engine: duckdb`)"),
    ],
)
def test_a_spark_master_on_a_duckdb_run_is_refused(
    spec: Path, args: list[str], origin: str
) -> None:
    done = taxiway(spec, *args, "--master", "local[2]")
    assert done.returncode == EXIT_BAD_SPEC, done.stderr  # typer's usage error: exit 2
    assert "Invalid value for '--master'" in done.stderr
    assert f"this run is on duckdb {origin}; add --engine spark" in done.stderr
    assert_one_message(done)
    assert not (spec.parent / "training.parquet").exists(), "nothing ran"
