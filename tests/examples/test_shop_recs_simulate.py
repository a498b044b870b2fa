"""The shop-recs simulator: deterministic, the promised schema, stock changes honoured, dirty
rows the contracts catch, and a truth.json whose ceiling is above popularity's floor."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.conftest import load_script

from taxiway.data.contracts import load_contract, validate_frame

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop-recs"
SMALL = {"users": 400, "items": 200, "interactions": 12_000, "seed": 5}


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    return load_script("shop_recs_simulate", SHOP / "simulate.py")


@pytest.fixture(scope="module")
def shop(sim: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    rows = sim.simulate(out, **SMALL)
    for name, count in rows.items():
        assert pq.read_metadata(out / f"{name}.parquet").num_rows == count
    return out


def _one(sql: str) -> Any:
    relation = duckdb.sql(sql)
    assert relation is not None
    (row,) = relation.fetchall()
    return row[0] if len(row) == 1 else row


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes(sim: ModuleType, tmp_path: Path) -> None:
    args = {**SMALL, "interactions": 3_000, "start": date(2025, 1, 1), "end": date(2025, 3, 31)}
    assert sim.simulate(tmp_path / "a", **args) == sim.simulate(tmp_path / "b", **args)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    sim.simulate(tmp_path / "c", **{**args, "seed": 6})
    assert (
        _digests(tmp_path / "c")["interactions.parquet"]
        != _digests(tmp_path / "a")["interactions.parquet"]
    )


def test_the_promised_schema(shop: Path) -> None:
    def types(name: str) -> dict[str, str]:
        return {f.name: str(f.type) for f in pq.read_schema(shop / f"{name}.parquet")}

    assert types("interactions") == {
        "customer_id": "int64",
        "product_id": "string",
        "event": "string",
        "quantity": "int64",
        "occurred_at": "timestamp[us]",
    }
    assert types("products") == {
        "product_id": "string",
        "category": "string",
        "price": "double",
        "in_stock": "bool",
        "updated_at": "timestamp[us]",
    }
    assert types("recalled") == {
        "product_id": "string",
        "recalled_at": "timestamp[us]",
        "reason": "string",
    }
    views, carts, purchases = _one(
        f"""SELECT count(*) FILTER (WHERE event = 'view'), count(*) FILTER (WHERE event = 'cart'),
                   count(*) FILTER (WHERE event = 'purchase')
            FROM '{shop / "interactions.parquet"}'"""
    )
    assert views > carts > purchases > 0


def test_the_catalog_is_a_history_with_stock_changes(shop: Path) -> None:
    products = f"'{shop / 'products.parquet'}'"
    start = datetime(2025, 1, 1)
    catalog, outages, launched, discontinued = _one(
        f"""WITH last AS (SELECT product_id, arg_max(in_stock, updated_at) AS in_stock
                          FROM {products} GROUP BY ALL)
            SELECT (SELECT count(DISTINCT product_id) FROM {products}),
                   (SELECT count(*) FROM {products} WHERE NOT in_stock),
                   (SELECT count(*) FROM (SELECT product_id FROM {products} GROUP BY ALL
                                          HAVING min(updated_at) > TIMESTAMP '{start}')),
                   (SELECT count(*) FROM last WHERE NOT in_stock)"""
    )
    assert catalog == SMALL["items"]
    assert outages > 0.2 * catalog  # many products run out of stock at some point
    assert launched > 0
    assert discontinued > 0
    # every row changes the product's state: no two consecutive rows say the same
    assert (
        _one(
            f"""SELECT count(*) FROM (SELECT in_stock = lag(in_stock) OVER w AS same
                FROM {products} WINDOW w AS (PARTITION BY product_id ORDER BY updated_at))
                WHERE same"""
        )
        == 0
    )


def test_nothing_is_bought_out_of_stock_or_after_a_recall(shop: Path) -> None:
    """Per the catalog as of each event (its newest row at or before it) and the recall list."""
    interactions = f"'{shop / 'interactions.parquet'}'"
    unlisted, out_of_stock, recalled = _one(
        f"""WITH i AS (SELECT * FROM {interactions} WHERE product_id LIKE 'P%'),
            j AS (SELECT i.*, p.in_stock FROM i ASOF LEFT JOIN '{shop / "products.parquet"}' p
                  ON i.product_id = p.product_id AND i.occurred_at >= p.updated_at)
            SELECT count(*) FILTER (WHERE in_stock IS NULL),
                   count(*) FILTER (WHERE NOT in_stock),
                   (SELECT count(*) FROM i JOIN '{shop / "recalled.parquet"}' r
                    USING (product_id) WHERE i.occurred_at >= r.recalled_at)
            FROM j"""
    )
    assert (unlisted, out_of_stock, recalled) == (0, 0, 0)


def test_repeat_purchases_are_rare(shop: Path) -> None:
    pairs, repeated = _one(
        f"""SELECT count(*), count(*) FILTER (WHERE n > 1) FROM (
              SELECT customer_id, product_id, count(*) AS n FROM '{shop / "interactions.parquet"}'
              WHERE event = 'purchase' GROUP BY ALL)"""
    )
    assert repeated < 0.05 * pairs


def test_the_contracts_quarantine_exactly_the_planted_dirty_rows(shop: Path) -> None:
    table = pq.read_table(shop / "interactions.parquet")
    contract = load_contract(SHOP / "contracts" / "interactions.yaml")
    report = validate_frame(table, contract, source="interactions", as_of=datetime(2026, 1, 1))
    assert not report.blocked
    failing = {r.rule: r.failing for r in report.results if r.failing}
    assert set(failing) == {"customer_id.required", "product_id.pattern", "quantity.minimum"}
    assert all(3 <= n < 0.01 * table.num_rows for n in failing.values()), failing
    for name in ("products", "recalled"):
        other = pq.read_table(shop / f"{name}.parquet")
        checked = validate_frame(other, load_contract(SHOP / "contracts" / f"{name}.yaml"))
        assert not checked.blocked
        assert not any(r.failing for r in checked.results), name


def test_truth_ceiling_is_above_the_popularity_floor(shop: Path) -> None:
    truth = json.loads((shop / "truth.json").read_text())
    assert truth["k"] == 10
    assert truth["users_evaluated"] > 0.5 * SMALL["users"]
    for metric in ("recall@10", "ndcg@10"):
        floor, ordered, ceiling = (
            truth[key][metric] for key in ("popularity", "ceiling_ordered", "ceiling")
        )
        assert 0 < floor < ordered <= ceiling <= 1
    assert truth["ceiling"]["recall@10"] > 2 * truth["popularity"]["recall@10"]
    cutoff = datetime.fromisoformat(truth["cutoff"])
    assert datetime(2025, 11, 1) < cutoff < datetime(2025, 12, 31)


def test_ordering_caps_each_category(sim: ModuleType, shop: Path) -> None:
    """truth.json's ordered ceiling keeps at most MAX_PER_CATEGORY per category in a top 10."""
    rng = np.random.default_rng(0)
    category = np.repeat(np.arange(5), 8)  # 40 items, 5 categories
    scores = rng.random((50, 40))
    split = sim.Split(
        cutoff=0,
        users=np.arange(50),
        relevant=np.zeros((50, 40), bool),
        candidate=rng.random((50, 40)) < 0.9,
        bought=np.zeros((50, 40), bool),
    )
    kept = sim.ordered(scores, split, category) > -np.inf
    assert (kept.sum(axis=1) == 10).all()
    assert not (kept & ~split.candidate).any()
    for c in range(5):
        assert (kept[:, category == c].sum(axis=1) <= sim.MAX_PER_CATEGORY).all()


def test_the_cli_rejects_a_too_small_world(sim: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        sim.main(["--out", str(tmp_path), "--users", "5"])
