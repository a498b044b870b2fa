"""What a rollout has seen of each unit and each arm, read from the logs incrementally.

Definitions (every quantity is an order-free aggregate: a sum, a min or a max, so reading
the logs in any number of pieces, in any file order, gives the same state as reading them at
once; ``tests/rollout/test_units.py`` checks it over random split points):

- An *answer* is a prediction-log record with ``ts`` at or after the rollout's start and
  ``arm`` ``control`` or ``candidate``. Its *step* is the step the rollout was at at ``ts``
  (from the step boundaries the controller passes: the times of its start and promotions).
- Per arm (:class:`ArmCounts`), over answers: ``answers``; ``fallbacks`` (``path`` is not
  ``model``); ``errors`` (a fallback because a dependency failed: ``reason`` starts with one
  of the monitor's :data:`~taxiway.monitoring.windows.ERROR_REASONS`); ``slow`` (``latency_ms``
  above the latency limit); ``latency``, a histogram on the monitor's log-spaced
  :data:`~taxiway.monitoring.windows.LATENCY_EDGES` (p99 read from it); answers by
  ``model_version``.
- Per unit (the ``unit`` field; answers without one count in the arms only):
  ``first``, the earliest answer's time and arm (control first on a tie); ``exposures``;
  ``first_candidate``, the earliest candidate answer's time; ``bucket``, the unit's
  assignment bucket under the rollout's salt (:func:`~taxiway.rollout.assignment.bucket`); ``control_step_max`` and
  ``candidate_step_min``, the last step it answered as control and the first as candidate. A
  unit is **in both arms** when ``control_step_max >= candidate_step_min``: it saw both arms
  within one step, or went back from candidate to control. A unit the growing share moved
  from control to candidate at a step change is not (sticky assignment does that by design),
  but its outcomes after its first candidate answer belong to neither arm: they are dropped
  (counted in ``moved_outcomes``).
- Per unit and outcome name, over outcome records (``<log parent>/outcomes``) with a
  ``unit``, at the outcome's ``timestamp`` (its ``received_at`` when unreadable): ``pre``, the
  sum of values before the unit's first answer (the CUPED covariate), ``post`` the sum from
  it on, ``post_events`` the post records with a non-zero value. ``true``/``false`` count
  1/0.
- An outcome without a ``unit`` but with a ``request_id`` is the outcome of the unit whose
  answer carried that ``request_id`` (``by_request`` counts them). The state keeps a request
  index (:class:`~taxiway.rollout.units_state.RequestIndex`: a 64-bit hash of each answer's
  request id, :func:`request_keys`, sorted, with the unit's row; 16 bytes per answer with a
  unit) of the answers read since the rollout began. A request whose answers named different
  units attributes its outcomes to none. An outcome whose request the log has not shown yet
  is kept *pending* in the state and tried again at each check; once the answers read reach
  :data:`PENDING_FOR` past its arrival (``received_at``: log time, so reading in pieces or at
  once agrees) it is dropped (``expired``). Outcomes with neither field, dropped ones, and
  those of an ambiguous request count in ``unattributed``.

An outcome is classified with what the prediction log held when it was read: outcomes are
read after the answers of the same check (pending ones are tried after them too), so an
answer logged after the outcome it led to (a clock skew beyond the read), an answer logged
more than :data:`PENDING_FOR` after an outcome posted by its request id, and a request id
reused for another unit after its outcome was attributed are the cases where pieces and one
read may differ.

The state (:mod:`.units_state`) lives in ``<state>/rollout/<id>/units.arrow``, replaced
atomically, so a check killed at any point leaves the previous state and its cursors together.

Cost: a check parses only the bytes the logs gained; the units they name are matched to the
stored ones in one hash lookup per check (pyarrow), and every aggregate is a numpy scatter
(``minimum.at``, ``add.at``), so no Python loop runs per record; request ids are hashed by
a loop over character positions (at most 64 for the service's), the index grows by one
sorted insert per check and is searched with ``searchsorted``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as _pc

from taxiway.monitoring.segments import FileMark, LogCursor, iter_new
from taxiway.monitoring.windows import ERROR_REASONS, LATENCY_EDGES
from taxiway.rollout.assignment import bucket
from taxiway.rollout.units_state import (
    AMBIGUOUS,
    ARMS,
    MISSING,
    ArmCounts,
    PendingOutcomes,
    UnitColumns,
    UnitsState,
)

__all__ = [
    "LOG_GLOB",
    "PENDING_FOR",
    "ArmCounts",
    "UnitColumns",
    "UnitsState",
    "request_keys",
    "update_units",
]

pc: Any = _pc  # the stubs refuse plain Python scalars where pyarrow takes them
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Keys = npt.NDArray[np.uint64]

LOG_GLOB: Final = "predictions-*.jsonl"
PENDING_FOR: Final = timedelta(hours=1)
"""How long (in the log's time) an outcome posted by request id waits for its answer."""
_ERRORS: Final = "(?:^|; )(?:" + "|".join(re.escape(r) for r in ERROR_REASONS) + ")"
_HEAD_BYTES: Final = 1024  # a file's first bytes a cursor mark identifies it by (segments)
_TEXT: pa.DataType = pa.string()
_ANSWER_FIELDS: list[pa.Field[Any]] = [
    pa.field("ts", _TEXT),
    pa.field("request_id", _TEXT),
    pa.field("unit", _TEXT),
    pa.field("arm", _TEXT),
    pa.field("model_version", pa.int64()),
    pa.field("path", _TEXT),
    pa.field("reason", _TEXT),
    pa.field("latency_ms", pa.float64()),
]
_ANSWERS: Final = pa.schema(_ANSWER_FIELDS)
_OUTCOME_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", _TEXT),
    pa.field("unit", _TEXT),
    pa.field("name", _TEXT),
    pa.field("value", _TEXT),  # a boolean or a number: read as text, converted here
    pa.field("timestamp", _TEXT),
    pa.field("received_at", _TEXT),
]
_OUTCOMES: Final = pa.schema(_OUTCOME_FIELDS)


def update_units(
    folder: Path,
    log_folder: Path,
    *,
    salt: str,
    started_at: datetime,
    boundaries: Sequence[tuple[datetime, int]],
    names: Sequence[str],
    latency_limit_ms: float | None,
    outcomes_folder: Path | None = None,
    save: bool = True,
) -> UnitsState:
    """Read what the prediction log and the outcomes log (``<log parent>/outcomes`` unless
    given) gained since the state in ``folder`` was saved, fold it in, save it, return it.

    ``boundaries`` are ``(time, step index)`` from the rollout's start and each promotion;
    ``names`` the outcome names kept per unit (the metric's, then the guardrails').
    """
    state = UnitsState.load(folder, names, latency_limit_ms)
    started_us = _micros_of(started_at)
    times = np.array([_micros_of(at) for at, _ in boundaries], np.int64)
    steps = np.array([step for _, step in boundaries], np.int16)
    answers = _Batch()
    if log_folder.is_dir():
        if not state.answers_cursor.files:
            state.answers_cursor = _history_skipped(log_folder, started_at)
        for chunk in iter_new(log_folder, LOG_GLOB, state.answers_cursor, schema=_ANSWERS):
            _take_answers(state, answers, chunk.table, started_us)
            state.answers_cursor = chunk.cursor
    if answers.units:
        _fold_answers(state, answers, salt, times, steps)
    outcomes = outcomes_folder if outcomes_folder is not None else log_folder.parent / "outcomes"
    if names and outcomes.is_dir():
        batch, requested = _Batch(), _Batch()
        for chunk in iter_new(outcomes, LOG_GLOB, state.outcomes_cursor, schema=_OUTCOMES):
            _take_outcomes(state, batch, requested, chunk.table, list(names))
            state.outcomes_cursor = chunk.cursor
        if batch.units:
            rows = _rows(state.units, batch.units)
            _fold_outcomes(state, rows, batch.columns_of(_OUTCOME_COLUMNS), list(names))
        if requested.columns:
            fresh = PendingOutcomes(*(requested.column(c) for c in PendingOutcomes._COLUMNS))
            state.pending = state.pending.concat(fresh)
    if names and len(state.pending):
        _attribute_pending(state, list(names))
    if save:
        state.save(folder)
    return state


def _history_skipped(folder: Path, started_at: datetime) -> LogCursor:
    """A cursor past every log file last written before the rollout began: its records all
    precede the rollout, so the first check need not parse the service's whole history.
    (The mark is the one reading the file would leave: its size, inode and first bytes.)"""
    marks = {}
    began = started_at.timestamp()
    for path in sorted(folder.glob(LOG_GLOB)):
        try:
            with path.open("rb") as f:
                stat = os.fstat(f.fileno())
                if stat.st_mtime >= began or stat.st_size == 0:
                    continue
                head = f.read(min(stat.st_size, _HEAD_BYTES))
        except OSError:
            continue  # gone, or unreadable: iter_new reports it
        digest = hashlib.blake2b(head, digest_size=16).hexdigest()
        marks[path.name] = FileMark(stat.st_size, stat.st_ino, digest, len(head))
    return LogCursor(marks)


@dataclass
class _Batch:
    """The records of one update that name a unit, kept until every chunk is read so their
    units are matched to the stored ones in one lookup."""

    units: list[Any] = field(default_factory=list)  # pyarrow string arrays
    columns: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)

    def add(self, units: Any, **columns: npt.NDArray[Any]) -> None:
        self.units.append(units)
        for name, values in columns.items():
            self.columns.setdefault(name, []).append(values)

    def column(self, name: str) -> npt.NDArray[Any]:
        return np.concatenate(self.columns[name])

    def columns_of(self, names: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        return {name: self.column(name) for name in names}


_OUTCOME_COLUMNS: Final = ("at", "value", "is_bool", "name")


def request_keys(ids: Any) -> Keys:
    """A 64-bit hash of each string of the arrow array ``ids`` (no nulls), vectorised: a
    polynomial over the bytes (mod 2**64, one numpy pass per character position) through
    splitmix64's finaliser. Collisions among a rollout's 10 million request ids: about one
    chance in 400,000.

    >>> keys = request_keys(pa.array(["a1", "a1", "1a", ""]))
    >>> keys.dtype, bool(keys[0] == keys[1]), len(set(keys.tolist()))
    (dtype('uint64'), True, 3)
    """
    column = pc.cast(ids, pa.large_binary())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    count = len(column)
    hashed = np.zeros(count, np.uint64)
    if count:
        offsets = np.frombuffer(column.buffers()[1], np.int64)[
            column.offset : column.offset + count + 1
        ]
        data = np.frombuffer(column.buffers()[2] or b"", np.uint8)
        starts, lengths = offsets[:-1], np.diff(offsets)
        width = int(lengths.max(initial=0))
        with np.errstate(over="ignore"):
            if (lengths == width).all():  # the service's ids: one width, one block of bytes
                block = data[offsets[0] : offsets[0] + count * width].reshape(count, width)
                for position in range(width):
                    byte = block[:, position].astype(np.uint64) + np.uint64(1)
                    hashed = hashed * _MULTIPLIER + byte
            else:
                for position in range(width):
                    longer = np.flatnonzero(lengths > position)
                    byte = data[starts[longer] + position].astype(np.uint64) + np.uint64(1)
                    hashed[longer] = hashed[longer] * _MULTIPLIER + byte
            hashed ^= lengths.astype(np.uint64) * _GOLDEN
            hashed ^= hashed >> np.uint64(30)
            hashed *= _MIX1
            hashed ^= hashed >> np.uint64(27)
            hashed *= _MIX2
            hashed ^= hashed >> np.uint64(31)
    return hashed


_MULTIPLIER: Final = np.uint64(0x100000001B3)  # FNV's 64-bit prime
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)


def _rows(units: UnitColumns, names: list[Any]) -> Ints:
    """The row of each unit named (no nulls), adding the units never seen: one dictionary
    encoding of the batch and one hash lookup of its distinct units among the stored ones."""
    column = pa.chunked_array(names, pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    found = pc.index_in(distinct, value_set=units.unit)
    rows = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), np.int64)
    fresh = rows < 0
    if fresh.any():
        rows[fresh] = len(units) + np.arange(int(np.count_nonzero(fresh)))
        units.add(distinct.filter(pa.array(fresh)))
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    mapped: Ints = rows[codes]
    return mapped


def _take_answers(state: UnitsState, batch: _Batch, table: pa.Table, started_us: int) -> None:
    """Count a chunk's answers per arm now; keep those with a unit for :func:`_fold_answers`."""
    if not table.num_rows:
        return
    ts, timed = _micros(table.column("ts"))
    arm_text = table.column("arm")
    arm = np.where(_true(pc.equal(arm_text, "candidate")), 1, -1)
    arm = np.where(_true(pc.equal(arm_text, "control")), 0, arm)
    keep = timed & (ts >= started_us) & (arm >= 0)
    if not keep.any():
        return
    table, ts, arm = table.filter(pa.array(keep)), ts[keep], arm[keep]
    _count_arms(state, table, arm)
    has_unit = _true(pc.is_valid(table.column("unit")))
    state.answers_without_unit += int(np.count_nonzero(~has_unit))
    if has_unit.any():
        named = table.filter(pa.array(has_unit))
        request = named.column("request_id")
        keyed = _true(pc.is_valid(request))
        keys = np.zeros(named.num_rows, np.uint64)
        if keyed.any():
            keys[keyed] = request_keys(request.filter(pa.array(keyed)))
        units = named.column("unit").combine_chunks()
        batch.add(units, ts=ts[has_unit], arm=arm[has_unit], key=keys, keyed=keyed)


def _fold_answers(
    state: UnitsState, batch: _Batch, salt: str, times: Ints, steps: npt.NDArray[np.int16]
) -> None:
    u = state.units
    rows = _rows(u, batch.units)
    ts, arm = batch.column("ts"), batch.column("arm")
    position = np.searchsorted(times, ts, side="right") - 1
    step = np.where(position >= 0, steps[np.maximum(position, 0)], 0).astype(np.int16)
    np.minimum.at(u.first_key, rows, ts * 2 + arm)
    candidate = arm == 1
    np.minimum.at(u.first_candidate, rows[candidate], ts[candidate])
    np.minimum.at(u.candidate_step_min, rows[candidate], step[candidate])
    np.maximum.at(u.control_step_max, rows[~candidate], step[~candidate])
    np.add.at(u.exposures, rows, 1)
    keyed = batch.column("keyed")
    state.requests.add(batch.column("key")[keyed], rows[keyed])
    state.latest_answer_us = max(state.latest_answer_us, int(ts.max()))
    answered = np.zeros(len(u), bool)
    answered[rows] = True
    fresh = np.flatnonzero(answered & (u.bucket < 0))
    if fresh.size:
        named = u.unit.take(fresh).to_pylist()
        u.bucket[fresh] = [bucket(salt, str(name)) for name in named]


def _count_arms(state: UnitsState, table: pa.Table, arm: npt.NDArray[Any]) -> None:
    path = table.column("path")
    fallback = ~_true(pc.equal(pc.fill_null(path, "model"), "model"))
    reason = pc.fill_null(table.column("reason"), "")
    error = _true(pc.match_substring_regex(reason, _ERRORS))
    latency = np.asarray(
        pc.fill_null(table.column("latency_ms"), np.nan).to_numpy(zero_copy_only=False),
        np.float64,
    )
    measured = np.isfinite(latency)
    limit = state.latency_limit_ms
    slow = measured & (latency > limit) if limit is not None else np.zeros(len(arm), bool)
    bins = np.searchsorted(LATENCY_EDGES, latency, side="left")
    versions = np.asarray(
        pc.fill_null(table.column("model_version"), -1).to_numpy(zero_copy_only=False), np.int64
    )
    for code, name in enumerate(ARMS):
        mine = arm == code
        if not mine.any():
            continue
        counts = state.arms[name]
        counts.answers += int(np.count_nonzero(mine))
        counts.fallbacks += int(np.count_nonzero(fallback & mine))
        counts.errors += int(np.count_nonzero(error & mine))
        counts.slow += int(np.count_nonzero(slow & mine))
        histogram = np.bincount(bins[mine & measured], minlength=len(counts.latency))
        counts.latency = [a + int(b) for a, b in zip(counts.latency, histogram, strict=True)]
        found, numbers = np.unique(versions[mine], return_counts=True)
        for version, number in zip(found.tolist(), numbers.tolist(), strict=True):
            key = str(version) if version >= 0 else "unknown"
            counts.versions[key] = counts.versions.get(key, 0) + int(number)


def _take_outcomes(
    state: UnitsState, batch: _Batch, requested: _Batch, table: pa.Table, names: list[str]
) -> None:
    """Keep a chunk's outcomes of ``names``, their values as numbers: those that name a unit
    in ``batch``, those that name only a request in ``requested``."""
    if not table.num_rows:
        return
    table = table.filter(pc.fill_null(pc.is_in(table.column("name"), pa.array(names)), False))
    if not table.num_rows:
        return
    has_unit = _true(pc.is_valid(table.column("unit")))
    by_request = ~has_unit & _true(pc.is_valid(table.column("request_id")))
    state.unattributed += int(np.count_nonzero(~has_unit & ~by_request))
    if by_request.any():
        asked = table.filter(pa.array(by_request))
        at, value, is_bool, name = _outcome_values(asked, names)
        received, readable = _micros(asked.column("received_at"))
        requested.add(
            None,
            key=request_keys(asked.column("request_id")),
            name=name.astype(np.int16),
            value=value,
            is_bool=is_bool,
            at=at,
            received=np.where(readable, received, at),
        )
    table = table.filter(pa.array(has_unit))
    if not table.num_rows:
        return
    at, value, is_bool, name = _outcome_values(table, names)
    units = table.column("unit").combine_chunks()
    batch.add(units, at=at, value=value, is_bool=is_bool, name=name)


def _outcome_values(
    table: pa.Table, names: list[str]
) -> tuple[Ints, Floats, npt.NDArray[np.bool_], Ints]:
    """Each outcome's time (µs), value (a number), whether it was true/false, and name
    (its index in ``names``)."""
    text = pc.utf8_lower(pc.fill_null(table.column("value"), ""))
    is_true = _true(pc.equal(text, "true"))
    is_bool = is_true | _true(pc.equal(text, "false"))
    numbers = np.zeros(len(is_bool))
    if not is_bool.all():
        cast = pc.cast(pc.if_else(pa.array(is_bool), "0", text), pa.float64(), safe=False)
        numbers = np.asarray(cast.fill_null(0.0).to_numpy(zero_copy_only=False), np.float64)
    value = np.where(is_bool, is_true.astype(np.float64), numbers)
    value = np.where(np.isfinite(value), value, 0.0)
    at, timed = _micros(table.column("timestamp"))
    received, _ = _micros(table.column("received_at"))
    name = np.asarray(
        pc.index_in(table.column("name"), value_set=pa.array(names)).to_numpy(zero_copy_only=False),
        np.int64,
    )
    return np.where(timed, at, received), value, is_bool, name


def _attribute_pending(state: UnitsState, names: list[str]) -> None:
    """Fold the pending outcomes whose request the index now knows; drop those of an
    ambiguous request and those waiting longer than :data:`PENDING_FOR`; keep the rest."""
    pending = state.pending
    rows = state.requests.find(pending.key)
    found = rows >= 0
    if found.any():
        state.by_request += int(np.count_nonzero(found))
        columns: dict[str, npt.NDArray[Any]] = {
            "at": pending.at[found],
            "value": pending.value[found],
            "is_bool": pending.is_bool[found],
            "name": pending.name[found].astype(np.int64),
        }
        _fold_outcomes(state, rows[found], columns, names)
    ambiguous = rows == AMBIGUOUS
    waiting = rows == MISSING
    limit = state.latest_answer_us - int(PENDING_FOR.total_seconds() * 1_000_000)
    expired = waiting & (pending.received < limit)
    state.expired += int(np.count_nonzero(expired))
    state.unattributed += int(np.count_nonzero(expired | ambiguous))
    state.pending = pending.filter(waiting & ~expired)


def _fold_outcomes(
    state: UnitsState, rows: Ints, columns: dict[str, npt.NDArray[Any]], names: list[str]
) -> None:
    u = state.units
    at, value = columns["at"], columns["value"]
    is_bool, which = columns["is_bool"], columns["name"]
    pre = at < u.first_us[rows]
    moved = (u.first_arm[rows] == 0) & (at >= u.first_candidate[rows])
    post = ~pre & ~moved
    state.moved_outcomes += int(np.count_nonzero(~pre & moved))
    for code, name in enumerate(names):
        mine = which == code
        if not mine.any():
            continue
        state.boolean[name] = state.boolean.get(name, True) and bool(is_bool[mine].all())
        np.add.at(u.pre[name], rows[mine & pre], value[mine & pre])
        kept = mine & post
        np.add.at(u.post[name], rows[kept], value[kept])
        np.add.at(u.post_events[name], rows[kept], (value[kept] != 0).astype(np.int64))


def _true(mask: Any) -> npt.NDArray[np.bool_]:
    """A boolean arrow array (or chunked array) as numpy, null as False."""
    filled = pc.fill_null(mask, False)
    values: npt.NDArray[np.bool_] = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
    return values


def _micros(column: Any) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """ISO 8601 strings as µs since the epoch (a time without an offset is UTC), and which
    were readable."""
    try:
        stamps = pc.cast(column, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = [_parse(value) for value in column.to_pylist()]
        stamps = pa.array(parsed, pa.timestamp("us", tz="UTC"))
    valid = _true(pc.is_valid(stamps))
    micros = pc.fill_null(pc.cast(stamps, pa.int64()), 0)
    return np.asarray(micros.to_numpy(zero_copy_only=False), dtype=np.int64), valid


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _micros_of(moment: datetime) -> int:
    return int(pa.scalar(moment, pa.timestamp("us", tz="UTC")).value or 0)
