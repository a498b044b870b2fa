"""Shared fixtures: real services on loopback and optional libraries, skipped on a laptop
without them, FAILED in CI."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` is 1, true or yes), read at each call."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


IN_CI = in_ci()
PG_HOST = os.environ.get("TAXIWAY_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TAXIWAY_TEST_PG_PORT", "5432"))
PG_ADMIN_DB = os.environ.get("TAXIWAY_TEST_PG_DB", "test")
PG_USER = os.environ.get("TAXIWAY_TEST_PG_USER", "postgres")


def service_up(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (on a user's machine) or fail (in CI) when the service is not reachable."""
    if service_up(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{reason}; CI must start it (.ci/run)", pytrace=False)
    pytest.skip(f"{reason}; start it to run this test")


def require(module: str, *, reason: str) -> ModuleType:
    """Import the optional library ``module`` for a test: skipped with ``reason`` on a user's
    machine that lacks it, FAILED in CI (``CI=true``), which must install every extra.

    Use it instead of ``pytest.importorskip``. Only a missing ``module`` (or a parent package)
    skips: a library that is installed but fails to import is an error everywhere, and the
    project's own modules are imported plainly, never through this.
    """
    if module.partition(".")[0] == "taxiway":
        raise ValueError(f"import {module} plainly: taxiway's own modules are never optional")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        parts = module.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if error.name not in parents:
            raise  # installed, but something it imports is missing: a broken install
        missing = f"{module} is not installed; {reason}"
        if in_ci():
            pytest.fail(f"{missing}; CI must install it (the dev extra)", pytrace=False)
        pytest.skip(f"{missing}; `pip install` it to run this test")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the admin database on the real PostgreSQL server (trust auth on loopback)."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}"


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database created for this test session and dropped after it."""
    import psycopg

    name = f"taxiway_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_script(name: str, path: Path) -> ModuleType:
    """Import a script by path (the examples are scripts, not a package), registered under
    ``name`` in ``sys.modules`` as an import would be (dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def retail_shop(folder: Path, customers: int) -> Path:
    """The retail example in ``folder``: simulated data for ``customers``, its spec and
    contracts; returns the spec's path."""
    target = folder
    module = load_script("retail_sim", EXAMPLES / "retail" / "simulate.py")
    module.simulate(target / "data", customers=customers)
    shutil.copy(EXAMPLES / "retail" / "taxiway.yaml", target / "taxiway.yaml")
    shutil.copytree(EXAMPLES / "retail" / "contracts", target / "contracts")
    return target / "taxiway.yaml"


def pilot_spec(shop: Path, folder: Path, pilot: Path) -> Path:
    """A spec in ``folder`` that imports ``pilot`` instead of training, on ``shop``'s data
    and contracts (linked, not copied); returns its path."""
    text = shop.read_text().replace(
        "model:\n  algorithm: lightgbm", f"model:\n  pilot: {pilot}\n  algorithm: lightgbm"
    )
    for item in ("data", "contracts"):
        (folder / item).symlink_to(shop.parent / item)
    spec = folder / "taxiway.yaml"
    spec.write_text(text)
    return spec


_LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode = EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def sqlite_locked(path: Path) -> Iterator[Callable[[], None]]:
    """Another process holds the SQLite file ``path`` under an EXCLUSIVE lock, for real.

    Yields ``release()``, which ends the lock (and the process) before the block ends; the
    process is killed on the way out if it still runs.
    """
    with subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdout is not None
        assert locker.stdin is not None
        stdin = locker.stdin

        def release() -> None:
            stdin.close()
            locker.wait(timeout=10)

        try:
            assert locker.stdout.readline().strip() == "locked"
            yield release
        finally:
            if locker.poll() is None:
                locker.kill()


@pytest.fixture(scope="session")
def served_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The retail example (400 customers), trained, version 1 promoted, store materialized:
    one per test session, tests/serving's ``shop`` and the tests that copy it elsewhere. A
    fixture imported into a test module is a fixture of that module (built again there), so
    the shared ones live here and are used by name."""
    from tests.serving.conftest import trained_shop

    return trained_shop(tmp_path_factory.mktemp("served-shop"))


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a trained recommender world (tests/serving/recommend_world.py: spec, data,
    contracts and state), trained once per session; tests copy it (``copy_world``)."""
    from tests.serving.recommend_world import train_world

    root = tmp_path_factory.mktemp("recommend-world")
    train_world(root)
    return root
