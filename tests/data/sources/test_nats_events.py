"""The check of a stream source's events: rule reasons and contract casts from one query, the
same verdict for an event alone or in any batch, typed columns when every event is refused,
on the caller's DuckDB connection (batch after batch) or on one of its own (threads, forks)."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.data.contracts.loader import load_contract_text
from taxiway.data.contracts.model import Contract
from taxiway.data.sources.nats_events import (
    CheckedEvents,
    _text,
    _texts,
    check_events,
    event_problems,
)
from taxiway.engines.duckdb import connect
from taxiway.spec.models import NatsSource

CONTRACT = """
apiVersion: v3.1.0
schema:
  - name: orders
    properties:
      - {name: customer, logicalType: integer, required: true}
      - {name: ts, logicalType: timestamp, required: true}
      - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
      - {name: day, logicalType: date}
      - {name: status, logicalType: string, enum: [placed, paid]}
"""


def source() -> NatsSource:
    return NatsSource(
        kind="nats",
        url="nats://127.0.0.1:4222",
        subject="shop.orders",
        stream="ORDERS",
        durable="taxiway",
        timestamp="ts",
        history="/tmp/h",
    )


def contract() -> Contract:
    return load_contract_text(CONTRACT, "orders.contract.yaml")


def body(**fields: Any) -> bytes:
    return json.dumps({"ts": "2026-01-01T10:00:00Z", "customer": 7, **fields}).encode()


def check(bodies: list[bytes], con: duckdb.DuckDBPyConnection | None = None) -> CheckedEvents:
    events: list[tuple[str | None, bytes]] = [(str(i), b) for i, b in enumerate(bodies)]
    return check_events("orders", source(), contract(), events, required=("customer",), con=con)


def test_rules_refuse_and_casts_type_the_valid_events() -> None:
    checked = check(
        [
            body(amount=5.5, day="2026-01-02", status="paid"),
            body(amount="abc"),
            body(amount=-1, status="lost"),
            body(amount="7", customer="12", day="2026-02-03"),
        ]
    )
    assert checked.ids == ["0", "3"]
    assert [index for index, _ in checked.rejected] == [1, 2]
    assert checked.rejected[0][1].startswith("amount.type")
    assert "amount.minimum" in checked.rejected[1][1]
    assert "; " in checked.rejected[1][1]  # both failed rules, in one reason
    table = checked.table
    assert table.schema.field("customer").type == pa.int64()
    assert table.schema.field("amount").type == pa.float64()
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("customer").to_pylist() == [7, 12]
    assert table.column("amount").to_pylist() == [5.5, 7.0]
    assert table.column("day").to_pylist() == [date(2026, 1, 2), date(2026, 2, 3)]
    assert table.column("ts").to_pylist() == [datetime(2026, 1, 1, 10, tzinfo=UTC)] * 2


def test_a_batch_with_every_event_refused_keeps_the_contract_types() -> None:
    checked = check([body(amount="abc"), b"[1]"])
    assert checked.ids == []
    assert len(checked.rejected) == 2
    assert checked.table.num_rows == 0
    assert checked.table.schema.field("customer").type == pa.int64()
    assert checked.table.schema.field("day").type == pa.date32()


VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["1.5", "-2", "2026-01-02", "paid", "placed", "x"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=12))
def test_an_events_verdict_is_the_same_alone_or_in_a_batch(
    rows: list[tuple[Any, Any, Any]],
) -> None:
    bodies = [body(amount=a, day=d, status=s) for a, d, s in rows]
    batch = check(bodies)
    refused = dict(batch.rejected)
    kept = iter(range(batch.table.num_rows))
    for index, one in enumerate(bodies):
        alone = check([one])
        assert [reason for _, reason in alone.rejected] == (
            [refused[index]] if index in refused else []
        )
        if index not in refused:
            row = next(kept)
            for column in ("customer", "amount", "day"):
                assert (
                    batch.table.column(column)[row].as_py() == alone.table.column(column)[0].as_py()
                )


def test_event_problems_names_the_failed_rules() -> None:
    spec, rules = source(), contract()
    good = {"ts": "2026-01-01T10:00:00Z", "customer": 1, "amount": 3}
    assert event_problems("orders", spec, rules, good, required=("customer",)) == []
    bad = {**good, "amount": -3}
    [reason] = event_problems("orders", spec, rules, bad, required=("customer",))
    assert reason.startswith("amount.minimum")


def test_batches_on_the_callers_connection_match_the_ones_on_their_own() -> None:
    batches = [[body(amount=i - 3, status=s) for i in range(8)] for s in ("paid", "lost", "x")]
    with connect(threads=1) as con:
        for bodies in batches:  # batch after batch on the one connection, which stays open
            mine, own = check(bodies, con), check(bodies)
            assert mine.ids == own.ids
            assert mine.rejected == own.rejected
            assert mine.table.equals(own.table)
        assert con.sql("SELECT 1").fetchall() == [(1,)]


def test_threads_check_at_once_with_the_same_verdicts() -> None:
    bodies = [body(amount=i - 3) for i in range(20)]
    expected = check(bodies)
    found: list[CheckedEvents] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(5):
            result = check(bodies)
            with lock:
                found.append(result)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 20
    for result in found:
        assert result.rejected == expected.rejected
        assert result.table.equals(expected.table)


def _child(path: str) -> None:
    checked = check([body(amount=1), body(amount=-1)])
    Path(path).write_text(json.dumps([checked.ids, checked.rejected]))


def test_a_forked_child_checks_with_its_own_connection(tmp_path: Path) -> None:
    check([body(amount=2)])  # the parent's connection is open
    out = tmp_path / "child.json"
    child = multiprocessing.get_context("fork").Process(target=_child, args=(str(out),))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    ids, rejected = json.loads(out.read_text())
    assert ids == ["0"]
    assert rejected[0][0] == 1
    assert rejected[0][1].startswith("amount.minimum")
    assert check([body(amount=3)]).ids == ["0"]  # the parent's still works


SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            SCALAR,
            st.text(max_size=5),
            st.datetimes(timezones=st.just(UTC)),
            st.lists(SCALAR, max_size=2),
        ),
        max_size=12,
    ),
    same=st.sampled_from(["mixed", "scalars", "text", "times"]),
)
def test_a_columns_text_is_each_values_own(values: list[Any], same: str) -> None:
    """The column-at-once texts the contract checks (orjson over the list, Arrow, isoformat)
    equal each value written alone, whatever mix of types the events hold."""
    kind = {"scalars": (bool, int, float), "text": (str,), "times": (datetime,)}.get(same)
    if kind is not None:
        values = [v if isinstance(v, kind) else None for v in values]
    rows = [{} if v is None else {"a": v} for v in values]
    assert _texts(rows, "a").to_pylist() == [_text(v) for v in values]
