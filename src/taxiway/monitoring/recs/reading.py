"""The recommendation service's records as columns: answers from the prediction log, outcomes
from the outcomes log, each read after its own cursor (:func:`taxiway.monitoring.segments.iter_new`).

An answer's record (:meth:`taxiway.serving.recommend_service.RecommendAnswer.record`): ``ts``,
``request_id``, ``model_version``, ``unit`` (the user), ``path``, ``degraded``, ``reason``,
``unknown_user``, ``recent_items`` and ``items`` (``item``, ``position`` from 1, ``score``,
``stage``). An outcome's: ``request_id``, ``item``, ``name``, ``value`` (a number or a boolean:
``true`` counts 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from taxiway.monitoring.windows import times_of

__all__ = [
    "ANSWER_SCHEMA",
    "OUTCOME_SCHEMA",
    "Answers",
    "Outcomes",
    "answers_of",
    "outcomes_of",
    "reason_key",
]

_SHOWN: Final = pa.struct(
    [
        pa.field("item", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("stage", pa.string()),
    ]
)
_ANSWER_FIELDS: list[pa.Field[Any]] = [
    pa.field("ts", pa.string()),
    pa.field("request_id", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("unit", pa.string()),
    pa.field("path", pa.string()),
    pa.field("degraded", pa.bool_()),
    pa.field("reason", pa.string()),
    pa.field("unknown_user", pa.bool_()),
    pa.field("recent_items", pa.list_(pa.string())),
    pa.field("items", pa.list_(_SHOWN)),
]
ANSWER_SCHEMA: Final = pa.schema(_ANSWER_FIELDS)
"""The columns of an answer the monitor reads (the score is not needed)."""
_OUTCOME_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", pa.string()),
    pa.field("item", pa.string()),
    pa.field("name", pa.string()),
    pa.field("value", pa.string()),  # a number or a boolean: read as text, then converted
]
OUTCOME_SCHEMA: Final = pa.schema(_OUTCOME_FIELDS)
"""The columns of an outcome the monitor reads."""

Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class Answers:
    """One chunk's answers of the monitored version, as arrays (``n`` rows), and their shown
    slots flattened (``slot_row`` says whose each slot is)."""

    ts_us: Ints
    request_id: list[str]
    unit: list[str]
    path: list[str]
    degraded: Bools
    reason: list[str | None]
    unknown_user: Bools
    recent: list[list[str]]
    items: list[list[str]]
    slot_row: Ints
    slot_item: list[str]
    slot_position: Ints
    slot_stage: list[str]

    @property
    def n(self) -> int:
        """Answers in the chunk."""
        return len(self.ts_us)


@dataclass(frozen=True)
class Outcomes:
    """One chunk's outcomes with a request, an item and a name; ``value`` as a number (NaN when
    it is neither a number nor a boolean)."""

    request_id: list[str]
    item: list[str]
    name: list[str]
    value: NDArray[np.float64]


def answers_of(table: pa.Table, version: int | None) -> tuple[Answers, int]:
    """The answers of ``version`` (every one when None) with a readable ``ts``, and how many
    records had none (counted in no window)."""
    if version is not None and table.num_rows:
        column: Any = table["model_version"]
        table = table.filter(pc.fill_null(pc.equal(column, pa.scalar(version, pa.int64())), False))
    ts, timed = times_of(table["ts"])  # the classifier monitor's: both agree on windows
    untimed = int(np.count_nonzero(~timed))
    if untimed:
        table = table.filter(pa.array(timed))
        ts = ts[timed]
    items: Any = table["items"].combine_chunks()
    lists = pc.fill_null(items, pa.scalar([], items.type)) if table.num_rows else items
    flat: Any = pc.list_flatten(lists)
    rows = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), np.int64)
    recent: Any = table["recent_items"]
    names = flat.field("item").to_pylist()
    offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False), np.int64)
    offsets -= offsets[0]  # a sliced list array's offsets point into its whole values
    # per answer, the shown ids from the flat column: no dict per slot (3x faster at 100k)
    shown = [
        [str(i) for i in names[begin:end] if i is not None]
        for begin, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]
    answers = Answers(
        ts_us=ts,
        request_id=_strings(table["request_id"]),
        unit=_strings(table["unit"]),
        path=[p or "model" for p in table["path"].to_pylist()],
        degraded=_bools(table["degraded"]),
        reason=[r if isinstance(r, str) else None for r in table["reason"].to_pylist()],
        unknown_user=_bools(table["unknown_user"]),
        recent=[[str(i) for i in r] if r else [] for r in recent.to_pylist()],
        items=shown,
        slot_row=rows,
        slot_item=["" if v is None else str(v) for v in names],
        slot_position=np.asarray(
            pc.fill_null(flat.field("position"), 0).to_numpy(zero_copy_only=False), np.int64
        ),
        slot_stage=[str(v) for v in pc.fill_null(flat.field("stage"), "unknown").to_pylist()],
    )
    return answers, untimed


def outcomes_of(table: pa.Table) -> Outcomes:
    """The outcomes naming a request, an item and a name (the others join nothing).

    >>> t = pa.table({"request_id": ["r", "r", None], "item": ["a", "b", "c"],
    ...               "name": ["click", "click", "click"], "value": ["True", "0.5", "1"]})
    >>> o = outcomes_of(t)
    >>> o.item, o.value.tolist()
    (['a', 'b'], [1.0, 0.5])
    """
    keep = pc.and_(
        pc.and_(pc.is_valid(table["request_id"]), pc.is_valid(table["item"])),
        pc.is_valid(table["name"]),
    )
    table = table.filter(keep)
    return Outcomes(
        request_id=_strings(table["request_id"]),
        item=_strings(table["item"]),
        name=_strings(table["name"]),
        value=np.array([_number(v) for v in table["value"].to_pylist()], dtype=np.float64),
    )


def reason_key(reason: str | None) -> str:
    """A reason as counted: its first part (before ``"; "``), ``none`` without one.

    >>> reason_key("model circuit breaker open; fallback:itemknn overran"), reason_key(None)
    ('model circuit breaker open', 'none')
    """
    return reason.split("; ", 1)[0].strip() or "none" if reason else "none"


def _number(value: object) -> float:
    if value is None:
        return float("nan")
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return 1.0 if text == "true" else 0.0
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _strings(column: Any) -> list[str]:
    return [str(v) if v is not None else "" for v in column.to_pylist()]


def _bools(column: Any) -> Bools:
    filled: Any = pc.fill_null(column, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
