"""The retail simulator's trouble (``--trouble-from`` with ``--drift``, ``--format-break``,
``--concept-change``): exactly the rows from the date on change, and only as promised."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SIMULATE = Path(__file__).resolve().parents[2] / "examples" / "retail" / "simulate.py"
ONE_YEAR = {"start": date(2025, 1, 1), "end": date(2025, 12, 31)}
SINCE = date(2025, 10, 1)
# Content hashes of the simulator's tables before trouble existed (commit 6cea261): 200
# customers, seed 7, the default two years; and 120 customers over 2025.
BEFORE = {
    (200, "default"): {
        "customers": "fc312dd2a3c8df3d",
        "orders": "b0f2c24c90b21143",
        "products": "a97c485d6482b6a8",
        "sessions": "812152c4c02a0866",
    },
    (120, "2025"): {
        "customers": "b0038ceb3b37a76d",
        "orders": "e95925470147f596",
        "products": "cf38d8b6861f7ca5",
        "sessions": "ee7949c4d527ff8c",
    },
}


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("retail_simulate_trouble", SIMULATE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _content(folder: Path) -> dict[str, str]:
    """A hash of each table's values (not of the Parquet bytes, which name the writer)."""
    return {
        path.stem: hashlib.sha256(repr(pq.read_table(path).to_pydict()).encode()).hexdigest()[:16]
        for path in sorted(folder.glob("*.parquet"))
    }


def _rows(sql: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(sql)
    assert relation is not None
    return relation.fetchall()


def _table(folder: Path, name: str) -> pa.Table:
    return pq.read_table(folder / f"{name}.parquet")


def _late(table: pa.Table, column: str) -> np.ndarray:
    since = np.datetime64(SINCE.isoformat(), "us")
    return table[column].to_numpy() >= since


@pytest.fixture(scope="module")
def plain(sim: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    sim.simulate(out, customers=300, seed=5, **ONE_YEAR)
    return out


def _troubled(sim: ModuleType, folder: Path, **trouble: Any) -> Path:
    sim.simulate(folder, customers=300, seed=5, **ONE_YEAR, trouble=sim.Trouble(SINCE, **trouble))
    return folder


def test_without_trouble_the_tables_are_those_of_before(sim: ModuleType, tmp_path: Path) -> None:
    sim.simulate(tmp_path / "a", customers=200)
    assert _content(tmp_path / "a") == BEFORE[(200, "default")]
    sim.simulate(tmp_path / "b", customers=120, **ONE_YEAR, trouble=sim.Trouble(SINCE))
    assert _content(tmp_path / "b") == BEFORE[(120, "2025")]
    sim.main(["--out", str(tmp_path / "c"), "--customers", "120", "--start", "2025-01-01"])
    assert _content(tmp_path / "c") == BEFORE[(120, "2025")]


def test_drift_multiplies_exactly_the_rows_from_the_date_on(
    sim: ModuleType, plain: Path, tmp_path: Path
) -> None:
    out = _troubled(sim, tmp_path, drift={"amount": 3.0, "pages": 0.3})
    for name, column, at in (
        ("orders", "amount", "ordered_at"),
        ("sessions", "pages", "started_at"),
    ):
        before, after = _table(plain, name), _table(out, name)
        assert after.drop([column]) == before.drop([column])  # every other value as it was
        late = _late(before, at)
        assert 0 < late.sum() < len(late)
        old = before[column].to_numpy(zero_copy_only=False).astype(float)
        new = after[column].to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_array_equal(new[~late], old[~late])
        if column == "amount":
            np.testing.assert_array_equal(new[late], np.round(old[late] * 3.0, 2))
            assert after[column].null_count == before[column].null_count
        else:
            np.testing.assert_array_equal(new[late], np.maximum(np.round(old[late] * 0.3), 1))
            assert new[late].mean() < 0.5 * old[late].mean()


def test_format_break_writes_cents_from_the_date_on(
    sim: ModuleType, plain: Path, tmp_path: Path
) -> None:
    out = _troubled(sim, tmp_path, format_break=("amount",))
    before, after = _table(plain, "orders"), _table(out, "orders")
    late = _late(before, "ordered_at")
    old = before["amount"].to_numpy(zero_copy_only=False)
    new = after["amount"].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(new[~late], old[~late])
    np.testing.assert_array_equal(new[late], np.round(old[late] * 100))
    assert _content(out)["sessions"] == _content(plain)["sessions"]


def test_the_command_line_writes_what_the_function_writes(sim: ModuleType, tmp_path: Path) -> None:
    trouble = sim.Trouble(SINCE, drift={"quantity": 2.0}, format_break=("amount",))
    sim.simulate(tmp_path / "api", customers=120, **ONE_YEAR, trouble=trouble)
    argv = ["--out", str(tmp_path / "cli"), "--customers", "120", "--start", "2025-01-01"]
    argv += ["--trouble-from", "2025-10-01", "--drift", "quantity=2", "--format-break", "amount"]
    sim.main(argv)
    assert _content(tmp_path / "cli") == _content(tmp_path / "api")
    assert _content(tmp_path / "cli")["orders"] != BEFORE[(120, "2025")]["orders"]


def test_unknown_trouble_is_refused_with_what_is_known(sim: ModuleType) -> None:
    with pytest.raises(ValueError, match="--drift takes amount, quantity, pages"):
        sim.Trouble(SINCE, drift={"price": 2.0})
    with pytest.raises(ValueError, match="positive"):
        sim.Trouble(SINCE, drift={"amount": -1.0})
    with pytest.raises(SystemExit):
        sim.main(["--drift", "amount=3"])  # no --trouble-from


def _relation(folder: Path) -> dict[str, float]:
    """After the date: order amounts, sessions per customer, and how well recent activity
    ranks the customers who churn (ROC AUC of "fewer orders and sessions in the last 30 days"
    for "no order in the next 60", over the customers active in those 30 days)."""
    orders, sessions = folder / "orders.parquet", folder / "sessions.parquet"
    rows = _rows(f"""
        with spine as (
            select unnest(generate_series(timestamp '2025-07-07', timestamp '2025-10-27',
                                          interval 7 day)) as t),
        events as (
            select customer_id as c, ordered_at as ts, 1 as is_order from '{orders}'
            where customer_id is not null
            union all select customer_id, started_at, 0 from '{sessions}')
        select
            sum(is_order) filter (where ts < t and ts >= t - interval 30 day) as orders30,
            count(*) filter (where ts < t and ts >= t - interval 30 day) as events30,
            (count(*) filter (where is_order = 1 and ts >= t and ts < t + interval 60 day)) = 0
        from spine, events group by t, c having events30 > 0""")
    score = np.array([-(o or 0) - 0.3 * e for o, e, _ in rows])
    churned = np.array([y for *_, y in rows], dtype=bool)
    ranks = np.argsort(np.argsort(score)) + 1.0
    n1, n0 = churned.sum(), (~churned).sum()
    auc = (ranks[churned].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    stats = _rows(f"""
        select (select avg(amount) from '{orders}' where ordered_at >= '2025-07-01'),
               (select count(*) / count(distinct customer_id) from '{sessions}'
                where started_at >= '2025-07-01')""")[0]
    return {
        "auc": float(auc),
        "churn": float(churned.mean()),
        "amount": stats[0],
        "sessions": stats[1],
    }


def test_concept_change_moves_the_relation_not_the_inputs(sim: ModuleType, tmp_path: Path) -> None:
    args = {"customers": 1_500, "seed": 3, **ONE_YEAR}
    sim.simulate(tmp_path / "plain", **args)
    sim.simulate(
        tmp_path / "changed", **args, trouble=sim.Trouble(date(2025, 7, 1), concept_change=True)
    )
    plain, changed = _relation(tmp_path / "plain"), _relation(tmp_path / "changed")
    assert abs(changed["amount"] / plain["amount"] - 1) < 0.05
    assert abs(changed["sessions"] / plain["sessions"] - 1) < 0.05
    assert changed["auc"] < plain["auc"] - 0.03  # 0.79 -> 0.74 here
    # before the date, every row is the one written without trouble
    for name, at in (("orders", "ordered_at"), ("sessions", "started_at")):
        early = f"select * from '{{}}/{name}.parquet' where {at} < '2025-07-01' order by all"
        assert _rows(early.format(tmp_path / "plain")) == _rows(early.format(tmp_path / "changed"))
