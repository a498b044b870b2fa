"""Requests are encoded exactly as the training set was."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.errors import ModelError
from taxiway.models.encoding import FeatureEncoder


def _table() -> pa.Table:
    return pa.table(
        {
            "spend": pa.array([10.5, None, 3], pa.float64()),
            "orders": pa.array([1, 2, None], pa.int64()),
            "vip": pa.array([True, False, None]),
            "segment": pa.array(["b", "a", None]),
            "seen": pa.array(
                [datetime(2024, 1, 1), None, datetime(2024, 1, 2)], pa.timestamp("us")
            ),
        }
    )


def test_one_row_at_a_time_equals_the_whole_table() -> None:
    table = _table()
    encoder = FeatureEncoder.fit(table, table.column_names)
    whole = encoder.encode_table(table)
    one_by_one = encoder.encode_rows(table.to_pylist())
    assert np.array_equal(whole, one_by_one, equal_nan=True)
    assert encoder.kinds == ("numeric", "numeric", "boolean", "categorical", "timestamp")


def test_json_round_trip_keeps_the_encoding() -> None:
    table = _table()
    encoder = FeatureEncoder.fit(table, table.column_names)
    again = FeatureEncoder.from_dict(encoder.as_dict())
    assert np.array_equal(again.encode_table(table), encoder.encode_table(table), equal_nan=True)


def test_unseen_categories_and_absent_inputs_are_missing() -> None:
    encoder = FeatureEncoder.fit(_table(), ["segment", "spend"])
    row = encoder.encode_one({"segment": "zzz"})
    assert np.isnan(row).all()


def test_aware_and_naive_timestamps_agree() -> None:
    encoder = FeatureEncoder.fit(_table(), ["seen"])
    naive = encoder.encode_one({"seen": datetime(2024, 1, 1)})[0]
    aware = encoder.encode_one({"seen": datetime(2024, 1, 1, tzinfo=UTC)})[0]
    text = encoder.encode_one({"seen": "2024-01-01T00:00:00"})[0]
    assert naive == aware == text == encoder.encode_table(_table())[0, 0]


def test_a_wrong_type_names_the_feature() -> None:
    encoder = FeatureEncoder.fit(_table(), ["spend"])
    with pytest.raises(ModelError, match="`spend` expects a numeric value"):
        encoder.encode_one({"spend": [1, 2]})


def test_a_missing_training_column_is_an_error_with_a_fix() -> None:
    with pytest.raises(ModelError, match="no column nope"):
        FeatureEncoder.fit(_table(), ["nope"])


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "c", ""]),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
)


@given(st.fixed_dictionaries({}, optional=dict.fromkeys(_table().column_names, _VALUES)))
def test_the_fast_path_encodes_like_encode_value(values: dict[str, object]) -> None:
    """``encode_one``'s shortcuts give what ``encode_value`` gives, or the same error."""
    encoder = FeatureEncoder.fit(_table(), _table().column_names)
    expected: list[float] = []
    try:
        for name, kind in zip(encoder.features, encoder.kinds, strict=True):
            expected.append(encoder.encode_value(name, kind, values.get(name)))
    except ModelError as error:
        with pytest.raises(ModelError, match=re.escape(str(error.message))):
            encoder.encode_one(values)
        return
    np.testing.assert_array_equal(encoder.encode_one(values), np.array(expected))
