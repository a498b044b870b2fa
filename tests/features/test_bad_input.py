"""Bad feature definitions end in one clear error, located in the spec or naming the column."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiway.errors import FeatureError, SpecError
from taxiway.features.training_set import build_training_set
from taxiway.spec import Project, load_spec_text

BASE = """
name: shop
sources:
  orders: {kind: file, path: orders.parquet, timestamp: at}
entities: {customer: customer_id}
spine: {every: 1d, start: 2025-01-01, end: 2025-01-03, source: orders}
label: {name: again, kind: any_event, source: orders, entity: customer, horizon: 1d}
"""


def project(tmp_path: Path, features: str) -> Project:
    pq.write_table(
        pa.table(
            {
                "customer_id": [1, 2],
                "at": pa.array([1735689600_000000, 1735776000_000000], pa.timestamp("us")),
                "amount": [1.0, 2.0],
            }
        ),
        tmp_path / "orders.parquet",
    )
    text = BASE + features
    return Project(
        load_spec_text(text, "taxiway.yaml", base_dir=tmp_path),
        tmp_path / "taxiway.yaml",
        tmp_path / ".s",
    )


def test_aggregate_over_a_missing_column_names_it(tmp_path: Path) -> None:
    p = project(
        tmp_path,
        "features:\n  s: {source: orders, entity: customer, aggregate: {t: sum(price)}, windows: [7d]}\n",
    )
    with pytest.raises(FeatureError) as caught:
        build_training_set(p, tmp_path / "t.parquet")
    assert "price" in str(caught.value)
    assert "it has: amount, at, customer_id" in str(caught.value)


def test_entity_key_missing_from_a_source_is_named(tmp_path: Path) -> None:
    text = BASE.replace("{customer: customer_id}", "{customer: client_id}")
    pq.write_table(
        pa.table({"customer_id": [1], "at": pa.array([1735689600_000000], pa.timestamp("us"))}),
        tmp_path / "orders.parquet",
    )
    p = Project(
        load_spec_text(text, "taxiway.yaml", base_dir=tmp_path),
        tmp_path / "taxiway.yaml",
        tmp_path / ".s",
    )
    with pytest.raises(FeatureError, match="client_id"):
        build_training_set(p, tmp_path / "t.parquet")


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        (
            "features:\n  s: {source: orders, entity: customer, aggregate: {t: sum(amount)}, windows: [7 days]}\n",
            "duration",
        ),
        ("features:\n  s: {source: orders, entity: customer, static: [amount]}\n", "static view"),
        (
            "features:\n  s: {source: orders, entity: customer, latest: [amount], ttl: 0}\n",
            "longer than 0",
        ),
    ],
)
def test_spec_errors_at_load(features: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        load_spec_text(BASE + features)


def test_horizon_that_does_not_parse() -> None:
    with pytest.raises(SpecError, match="duration"):
        load_spec_text(BASE.replace("horizon: 1d", "horizon: soon"))
