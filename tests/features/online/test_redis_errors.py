"""Redis specifics: clear failures fast, one round trip per read, and a prefix that fences keys."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from tests.conftest import require_service

from taxiway.errors import FeatureError
from taxiway.features.online import RedisStore, SqliteStore, ViewValues, open_online_store
from taxiway.spec.models import RedisOnlineStore

AT = datetime(2025, 1, 6, tzinfo=UTC)
LIVE = "redis://127.0.0.1:6379/0"


def orders(count: int) -> ViewValues:
    return ViewValues("orders", {"orders__count": count}, AT, AT)


@pytest.fixture
def live() -> Iterator[RedisStore]:
    """A store on the real server under a fresh prefix, cleared afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisStore(LIVE, f"tw-test:{uuid4().hex}", timeout_ms=2_000)
    yield store
    store.clear()
    store.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """A plain client of the real server, to look behind the store's back."""
    require_service("Redis", "127.0.0.1", 6379)
    client = redis.Redis.from_url(LIVE)
    yield client
    client.close()


# ---------------------------------------------------------------------- failures


def test_a_refused_connection_fails_fast_naming_the_server_never_the_password() -> None:
    store = RedisStore("redis://reader:s3cret@127.0.0.1:1/0", "tw-test:x", timeout_ms=50)
    started = time.perf_counter()

    with pytest.raises(FeatureError) as caught:
        store.read("customer", ["1"])

    assert time.perf_counter() - started < 1.0
    text = str(caught.value)
    assert "Redis at 127.0.0.1:1 refused the connection" in text
    assert "fix: start Redis there, or fix online_store.url" in text
    assert "s3cret" not in text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    store.close()


def test_the_error_names_the_variable_the_url_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")
    spec = RedisOnlineStore(kind="redis", url="${TW_TEST_REDIS_URL}")
    store = open_online_store(spec, state_dir=Path(), namespace="repurchase")

    with pytest.raises(FeatureError, match="environment variable TW_TEST_REDIS_URL") as caught:
        store.write("customer", [("1", orders(1))])

    assert "s3cret" not in str(caught.value)
    store.close()


def test_a_server_that_does_not_answer_times_out_within_timeout_ms() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never replies
        port = silent.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", "tw-test:x", timeout_ms=50)
        started = time.perf_counter()

        with pytest.raises(FeatureError, match=r"did not answer within 50 ms") as caught:
            store.read("customer", ["1"])

        assert time.perf_counter() - started < 1.0
        assert "online_store.timeout_ms" in str(caught.value)
        store.close()


def test_a_url_that_is_not_redis_is_refused_at_open() -> None:
    with pytest.raises(FeatureError, match="not a Redis URL") as caught:
        RedisStore("postgresql://u:s3cret@db/prod", "tw-test:x", timeout_ms=50)

    assert "redis://127.0.0.1:6379/0" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_wrong_credentials_are_named_as_such() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisStore("redis://nobody:s3cret@127.0.0.1:6379/0", "tw-test:x", timeout_ms=2_000)

    with pytest.raises(FeatureError, match="refused the credentials") as caught:
        store.read("customer", ["1"])

    assert "s3cret" not in str(caught.value)
    assert "fix the user and password in online_store.url" in str(caught.value)
    store.close()


def test_a_foreign_key_under_the_prefix_is_reported_without_its_values(
    live: RedisStore, raw: redis.Redis
) -> None:
    live.write("customer", [("2", orders(2))])
    raw.set(f"{live.prefix}:customer:1", "jane@x.org is not JSON")

    with pytest.raises(FeatureError, match="not a feature vector") as written:
        live.write("customer", [("1", ViewValues("orders", {"orders__pii": "jane@x.org"}, AT, AT))])
    with pytest.raises(FeatureError, match="not a feature vector") as read:
        live.read("customer", ["1", "2"])

    for caught in (written, read):
        assert "jane@x.org" not in str(caught.value)
        assert "online_store.prefix" in str(caught.value)


def test_the_package_imports_and_explains_without_redis_py() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from pathlib import Path\n"
        "import taxiway.features.online as online\n"
        "from taxiway.errors import FeatureError\n"
        "from taxiway.spec.models import RedisOnlineStore\n"
        "spec = RedisOnlineStore(kind='redis', url='redis://127.0.0.1:6379/0')\n"
        "try:\n"
        "    online.open_online_store(spec, state_dir=Path('.'), namespace='x')\n"
        "except FeatureError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert "pip install 'taxiway[redis]'" in result.stdout


# ---------------------------------------------------------------------- round trips


def _counting(calls: list[str], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return method(*args, **kwargs)

    return wrapper


def test_reading_100_keys_is_one_command_sent_once(
    live: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    live.write("customer", [(str(i), orders(i)) for i in range(100)])
    # neither the connection's handshake nor loading the read script is the read's cost
    live.read("customer", ["warm-up", "too"])
    calls: list[str] = []
    for cls, name in (
        (redis.connection.ConnectionPool, "get_connection"),
        (redis.connection.AbstractConnection, "send_packed_command"),
    ):
        monkeypatch.setattr(cls, name, _counting(calls, name, getattr(cls, name)))

    got = live.read("customer", [str(i) for i in range(100)])

    assert len(got) == 100
    assert calls == ["get_connection", "send_packed_command"]


# ---------------------------------------------------------------------- the prefix fence


def test_clear_deletes_only_keys_under_its_own_prefix(raw: redis.Redis) -> None:
    base = f"tw-test:{uuid4().hex}"
    globby = RedisStore(LIVE, f"{base}:[a]*", timeout_ms=2_000)
    neighbours = [f"{base}:a:customer:1", f"{base}:[a]*x:customer:1", f"{base}:[a]*:other"]
    raw.mset(dict.fromkeys(neighbours, "kept"))
    try:
        globby.write("customer", [("1", orders(1))])
        globby.write("store", [("1", orders(2))])

        globby.clear("customer")
        assert globby.read("customer", ["1"]) == {}
        assert globby.read("store", ["1"]) == {"1": [orders(2)]}

        globby.clear()
        assert globby.read("store", ["1"]) == {}
        assert raw.exists(*neighbours) == len(neighbours) - 1  # only `…:other` was under it
    finally:
        raw.delete(*neighbours)
        globby.clear()
        globby.close()


def test_keys_are_one_json_string_per_entity_key_equal_to_the_sqlite_row(
    live: RedisStore, raw: redis.Redis, tmp_path: Path
) -> None:
    rows = [("a|b", ViewValues("profile", {}, None, AT)), ("a|b", orders(1))]
    live.write("customer", rows)
    sqlite = SqliteStore(tmp_path / "online.sqlite")
    sqlite.write("customer", rows)

    name = f"{live.prefix}:customer:a|b"
    assert raw.type(name) == b"string"
    sqlite.close()
    with sqlite3.connect(tmp_path / "online.sqlite") as connection:
        [(row,)] = connection.execute("SELECT views FROM feature_vectors").fetchall()
    connection.close()
    assert raw.get(name) == row
    assert list(json.loads(row)) == ["orders", "profile"]
