"""pgoutput decoding and the text-to-Arrow typing of CDC values, on messages built byte by byte
as the protocol (version 1) defines them."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.data.cdc.pgoutput import UNCHANGED, Begin, Change, Commit, Relations
from taxiway.data.cdc.postgres import format_lsn, parse_lsn, slot_name
from taxiway.data.cdc.values import typed_table
from taxiway.errors import SourceError

OID = 16384


def relation(columns: list[tuple[str, int, bool]], identity: bytes = b"d") -> bytes:
    body = b"R" + struct.pack(">I", OID) + b"public\0orders\0" + identity
    body += struct.pack(">h", len(columns))
    for name, type_oid, key in columns:
        body += bytes([1 if key else 0]) + name.encode() + b"\0" + struct.pack(">Ii", type_oid, -1)
    return body


def tuple_data(values: list[str | object | None]) -> bytes:
    body = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            body += b"n"
        elif value is UNCHANGED:
            body += b"u"
        else:
            text = str(value).encode()
            body += b"t" + struct.pack(">i", len(text)) + text
    return body


@pytest.fixture
def decoder() -> Relations:
    found = Relations()
    assert found.decode(relation([("id", 23, True), ("note", 25, False)])) is None
    return found


def test_begin_and_commit_give_the_lsns(decoder: Relations) -> None:
    assert decoder.decode(b"B" + struct.pack(">QqI", 0x1_0000_0010, 42, 7)) == Begin(
        0x1_0000_0010, 42, 7
    )
    assert decoder.decode(b"C" + struct.pack(">bQQq", 0, 100, 120, 42)) == Commit(100, 120, 42)


def test_insert_update_delete(decoder: Relations) -> None:
    rel = struct.pack(">I", OID)
    assert decoder.decode(b"I" + rel + b"N" + tuple_data(["1", "é ü"])) == Change(
        "insert", "public.orders", None, {"id": "1", "note": "é ü"}
    )
    # an update of a non-key column: no old tuple; an unchanged TOAST value is marked
    assert decoder.decode(b"U" + rel + b"N" + tuple_data(["1", UNCHANGED])) == Change(
        "update", "public.orders", None, {"id": "1", "note": UNCHANGED}
    )
    # an update of the key: the old key first
    assert decoder.decode(
        b"U" + rel + b"K" + tuple_data(["1", None]) + b"N" + tuple_data(["2", None])
    ) == Change("update", "public.orders", {"id": "1", "note": None}, {"id": "2", "note": None})
    assert decoder.decode(b"D" + rel + b"K" + tuple_data(["2", None])) == Change(
        "delete", "public.orders", {"id": "2", "note": None}, None
    )


def test_a_change_of_an_undescribed_relation_is_an_error() -> None:
    with pytest.raises(SourceError, match="before describing it"):
        Relations().decode(b"I" + struct.pack(">I", 99) + b"N" + tuple_data(["1"]))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_text_round_trips(lsn: int) -> None:
    assert parse_lsn(format_lsn(lsn)) == lsn


def test_slot_names_are_what_postgresql_accepts() -> None:
    assert slot_name("orders") == "taxiway_orders"
    assert len(slot_name("x" * 200)) <= 63


def test_text_values_are_typed_as_the_offline_reader_types_them() -> None:
    table = typed_table(
        [
            ("i", 20),
            ("f", 701),
            ("n", 1700),
            ("b", 16),
            ("tz", 1184),
            ("t", 1114),
            ("d", 1082),
            ("s", 25),
        ],
        [
            {
                "i": "-5",
                "f": "1.5",
                "n": "2.25",
                "b": "t",
                "tz": "2026-03-01 10:00:00.5+00",
                "t": "2026-03-01 10:00:00",
                "d": "2026-03-01",
                "s": "x",
            },
            {
                "i": None,
                "f": "NaN",
                "n": None,
                "b": "f",
                "tz": "infinity",
                "t": None,
                "d": None,
                "s": None,
            },
        ],
    )
    assert table.schema.types == [
        pa.int64(),
        pa.float64(),
        pa.float64(),
        pa.bool_(),
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("us"),
        pa.date32(),
        pa.string(),
    ]
    first, second = table.to_pylist()
    assert first["tz"] == datetime(2026, 3, 1, 10, 0, 0, 500_000, tzinfo=UTC)
    assert first["d"] == date(2026, 3, 1)
    assert (first["b"], second["b"], second["tz"]) == (True, False, None)
