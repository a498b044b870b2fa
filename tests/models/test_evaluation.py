"""Per-group metrics of a version: which training-set column a declared segment reads, and the
time slices and segments recorded beside the overall metrics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from taxiway.errors import ModelError
from taxiway.models.evaluation import group_metrics, segment_column
from taxiway.models.metrics import score

COLUMNS = ["customer_id", "timestamp", "customer_profile__segment", "orders__region", "x__region"]


def test_a_segment_is_a_column_or_the_one_column_ending_in_its_name() -> None:
    assert segment_column("customer_id", COLUMNS) == "customer_id"
    assert segment_column("segment", COLUMNS) == "customer_profile__segment"


def test_an_unknown_or_ambiguous_segment_names_the_columns_to_choose_from() -> None:
    with pytest.raises(ModelError, match="'tier', which is no column") as unknown:
        segment_column("tier", COLUMNS)
    assert "customer_profile__segment" in (unknown.value.fix or "")
    with pytest.raises(ModelError, match=r"several columns \(orders__region, x__region\)"):
        segment_column("region", COLUMNS)


def test_group_metrics_cover_every_validation_row_once() -> None:
    rng = np.random.default_rng(0)
    n = 600
    times = np.datetime64("2025-06-02") + (np.arange(n) % 8).astype("timedelta64[D]") * 7
    y = rng.integers(0, 2, n).astype(float)
    model = y + rng.normal(size=n)
    base = y + rng.normal(scale=2, size=n)
    segments = rng.choice(["vip", "regular"], n).tolist()
    table = pa.table({"timestamp": pa.array(times), "customer_profile__segment": segments})
    got = group_metrics(["segment"], table, y, model, base, "roc_auc")
    assert sum(r["rows"] for r in got["time_slices"]) == n
    segment = got["segments"]["segment"]
    assert segment["column"] == "customer_profile__segment"
    assert sum(r["rows"] for r in segment["rows"]) == n
    vip = table.column("customer_profile__segment").to_numpy(zero_copy_only=False) == "vip"
    row = next(r for r in segment["rows"] if r["value"] == "vip")
    assert row["model"] == pytest.approx(score("roc_auc", y[vip], model[vip]))
    assert group_metrics([], table, y, None, base, "roc_auc") == {}
