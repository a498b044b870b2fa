"""One suite every model registry passes: numbering, artifacts, stages, history, JSON, locking.

Adding a backend means adding an opener to ``BACKENDS``; nothing else changes. PostgreSQL runs
on the real server (skipped without it on a laptop, failed without it in CI), each test in a
schema of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import filecmp
import multiprocessing
import os
import queue
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import orjson
import pytest

from taxiway.errors import RegistryError
from taxiway.models.registry import (
    ModelVersion,
    NewVersion,
    Registry,
    SqliteModelRegistry,
    open_registry,
)
from taxiway.spec.models import PostgresRegistry, SqliteRegistry

# the folder this module is imported from, whatever name pytest's import mode gave it
IMPORT_ROOT = Path(__file__).resolve().parents[__name__.count(".")]


def new_version(name: str = "churn", **changes: Any) -> NewVersion:
    """A version's metadata as training would register it; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "name": name,
        "created_by": "ana",
        "algorithm": "lightgbm",
        "task": "classification",
        "metrics": {"model": {"roc_auc": 0.81}, "baseline": {"roc_auc": 0.62}},
        "features": ["orders__count_30d", "orders__spend_90d"],
        "definitions_hash": "d41d8cd9",
        "spec_hash": "9a0f3c11",
        "git_commit": "2c07075",
        "training": {"fingerprint": "tf-1", "rows": 1000},
        "lineage": {"sources": [{"name": "orders", "fingerprint": "src-1"}]},
        "profile": {"orders__count_30d": {"mean": 2.5}},
        "serving": {"form": "onnx", "p99_ms": 0.4},
    }
    fields.update(changes)
    return NewVersion(**fields)


def make_artifacts(folder: Path, tag: str = "v") -> Path:
    """A trained model's folder: a binary file, a text file, and a nested one."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(bytes(range(256)) * 40 + tag.encode())
    (folder / "schema.json").write_text(f'{{"tag": "{tag}"}}', encoding="utf-8")
    (folder / "native").mkdir()
    (folder / "native" / "booster.txt").write_text(f"tree {tag}\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Where:
    """Where a registry keeps its data; picklable, so child processes can open it too."""

    kind: str
    database: str  # the SQLite file, or the PostgreSQL URL
    artifacts: str
    schema: str = "taxiway"


def open_at(where: Where) -> Registry:
    """A new registry object over the data at ``where``."""
    if where.kind == "sqlite":
        return SqliteModelRegistry(Path(where.database), Path(where.artifacts))
    from taxiway.models.registry.postgres import PostgresModelRegistry

    return PostgresModelRegistry(
        where.database, artifacts=Path(where.artifacts), schema=where.schema
    )


def execute_at(where: Where, statement: str) -> None:
    """Run ``statement`` on the registry's database directly, bypassing the registry."""
    if where.kind == "sqlite":
        with sqlite3.connect(where.database) as connection:
            connection.execute(statement)
        connection.close()
        return
    import psycopg

    with psycopg.connect(where.database, options=f"-c search_path={where.schema}") as conn:
        conn.execute(statement)


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Where:
    return Where("sqlite", str(tmp_path / "state" / "registry.sqlite"), str(tmp_path / "art"))


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Where:
    url: str = request.getfixturevalue("postgres_url")
    where = Where("postgres", url, str(tmp_path / "art"), schema=f"tw_{uuid4().hex[:10]}")
    request.addfinalizer(lambda: execute_at(where, f"DROP SCHEMA IF EXISTS {where.schema} CASCADE"))
    return where


BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Where]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    return BACKENDS[request.param](tmp_path, request)


@pytest.fixture
def open_registry_at(where: Where) -> Iterator[Callable[[], Registry]]:
    """Opens registries over the same data; closes them all after the test."""
    opened: list[Registry] = []

    def opener() -> Registry:
        registry = open_at(where)
        opened.append(registry)
        return registry

    yield opener
    for registry in opened:
        registry.close()


@pytest.fixture
def registry(open_registry_at: Callable[[], Registry]) -> Registry:
    return open_registry_at()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return make_artifacts(tmp_path / "trained")


# --------------------------------------------------------------------------- numbering


def test_each_backend_is_a_registry(registry: Registry) -> None:
    assert isinstance(registry, Registry)


def test_versions_are_numbered_1_2_3_per_model(registry: Registry, artifacts: Path) -> None:
    before = datetime.now(UTC)

    churn = [registry.register(new_version(), artifacts) for _ in range(3)]
    other = registry.register(new_version("basket"), artifacts)

    assert [v.version for v in churn] == [1, 2, 3]
    assert other.version == 1
    assert {v.stage for v in [*churn, other]} == {"candidate"}
    assert [v.version for v in registry.list("churn")] == [1, 2, 3]
    assert registry.names() == ["basket", "churn"]
    created = churn[0].created_at
    assert created.tzinfo is not None
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC) + timedelta(seconds=1)


def test_an_empty_registry_knows_no_model(registry: Registry) -> None:
    assert registry.names() == []
    assert registry.list("churn") == []
    assert registry.history("churn") == []
    assert registry.production("churn") is None


def test_the_registered_metadata_comes_back_unchanged(registry: Registry, artifacts: Path) -> None:
    new = new_version(git_commit=None)

    version = registry.register(new, artifacts)

    for field in NewVersion.__dataclass_fields__:
        assert getattr(version, field) == getattr(new, field), field
    assert registry.get("churn", 1) == version


# --------------------------------------------------------------------------- artifacts


def test_artifacts_are_copied_whole_and_identical(
    registry: Registry, artifacts: Path, tmp_path: Path, where: Where
) -> None:
    snapshot = tmp_path / "snapshot"
    make_artifacts(snapshot)

    version = registry.register(new_version(), artifacts)
    (artifacts / "model.onnx").write_bytes(b"overwritten after registering")

    folder = Path(version.artifact_dir)
    assert folder.is_absolute()
    assert folder == Path(where.artifacts).resolve() / "churn" / "1"
    compared = filecmp.dircmp(snapshot, folder)
    assert sorted(compared.common_files) == ["model.onnx", "schema.json"]
    assert compared.left_only == compared.right_only == []
    names = ["model.onnx", "schema.json", "native/booster.txt"]
    assert filecmp.cmpfiles(snapshot, folder, names, shallow=False) == (names, [], [])
    assert sorted(p.name for p in folder.parent.iterdir()) == ["1"]  # no temporary folder left


def test_each_version_keeps_its_own_files(registry: Registry, tmp_path: Path) -> None:
    first = registry.register(new_version(), make_artifacts(tmp_path / "a", tag="first"))
    second = registry.register(new_version(), make_artifacts(tmp_path / "b", tag="second"))

    assert first.artifact_dir != second.artifact_dir
    assert (Path(first.artifact_dir) / "native" / "booster.txt").read_text() == "tree first\n"
    assert (Path(second.artifact_dir) / "native" / "booster.txt").read_text() == "tree second\n"


def test_a_failed_register_records_nothing_and_leaves_no_files(
    registry: Registry, artifacts: Path, where: Where, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError, match="metrics") as raised:
        registry.register(new_version(metrics={"roc_auc": {0.8}}), artifacts)
    assert raised.value.fix
    with pytest.raises(RegistryError, match="not a folder"):
        registry.register(new_version(), tmp_path / "missing")
    with pytest.raises(RegistryError, match="cannot name a model"):
        registry.register(new_version("../escape"), artifacts)

    assert registry.list("churn") == []
    root = Path(where.artifacts)
    assert not root.exists() or list(root.rglob("model.onnx")) == []


def test_files_a_crash_left_behind_are_moved_aside_not_mixed_in(
    registry: Registry, tmp_path: Path, where: Where
) -> None:
    # a crash between moving the files into place and committing left version 1's folder
    orphan = make_artifacts(Path(where.artifacts) / "churn" / "1", tag="crashed")

    version = registry.register(new_version(), make_artifacts(tmp_path / "new", tag="new"))

    assert version.version == 1
    assert (Path(version.artifact_dir) / "native" / "booster.txt").read_text() == "tree new\n"
    kept = [p for p in orphan.parent.iterdir() if p.name.startswith(".orphaned-1-")]
    assert len(kept) == 1
    assert (kept[0] / "native" / "booster.txt").read_text() == "tree crashed\n"


# --------------------------------------------------------------------------- get


def test_get_returns_the_newest_or_the_version_asked(registry: Registry, artifacts: Path) -> None:
    for commit in ("aaa", "bbb", "ccc"):
        registry.register(new_version(git_commit=commit), artifacts)

    assert registry.get("churn").version == 3
    assert registry.get("churn").git_commit == "ccc"
    assert registry.get("churn", 2).git_commit == "bbb"


def test_an_unknown_version_is_an_error_naming_the_known_ones(
    registry: Registry, artifacts: Path
) -> None:
    for _ in range(3):
        registry.register(new_version(), artifacts)

    with pytest.raises(RegistryError, match=r"no version 7 \(its versions: 1, 2, 3\)") as raised:
        registry.get("churn", 7)
    assert raised.value.fix
    with pytest.raises(RegistryError, match="no model named 'basket'"):
        registry.get("basket")
    with pytest.raises(RegistryError, match="its versions: 1, 2, 3"):
        registry.set_stage("churn", 9, "production", by="ana")


# --------------------------------------------------------------------------- stages


def test_promoting_archives_the_previous_production_version_and_history_records_both(
    registry: Registry, artifacts: Path
) -> None:
    registry.register(new_version(created_by="ana"), artifacts)
    registry.register(new_version(created_by="ben"), artifacts)

    first = registry.set_stage("churn", 1, "production", by="ana", note="beats the baseline")
    second = registry.set_stage("churn", 2, "production", by="ben")

    assert first.stage == "production"
    assert second.stage == "production"
    assert registry.production("churn") == second
    assert registry.get("churn", 1).stage == "archived"
    moves = [(e.version, e.from_stage, e.to_stage, e.by) for e in registry.history("churn")]
    assert moves == [
        (1, None, "candidate", "ana"),
        (2, None, "candidate", "ben"),
        (1, "candidate", "production", "ana"),
        (1, "production", "archived", "ben"),
        (2, "candidate", "production", "ben"),
    ]
    events = registry.history("churn")
    assert events[2].note == "beats the baseline"
    assert events[3].note == "replaced by version 2"
    assert events[3].at == events[4].at
    assert all(e.at.utcoffset() == timedelta(0) for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_rolling_back_returns_an_archived_version_to_production(
    registry: Registry, artifacts: Path
) -> None:
    for _ in range(2):
        registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "production", by="ana")
    registry.set_stage("churn", 2, "production", by="ana")

    back = registry.set_stage("churn", 1, "production", by="ana", note="v2 drifted")

    assert back.stage == "production"
    assert registry.production("churn") == back
    assert registry.get("churn", 2).stage == "archived"
    assert [v.stage for v in registry.list("churn")].count("production") == 1


def test_a_same_stage_change_is_a_no_op(registry: Registry, artifacts: Path) -> None:
    registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "production", by="ana")
    before = registry.history("churn")

    again = registry.set_stage("churn", 1, "production", by="ben")

    assert again == registry.get("churn", 1)
    assert registry.history("churn") == before


def test_bad_stage_changes_are_refused_and_change_nothing(
    registry: Registry, artifacts: Path
) -> None:
    registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "archived", by="ana")

    with pytest.raises(RegistryError, match="no version returns to candidate") as raised:
        registry.set_stage("churn", 1, "candidate", by="ana")
    assert raised.value.fix
    with pytest.raises(RegistryError, match="'staging' is not a stage"):
        registry.set_stage("churn", 1, "staging", by="ana")  # type: ignore[arg-type]

    assert registry.get("churn", 1).stage == "archived"
    assert len(registry.history("churn")) == 2


def test_retiring_production_leaves_none(registry: Registry, artifacts: Path) -> None:
    registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "production", by="ana")

    registry.set_stage("churn", 1, "archived", by="ana")

    assert registry.production("churn") is None


def test_the_database_itself_refuses_a_second_production_version(
    registry: Registry, artifacts: Path, where: Where
) -> None:
    for _ in range(2):
        registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "production", by="ana")

    with pytest.raises(Exception, match=r"(?i)unique") as raised:
        execute_at(where, "UPDATE model_versions SET stage = 'production' WHERE name = 'churn'")

    assert type(raised.value).__name__ in {"IntegrityError", "UniqueViolation"}
    assert [v.stage for v in registry.list("churn")] == ["production", "candidate"]


# --------------------------------------------------------------------------- JSON


def test_json_fields_round_trip(registry: Registry, artifacts: Path) -> None:
    metrics = {
        "model": {"roc_auc": 0.8123456789012345, "log_loss": 1 / 3, "tiny": -2.5e-08},
        "baseline": {"roc_auc": 0.5, "whole": 5.0, "count": 12, "big": 2**62},
        "beats_baseline": True,
        "missing": None,
        "nested": {"deeper": {"list": [1, 2.5, "three", [None, False]], "empty": {}}},
        "unicode": 'Zoë 東京 🚕 "quoted" \\ \n',
    }
    features = ["prix_€", "日付__count"]

    registry.register(new_version(metrics=metrics, features=features), artifacts)

    back = registry.get("churn", 1)
    assert back.metrics == metrics
    assert back.features == features
    assert type(back.metrics["baseline"]["whole"]) is float
    assert type(back.metrics["baseline"]["count"]) is int
    assert type(back.metrics["baseline"]["big"]) is int


def test_numpy_values_are_stored_as_numbers_and_nan_as_null(
    registry: Registry, artifacts: Path
) -> None:
    metrics = {"auc": np.float64(0.75), "n": np.int64(7), "undefined": float("nan")}

    registry.register(new_version(metrics=metrics), artifacts)

    assert registry.get("churn").metrics == {"auc": 0.75, "n": 7, "undefined": None}


def test_a_version_as_dict_is_json_ready(registry: Registry, artifacts: Path) -> None:
    version = registry.register(new_version(), artifacts)

    data = orjson.loads(orjson.dumps(version.as_dict()))

    assert data["created_at"] == version.created_at.isoformat()
    assert data["version"] == 1
    assert data["lineage"] == version.lineage


# --------------------------------------------------------------------------- sharing


def test_a_reopened_registry_sees_everything(
    open_registry_at: Callable[[], Registry], artifacts: Path
) -> None:
    writer = open_registry_at()
    for _ in range(2):
        writer.register(new_version(), artifacts)
    writer.set_stage("churn", 2, "production", by="ana")
    versions, history = writer.list("churn"), writer.history("churn")
    writer.close()

    reader = open_registry_at()

    assert reader.list("churn") == versions
    assert reader.history("churn") == history
    assert reader.production("churn") == versions[1]
    assert reader.names() == ["churn"]


def test_threads_read_while_another_registers(registry: Registry, artifacts: Path) -> None:
    registry.register(new_version(), artifacts)
    registry.set_stage("churn", 1, "production", by="ana")
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                production = registry.production("churn")
                assert production is not None
                assert production.version == 1
                assert registry.get("churn").version >= 1
        except BaseException as error:
            failures.append(error)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        versions = [registry.register(new_version(), artifacts).version for _ in range(5)]
    finally:
        done.set()
        for thread in readers:
            thread.join()

    assert failures == []
    assert versions == [2, 3, 4, 5, 6]


def _register_many(where: Where, source: str, count: int, start: Any, out: Any) -> None:
    """In a child process: wait for the other one, then register ``count`` versions."""
    registry = open_at(where)
    try:
        start.wait(timeout=30)
        for _ in range(count):
            new = new_version(created_by=f"process {os.getpid()}")
            out.put(registry.register(new, Path(source)).version)
    finally:
        registry.close()


def test_two_processes_registering_at_once_get_distinct_consecutive_versions(
    registry: Registry, artifacts: Path, where: Where, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.names()  # the tables exist before the race on the version numbers starts
    monkeypatch.syspath_prepend(str(IMPORT_ROOT))  # so spawned children can import this module
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_register_many, args=(where, str(artifacts), 10, start, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    got: list[int] = []
    while len(got) < 20 and (any(w.is_alive() for w in workers) or not out.empty()):
        with contextlib.suppress(queue.Empty):
            got.append(out.get(timeout=0.5))
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]

    assert sorted(got) == list(range(1, 21))
    listed = registry.list("churn")
    assert [v.version for v in listed] == list(range(1, 21))
    assert len({v.created_by for v in listed}) == 2
    for version in listed:
        assert (Path(version.artifact_dir) / "native" / "booster.txt").is_file()


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_at(url: str, tmp_path: Path) -> Where:
    return Where("postgres", url, str(tmp_path / "art"), f"tw_{uuid4().hex[:10]}")


def test_lineage_is_queryable_with_sql_in_postgresql(
    postgres_url: str, tmp_path: Path, artifacts: Path
) -> None:
    where = _postgres_at(postgres_url, tmp_path)
    registry = open_at(where)
    try:
        for fingerprint, version in (("3f9c2a", "1.2.0"), ("77e01b", "1.3.0"), ("3f9c2a", "1.3.0")):
            contract = {"id": "orders", "version": version}
            source = {"name": "orders", "fingerprint": fingerprint, "contract": contract}
            registry.register(new_version(lineage={"sources": [source]}), artifacts)
        import psycopg

        with psycopg.connect(postgres_url) as conn:
            # the two queries docs/registry.md shows
            by_fingerprint = conn.execute(
                f"SELECT name, version, stage FROM {where.schema}.model_versions "
                """WHERE lineage @> '{"sources": [{"fingerprint": "3f9c2a"}]}' """
                "ORDER BY name, version"
            ).fetchall()
            by_contract = conn.execute(
                f"SELECT name, version, stage FROM {where.schema}.model_versions WHERE lineage @> "
                """'{"sources": [{"name": "orders", "contract": {"version": "1.2.0"}}]}'"""
            ).fetchall()
        assert by_fingerprint == [("churn", 1, "candidate"), ("churn", 3, "candidate")]
        assert by_contract == [("churn", 1, "candidate")]
    finally:
        registry.close()
        execute_at(where, f"DROP SCHEMA IF EXISTS {where.schema} CASCADE")


@pytest.fixture
def postgres_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A new login role without privileges, and a connection string that logs in as it."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    role = f"tw_role_{uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    yield role, make_conninfo(postgres_url, user=role)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")


def test_a_role_that_may_only_read_reads_and_is_told_which_grant_lets_it_write(
    postgres_url: str, postgres_role: tuple[str, str], tmp_path: Path, artifacts: Path
) -> None:
    role, as_role = postgres_role
    owner = _postgres_at(postgres_url, tmp_path)
    writer = open_at(owner)
    try:
        writer.register(new_version(), artifacts)
        writer.set_stage("churn", 1, "production", by="ana")
    finally:
        writer.close()
    execute_at(owner, f"GRANT USAGE ON SCHEMA {owner.schema} TO {role}")
    execute_at(owner, f"GRANT SELECT ON ALL TABLES IN SCHEMA {owner.schema} TO {role}")
    reader = open_at(replace(owner, database=as_role))
    try:
        production = reader.production("churn")
        assert production is not None
        assert production.version == 1

        with pytest.raises(RegistryError, match="permission denied") as raised:
            reader.register(new_version(), artifacts)
    finally:
        reader.close()
        execute_at(owner, f"DROP SCHEMA IF EXISTS {owner.schema} CASCADE")

    assert raised.value.fix is not None
    assert f"INSERT, UPDATE ON ALL TABLES IN SCHEMA {owner.schema} TO {role}" in raised.value.fix


def test_a_role_that_may_not_create_the_schema_is_told_the_grant(
    postgres_role: tuple[str, str], tmp_path: Path
) -> None:
    role, as_role = postgres_role
    registry = open_at(_postgres_at(as_role, tmp_path))

    with pytest.raises(RegistryError, match="permission denied for database") as raised:
        registry.names()
    registry.close()

    assert raised.value.fix is not None
    assert f"TO {role};" in raised.value.fix


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_postgresql_is_an_error_with_a_fix_and_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    monkeypatch.setenv("TW_TEST_REGISTRY_URL", f"postgresql://ml:s3cr3t-pw@127.0.0.1:{port}/reg")
    spec = PostgresRegistry(kind="postgres", url="${TW_TEST_REGISTRY_URL}")
    registry = open_registry(spec, state_dir=tmp_path)

    with pytest.raises(RegistryError) as raised:
        registry.names()
    registry.close()

    error = raised.value
    assert f"127.0.0.1:{port}" in error.message
    assert "refused" in error.message
    assert error.fix is not None
    assert "TW_TEST_REGISTRY_URL" in error.fix
    for shown in (str(error), repr(error), error.fix, repr(registry)):
        assert "s3cr3t-pw" not in shown


def test_an_unset_url_variable_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TW_TEST_UNSET_URL", raising=False)
    spec = PostgresRegistry(kind="postgres", url="${TW_TEST_UNSET_URL}")

    with pytest.raises(RegistryError, match="TW_TEST_UNSET_URL is not set") as raised:
        open_registry(spec, state_dir=tmp_path)
    assert raised.value.fix == "export TW_TEST_UNSET_URL=... before running taxiway"


def test_without_psycopg_postgresql_asks_for_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_TEST_REGISTRY_URL", "postgresql://ml@127.0.0.1/reg")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    monkeypatch.delitem(sys.modules, "taxiway.models.registry.postgres", raising=False)
    spec = PostgresRegistry(kind="postgres", url="${TW_TEST_REGISTRY_URL}")

    with pytest.raises(RegistryError, match="client is missing") as raised:
        open_registry(spec, state_dir=tmp_path)
    assert raised.value.fix == "pip install 'taxiway[postgres]'"


# --------------------------------------------------------------------------- open_registry


def test_no_registry_in_the_spec_means_sqlite_in_the_state_folder(
    tmp_path: Path, artifacts: Path
) -> None:
    registry = open_registry(None, state_dir=tmp_path / "state")
    try:
        version = registry.register(new_version(), artifacts)
    finally:
        registry.close()

    assert (tmp_path / "state" / "registry.sqlite").is_file()
    assert Path(version.artifact_dir) == (tmp_path / "state" / "artifacts" / "churn" / "1")


def test_a_sqlite_spec_chooses_both_places(tmp_path: Path, artifacts: Path) -> None:
    spec = SqliteRegistry(
        kind="sqlite", path=str(tmp_path / "db" / "models.db"), artifacts=str(tmp_path / "files")
    )
    registry = open_registry(spec, state_dir=tmp_path / "state")
    try:
        version: ModelVersion = registry.register(new_version(), artifacts)
    finally:
        registry.close()

    assert (tmp_path / "db" / "models.db").is_file()
    assert version.artifact_dir == str(tmp_path / "files" / "churn" / "1")
    assert not (tmp_path / "state").exists()


def test_a_closed_registry_refuses_work(registry: Registry) -> None:
    registry.close()

    with pytest.raises(RegistryError, match="closed"):
        registry.names()


def test_a_version_is_frozen(registry: Registry, artifacts: Path) -> None:
    version = registry.register(new_version(), artifacts)

    with pytest.raises(AttributeError):
        version.stage = "production"  # type: ignore[misc]
    assert replace(version, stage="archived").stage == "archived"
