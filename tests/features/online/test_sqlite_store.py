"""SQLite specifics: one row per key, stores of the earlier layout migrated by materialize, and
a read deadline that a lock held by another process cannot outlast."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from tests.conftest import retail_shop, sqlite_locked

from taxiway.cli import main
from taxiway.errors import FeatureError
from taxiway.features.online import SqliteStore, ViewValues
from taxiway.features.online._codec import to_epoch

AT = datetime(2025, 1, 6, 9, 30, 15, 123456, tzinfo=UTC)

# the layout taxiway wrote before feature_vectors: one row per key and view
OLD_SCHEMA = """
CREATE TABLE online_features (
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    view TEXT NOT NULL,
    payload BLOB NOT NULL,
    event_time REAL,
    as_of REAL NOT NULL,
    PRIMARY KEY (entity, key, view)
) WITHOUT ROWID
"""


def views_of(i: int) -> list[ViewValues]:
    return [
        ViewValues("orders", {"orders__count": i, "orders__spend": i * 0.1}, AT, AT),
        ViewValues("profile", {"profile__country": "PL" if i % 2 else "Zoë"}, None, AT),
    ]


def write_old_layout(path: Path, rows: list[tuple[str, str, ViewValues]]) -> None:
    """A store file as the earlier taxiway wrote it (WAL, one row per key and view)."""
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA journal_mode = WAL")
        old.execute(OLD_SCHEMA)
        old.executemany(
            "INSERT INTO online_features VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    entity,
                    key,
                    v.view,
                    orjson.dumps(v.values),
                    None if v.event_time is None else to_epoch(v.event_time),
                    to_epoch(v.as_of),
                )
                for entity, key, v in rows
            ],
        )


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "online.sqlite"
    write_old_layout(
        path,
        [("customer", str(i), v) for i in range(300) for v in views_of(i)]
        + [("store", "1", ViewValues("sales", {"sales__total": 9.5}, AT, AT))],
    )
    return path


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}


def test_one_row_per_key_holds_every_view(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "online.sqlite")
    store.write("customer", [(str(i), v) for i in range(10) for v in views_of(i)])
    store.close()

    with sqlite3.connect(tmp_path / "online.sqlite") as raw:
        rows = raw.execute("SELECT key, views FROM feature_vectors WHERE entity = 'customer'")
        stored = {key: orjson.loads(views) for key, views in rows}
    assert len(stored) == 10
    assert list(stored["3"]) == ["orders", "profile"]  # name order
    assert stored["3"]["orders"] == {
        "values": {"orders__count": 3, "orders__spend": 3 * 0.1},
        "event_time": to_epoch(AT),
        "as_of": to_epoch(AT),
    }


def test_a_store_of_the_earlier_layout_is_refused_by_reads_with_the_fix(old_store: Path) -> None:
    store = SqliteStore(old_store)
    with pytest.raises(FeatureError, match="earlier taxiway versions") as raised:
        store.read("customer", ["1"])
    assert "taxiway features materialize" in (raised.value.fix or "")
    store.close()


def test_the_first_write_migrates_the_earlier_layout_keeping_every_value(
    old_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = SqliteStore(old_store)  # a serving process that opened the file before
    with pytest.raises(FeatureError):
        reader.read("customer", ["1"])
    writer = SqliteStore(old_store)
    later = AT + timedelta(days=1)

    with caplog.at_level(logging.WARNING, logger="taxiway.features"):
        writer.write("customer", [("7", ViewValues("orders", {"orders__count": 70}, later, later))])

    assert writer.migrated_keys == 301
    assert "migrated 601 rows into one row per key for 301 keys" in caplog.text
    assert tables(old_store) >= {"feature_vectors"}
    assert "online_features" not in tables(old_store)
    got = reader.read("customer", [str(i) for i in range(300)])  # sees the migration
    assert got["12"] == views_of(12)
    assert got["7"] == [
        ViewValues("orders", {"orders__count": 70}, later, later),
        views_of(7)[1],
    ]
    assert reader.read("store", ["1"]) == {
        "1": [ViewValues("sales", {"sales__total": 9.5}, AT, AT)]
    }
    reader.close()
    writer.close()


def test_a_failed_write_leaves_the_earlier_layout_whole(old_store: Path) -> None:
    store = SqliteStore(old_store)
    with pytest.raises(FeatureError, match="orders__when"):
        store.write("customer", [("1", ViewValues("orders", {"orders__when": AT}, AT, AT))])

    assert "online_features" in tables(old_store)
    with sqlite3.connect(old_store) as raw:
        assert raw.execute("SELECT count(*) FROM online_features").fetchone() == (601,)
        assert raw.execute("SELECT count(*) FROM feature_vectors").fetchone() == (0,)
    store.close()


def test_materialize_migrates_an_earlier_store_and_the_skew_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(retail_shop(tmp_path, customers=150))
    as_of = ["--as-of", "2025-12-31"]
    assert main(["features", "materialize", "-f", spec, *as_of]) == 0
    path = tmp_path / ".taxiway" / "online.sqlite"
    current = SqliteStore(path)
    with sqlite3.connect(path) as raw:
        keys = [key for (key,) in raw.execute("SELECT key FROM feature_vectors")]
    before = current.read("customer", keys)
    current.close()
    # the same values, rewritten as the earlier taxiway would have stored them
    path.unlink()
    write_old_layout(path, [("customer", k, v) for k, views in before.items() for v in views])
    capsys.readouterr()

    assert main(["features", "materialize", "-f", spec, *as_of, "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)

    assert report["migrated_keys"] == len(before)
    migrated = SqliteStore(path)
    assert migrated.read("customer", keys) == before
    migrated.close()
    assert main(["features", "skew", "-f", spec, *as_of]) == 0


def test_a_read_waits_for_a_lock_only_as_long_as_its_deadline(tmp_path: Path) -> None:
    path = tmp_path / "online.sqlite"
    writer = SqliteStore(path)
    writer.write("customer", [("1", v) for v in views_of(1)])
    writer.close()
    with sqlite_locked(path) as release:
        reader = SqliteStore(path, read_timeout_ms=20)
        began = time.perf_counter()
        with pytest.raises(FeatureError, match="locked") as raised:
            reader.read("customer", ["1"])
        waited = time.perf_counter() - began
        release()

    assert "at most 20 ms" in raised.value.message
    assert 0.015 < waited < 1.0  # the deadline, never the 5 s a write would wait
    assert reader.read("customer", ["1"]) == {"1": views_of(1)}  # the lock is gone
    reader.close()
