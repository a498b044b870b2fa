"""answers_of: each answer's shown items and its flattened slots agree with the records,
whatever the chunk (null lists, null items, a slice of a bigger table)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from taxiway.monitoring.recs.reading import ANSWER_SCHEMA, answers_of

slot = st.fixed_dictionaries(
    {"item": st.none() | st.sampled_from(["a", "b", "c"]), "position": st.integers(1, 5),
     "stage": st.none() | st.just("ease")}
)  # fmt: skip
record = st.fixed_dictionaries(
    {"ts": st.just("2026-03-02T05:00:00+00:00"), "request_id": st.just("r"),
     "model_version": st.just(1), "unit": st.just("u"), "path": st.just("model"),
     "degraded": st.just(False), "reason": st.none(), "unknown_user": st.just(False),
     "recent_items": st.just([]), "items": st.none() | st.lists(slot, max_size=4)}
)  # fmt: skip


@given(st.lists(record, min_size=1, max_size=8), st.data())
def test_shown_items_and_slots_match_the_records(
    records: list[dict[str, object]], data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(records) - 1))
    table = pa.Table.from_pylist(records, schema=ANSWER_SCHEMA).slice(start)
    answers, untimed = answers_of(table, 1)
    kept = records[start:]
    assert untimed == 0
    slots = [s for r in kept for s in (r["items"] or [])]  # type: ignore[attr-defined]
    assert answers.items == [
        [s["item"] for s in (r["items"] or []) if s["item"] is not None]  # type: ignore[attr-defined]
        for r in kept
    ]
    assert answers.slot_item == [s["item"] or "" for s in slots]
    assert answers.slot_row.tolist() == [
        i
        for i, r in enumerate(kept)
        for _ in (r["items"] or [])  # type: ignore[attr-defined]
    ]
    assert answers.slot_stage == [s["stage"] or "unknown" for s in slots]
