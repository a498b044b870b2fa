"""The Spark fixture: one local[2] session for the whole test run (Spark is slow to start),
skipped on a machine without PySpark or Java, FAILED under CI=true."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from tests.conftest import in_ci, require


def require_java() -> None:
    """Skip (on a user's machine) or fail (in CI) when no Java runtime is installed."""
    home = os.environ.get("JAVA_HOME")
    if shutil.which("java") or (home and os.path.exists(os.path.join(home, "bin", "java"))):
        return
    reason = "Spark needs a Java runtime and none is installed (no `java`, no JAVA_HOME)"
    if in_ci():
        pytest.fail(f"{reason}; CI must install openjdk-17-jre-headless (.ci/run)", pytrace=False)
    pytest.skip(f"{reason}; `apt-get install openjdk-17-jre-headless` to run this test")


@pytest.fixture(scope="session")
def spark() -> Any:
    """The process's Spark session on ``local[2]`` (what ``engine: spark`` then reuses)."""
    require("pyspark", reason="the Spark engine's tests need the spark extra")
    require("sqlglot", reason="the Spark engine's tests need the spark extra")
    require_java()
    from taxiway.engines.spark import spark_session

    return spark_session("local[2]")
