"""Decode PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

Each message the server streams is one of (first byte): ``B`` begin, ``C`` commit, ``R``
relation (a table's columns, sent before its first change in a session), ``I`` insert, ``U``
update, ``D`` delete, ``T`` truncate, and ``Y`` type / ``O`` origin / ``M`` message (skipped).
Column values arrive as text (the type's output function), ``None`` for SQL NULL and
:data:`UNCHANGED` for a TOASTed value an update did not change (absent from the WAL record).

>>> rel = Relations()
>>> rel.decode(b"R" + (16384).to_bytes(4, "big") + b"public\\0t\\0d" + (2).to_bytes(2, "big")
...            + b"\\x01id\\0" + (23).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True)
...            + b"\\x00v\\0" + (25).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True))
>>> rel.decode(b"I" + (16384).to_bytes(4, "big") + b"N" + (2).to_bytes(2, "big")
...            + b"t" + (1).to_bytes(4, "big") + b"7" + b"n")
Change(op='insert', table='public.t', old=None, new={'id': '7', 'v': None})
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from taxiway.errors import SourceError

__all__ = ["UNCHANGED", "Begin", "Change", "Column", "Commit", "Relation", "Relations"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""A TOASTed column an update left as it was (pgoutput sends no value for it)."""

Row = dict[str, Any]  # column -> text, None (NULL) or UNCHANGED


class Column(NamedTuple):
    """A column of a relation: its name, type OID, and whether it is part of the key."""

    name: str
    type_oid: int
    key: bool


@dataclass(frozen=True)
class Relation:
    """A table as pgoutput describes it (``R``): schema, name, replica identity, columns."""

    oid: int
    schema: str
    name: str
    identity: str  # d (default: primary key), n (nothing), f (full), i (index)
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class Begin(NamedTuple):
    """A transaction starts: its final LSN (the commit's), commit time (µs since 2000), xid."""

    final_lsn: int
    commit_us: int
    xid: int


class Commit(NamedTuple):
    """A transaction ends: its commit LSN and end LSN (where the next one starts)."""

    commit_lsn: int
    end_lsn: int
    commit_us: int


class Change(NamedTuple):
    """One row change. ``old``: the replica identity's columns (the key, or every column
    with REPLICA IDENTITY FULL) for deletes and for updates that changed the key; ``new``:
    the row after an insert or update."""

    op: str  # insert | update | delete | truncate
    table: str
    old: Row | None
    new: Row | None


class Relations:
    """The decoder: keeps the relations seen in this session and decodes each message."""

    def __init__(self) -> None:
        self.known: dict[int, Relation] = {}

    def decode(self, data: bytes) -> Begin | Commit | Change | None:
        """The message in ``data`` (None for relation, type, origin and other messages)."""
        kind = data[:1]
        if kind == b"B":
            final_lsn, commit_us, xid = struct.unpack_from(">QqI", data, 1)
            return Begin(final_lsn, commit_us, xid)
        if kind == b"C":
            _, commit_lsn, end_lsn, commit_us = struct.unpack_from(">bQQq", data, 1)
            return Commit(commit_lsn, end_lsn, commit_us)
        if kind == b"R":
            self._relation(data)
            return None
        if kind == b"I":
            relation = self._of(data)
            row, _ = self._tuple(relation, data, 6)
            return Change("insert", relation.qualified, None, row)
        if kind == b"U":
            relation = self._of(data)
            old: Row | None = None
            at = 5
            if data[at : at + 1] in (b"K", b"O"):
                old, at = self._tuple(relation, data, at + 1)
            row, _ = self._tuple(relation, data, at + 1)  # b"N"
            return Change("update", relation.qualified, old, row)
        if kind == b"D":
            relation = self._of(data)
            old, _ = self._tuple(relation, data, 6)
            return Change("delete", relation.qualified, old, None)
        if kind == b"T":
            (count,) = struct.unpack_from(">I", data, 1)
            oids = struct.unpack_from(f">{count}I", data, 6)
            names = ", ".join(self.known[o].qualified for o in oids if o in self.known)
            return Change("truncate", names, None, None)
        return None  # Y (type), O (origin), M (logical message)

    def _of(self, data: bytes) -> Relation:
        (oid,) = struct.unpack_from(">I", data, 1)
        relation = self.known.get(oid)
        if relation is None:
            raise SourceError(
                f"pgoutput sent a change of relation {oid} before describing it",
                fix="restart `taxiway features stream` (a new session describes every table)",
            )
        return relation

    def _relation(self, data: bytes) -> None:
        (oid,) = struct.unpack_from(">I", data, 1)
        at = 5
        schema, at = _cstring(data, at)
        name, at = _cstring(data, at)
        identity = chr(data[at])
        (count,) = struct.unpack_from(">h", data, at + 1)
        at += 3
        columns = []
        for _ in range(count):
            flags = data[at]
            column, at = _cstring(data, at + 1)
            type_oid, _typmod = struct.unpack_from(">Ii", data, at)
            at += 8
            columns.append(Column(column, type_oid, bool(flags & 1)))
        self.known[oid] = Relation(oid, schema, name, identity, tuple(columns))

    @staticmethod
    def _tuple(relation: Relation, data: bytes, at: int) -> tuple[Row, int]:
        (count,) = struct.unpack_from(">h", data, at)
        at += 2
        row: Row = {}
        for column in relation.columns[:count]:
            kind = data[at : at + 1]
            at += 1
            if kind == b"n":
                row[column.name] = None
            elif kind == b"u":
                row[column.name] = UNCHANGED
            else:  # b"t" text (b"b" binary is only sent when asked for)
                (size,) = struct.unpack_from(">i", data, at)
                row[column.name] = data[at + 4 : at + 4 + size].decode()
                at += 4 + size
        return row, at


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(), end + 1
