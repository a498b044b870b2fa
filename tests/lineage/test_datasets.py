"""Datasets named as OpenLineage names them, and never a secret in a name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.data.contracts.report import RuleResult
from taxiway.lineage.datasets import (
    assertions_of,
    online_store_dataset,
    source_dataset,
    url_namespace,
)
from taxiway.spec.loader import load_spec

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: shop-orders
version: 2.1.0
status: active
schema:
  - name: orders
    properties:
      - {name: customer_id, logicalType: integer, physicalType: bigint, required: true}
      - {name: at, logicalType: timestamp}
"""


def _spec(tmp_path: Path, sources: str, extra: str = "") -> Path:
    (tmp_path / "orders.yaml").write_text(CONTRACT)
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(f"name: shop\nsources:\n{sources}{extra}")
    return spec


@given(
    user=st.text("abcdefghij_", min_size=1, max_size=8),
    password=st.text("ABCxyz0123!$%*-_~", min_size=4, max_size=16),
    port=st.integers(1, 65535),
)
def test_a_namespace_keeps_host_and_port_and_never_the_password(
    user: str, password: str, port: int
) -> None:
    url = f"postgresql://{user}:{password}@db.internal:{port}/shop?password={password}"
    assert url_namespace(url) == f"postgres://db.internal:{port}"


def test_a_file_source_is_its_absolute_path_with_its_contract(tmp_path: Path) -> None:
    spec = load_spec(
        _spec(
            tmp_path, "  orders: {kind: file, path: o.csv, timestamp: at, contract: orders.yaml}\n"
        )
    )
    dataset = source_dataset(spec, "orders")
    assert (dataset.namespace, dataset.name) == ("file", str(tmp_path / "o.csv"))
    assert [(f.name, f.type) for f in dataset.fields] == [
        ("customer_id", "bigint"),
        ("at", "timestamp"),
    ]
    assert dataset.contract is not None
    assert (dataset.contract.id, dataset.contract.version) == ("shop-orders", "2.1.0")
    assert dataset.contract.sha256
    assert len(dataset.contract.sha256) == 16


def test_a_postgres_source_read_with_a_password_names_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_LINEAGE_ORDERS_URL", "postgresql://reader:Hunter2pw@db.internal/shop")
    spec = load_spec(
        _spec(
            tmp_path,
            "  orders: {kind: postgres, url: '${TW_LINEAGE_ORDERS_URL}', table: orders}\n",
        )
    )
    dataset = source_dataset(spec, "orders")
    assert (dataset.namespace, dataset.name) == (
        "postgres://db.internal:5432",
        "shop.public.orders",
    )
    assert "Hunter2pw" not in repr(dataset)


def test_an_unresolvable_url_falls_back_to_its_reference(tmp_path: Path) -> None:
    spec = load_spec(
        _spec(
            tmp_path,
            "  orders: {kind: postgres, url: '${TW_LINEAGE_UNSET_URL}', query: 'select 1'}\n",
        )
    )
    dataset = source_dataset(spec, "orders")
    assert dataset.namespace == "postgres://${TW_LINEAGE_UNSET_URL}"
    assert dataset.name.startswith("unknown.query:")


def test_the_sqlite_online_store_is_a_file_and_redis_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = "  orders: {kind: file, path: o.csv, timestamp: at}\n"
    spec = load_spec(_spec(tmp_path, sources))
    assert (
        online_store_dataset(spec, tmp_path / "state").name
        == f"{tmp_path}/state/online.sqlite#shop"
    )
    monkeypatch.setenv("TW_LINEAGE_REDIS", "redis://:Hunter2pw@cache:6380/0")
    spec = load_spec(
        _spec(tmp_path, sources, "online_store: {kind: redis, url: '${TW_LINEAGE_REDIS}'}\n")
    )
    dataset = online_store_dataset(spec, tmp_path)
    assert (dataset.namespace, dataset.name) == ("redis://cache:6380", "taxiway:shop")


def test_contract_results_become_assertions() -> None:
    results = [
        RuleResult("required", "customer_id", "block", True, 0, 0.0, "= 0"),
        RuleResult("unique", "customer_id", "warn", False, 3, 0.01, "= 0"),
    ]
    assert [
        (a.assertion, a.column, a.success, a.severity, a.actual) for a in assertions_of(results)
    ] == [
        ("required", "customer_id", True, "block", "0 failing rows"),
        ("unique", "customer_id", False, "warn", "3 failing rows"),
    ]
