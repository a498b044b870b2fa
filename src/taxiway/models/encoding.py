"""Feature values → the float matrix a model scores, the same way in training and serving.

Numbers become float64 (null → NaN), booleans 0/1, timestamps seconds since the epoch, and
text a category code from a vocabulary fixed on the training rows (an unseen value → NaN,
which every supported algorithm treats as missing). The encoder is saved as JSON next to the
model, so the service encodes a request exactly as the training set was encoded.

>>> import pyarrow as pa
>>> table = pa.table({"spend": [10.0, None, 3.5], "segment": ["vip", "new", "vip"]})
>>> encoder = FeatureEncoder.fit(table, ["spend", "segment"])
>>> encoder.kinds, encoder.vocabularies
(('numeric', 'categorical'), {'segment': ('new', 'vip')})
>>> encoder.encode_table(table).tolist()
[[10.0, 1.0], [nan, 0.0], [3.5, 1.0]]
>>> encoder.encode_one({"spend": 7, "segment": "gold"}).tolist()
[7.0, nan]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taxiway.errors import ModelError

__all__ = ["FeatureEncoder", "Kind"]

Kind = Literal["numeric", "boolean", "timestamp", "categorical"]
_MAX_CATEGORIES = 1_000


def _kind(data_type: pa.DataType) -> Kind:
    if pa.types.is_boolean(data_type):
        return "boolean"
    if (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_null(data_type)
    ):
        return "numeric"
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return "timestamp"
    return "categorical"


@dataclass(frozen=True)
class FeatureEncoder:
    """How each input becomes one float column; JSON-serializable."""

    features: tuple[str, ...]
    kinds: tuple[Kind, ...]
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, table: pa.Table, features: Sequence[str]) -> FeatureEncoder:
        """Kinds from the column types; vocabularies (sorted) from ``table``'s values."""
        missing = [name for name in features if name not in table.column_names]
        if missing:
            raise ModelError(
                f"the training set has no column {', '.join(missing)}",
                fix="rebuild the training set (`taxiway train --rebuild`) or fix model.features",
            )
        kinds: list[Kind] = []
        vocabularies: dict[str, tuple[str, ...]] = {}
        for name in features:
            kind = _kind(table.schema.field(name).type)
            kinds.append(kind)
            if kind == "categorical":
                values = pc.unique(pc.cast(table.column(name), pa.string())).drop_null()
                vocabulary = tuple(sorted(str(v) for v in values.to_pylist()))
                if len(vocabulary) > _MAX_CATEGORIES:
                    raise ModelError(
                        f"feature `{name}` has {len(vocabulary):,} distinct text values: too "
                        "many to encode as categories",
                        fix=f"leave `{name}` out of model.features, or aggregate it in a view",
                    )
                vocabularies[name] = vocabulary
        return cls(tuple(features), tuple(kinds), vocabularies)

    @property
    def categorical(self) -> list[int]:
        """Column indices of the categorical inputs (for the algorithms that use them)."""
        return [i for i, kind in enumerate(self.kinds) if kind == "categorical"]

    def encode_table(self, table: pa.Table) -> np.ndarray:
        """Every row of ``table`` as a float64 matrix, columns in :attr:`features` order."""
        out = np.empty((table.num_rows, len(self.features)), dtype=np.float64)
        for index, (name, kind) in enumerate(zip(self.features, self.kinds, strict=True)):
            column = table.column(name) if name in table.column_names else None
            out[:, index] = self._encode_column(name, kind, column, table.num_rows)
        return out

    def _encode_column(
        self, name: str, kind: Kind, column: pa.ChunkedArray[Any] | None, rows: int
    ) -> np.ndarray:
        if column is None:
            return np.full(rows, np.nan)
        if kind == "categorical":
            vocabulary = pa.array(self.vocabularies[name], type=pa.string())
            codes = pc.index_in(pc.cast(column, pa.string()), value_set=vocabulary)
            return np.asarray(pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False))
        if kind == "timestamp":
            seconds = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
            return np.asarray(
                pc.divide(pc.cast(seconds, pa.float64()), 1e6).to_numpy(zero_copy_only=False)
            )
        try:
            values = pc.cast(column, pa.float64())
        except pa.ArrowInvalid as error:
            raise ModelError(
                f"feature `{name}` is {kind} in the model but holds {column.type}: {error}",
                fix="retrain the model on the current training set",
            ) from None
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)

    def encode_one(self, values: Mapping[str, Any], out: np.ndarray | None = None) -> np.ndarray:
        """One request's values (absent or None → NaN) as a float64 vector: the hot path.

        Plain numbers and known categories take a shortcut; everything else goes through
        :meth:`encode_value`, which gives the same results (property-tested).
        """
        row = out if out is not None else np.empty(len(self.features), dtype=np.float64)
        get = values.get
        for index, name, kind, positions in self._plan:
            value = get(name)
            if value is None:
                row[index] = np.nan
            elif positions is not None and type(value) is str:
                row[index] = positions.get(value, np.nan)
            elif kind == "numeric" and (type(value) is float or type(value) is int):
                row[index] = value
            else:
                row[index] = self.encode_value(name, kind, value)
        return row

    @functools.cached_property
    def _plan(self) -> tuple[tuple[int, str, Kind, dict[str, float] | None], ...]:
        """Per input: its index, name, kind, and for a categorical its value → position."""
        plan = []
        for index, (name, kind) in enumerate(zip(self.features, self.kinds, strict=True)):
            positions = None
            if kind == "categorical":
                positions = {text: float(i) for i, text in enumerate(self.vocabularies[name])}
            plan.append((index, name, kind, positions))
        return tuple(plan)

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Several requests' values as a float64 matrix."""
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for index, values in enumerate(rows):
            self.encode_one(values, out[index])
        return out

    def encode_value(self, name: str, kind: Kind, value: Any) -> float:
        """One value of input ``name``; raises :class:`ModelError` naming it when unusable."""
        if value is None:
            return np.nan
        if kind == "categorical":
            vocabulary = self.vocabularies[name]
            text = str(value)
            position = _bisect(vocabulary, text)
            return float(position) if position is not None else np.nan
        if kind == "timestamp":
            if isinstance(value, datetime | date):
                moment = value if isinstance(value, datetime) else datetime(*value.timetuple()[:3])
                return moment.timestamp() if moment.tzinfo else _naive_seconds(moment)
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    raise ModelError(
                        f"feature `{name}` expects a timestamp, got {value!r}",
                        fix=f"send `{name}` as an ISO 8601 date-time (2025-01-31T09:30:00Z)",
                    ) from None
                return self.encode_value(name, kind, parsed)
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float):
            return float(value)
        raise ModelError(
            f"feature `{name}` expects a {kind} value, got {type(value).__name__} {value!r}",
            fix=f"send `{name}` as a {'number' if kind == 'numeric' else kind}",
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved as ``encoder.json``)."""
        return {
            "features": list(self.features),
            "kinds": list(self.kinds),
            "vocabularies": {name: list(v) for name, v in self.vocabularies.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        """The inverse of :meth:`as_dict`."""
        return cls(
            tuple(data["features"]),
            tuple(data["kinds"]),
            {name: tuple(v) for name, v in data.get("vocabularies", {}).items()},
        )


def _bisect(vocabulary: tuple[str, ...], text: str) -> int | None:
    low, high = 0, len(vocabulary)
    while low < high:
        middle = (low + high) // 2
        if vocabulary[middle] < text:
            low = middle + 1
        else:
            high = middle
    return low if low < len(vocabulary) and vocabulary[low] == text else None


def _naive_seconds(moment: datetime) -> float:
    """Seconds since the epoch of a naive UTC datetime (as Arrow's timestamps are)."""
    return (moment - datetime(1970, 1, 1)).total_seconds()
