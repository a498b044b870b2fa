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
  assignment bucket under the rollout's salt (:func:`~taxiway.rollout.assignment.bucket`),
  filled once the rollout has been promoted (-1 before: no unit can have been moved by a
  step change yet, and a million blake2b hashes would dominate a first check);
  ``control_step_max`` and
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
  request id, :func:`text_keys`, with the unit's row, in segments; 12 bytes per answer with a
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

Cost: a check reads only what the logs gained (from the columnar sidecars where the files
have them); units and request ids are hashed to 64-bit keys (:func:`text_keys`, one numpy
pass per 8 bytes), the check's unit keys are encoded once (pyarrow's hash
``dictionary_encode``) and their distinct values looked up among the stored ones in one
hash lookup, and every aggregate is a numpy scatter (``minimum.at``, ``bincount``), so no
Python loop runs per record. The request index gains one segment per check
(:class:`~taxiway.rollout.units_state.RequestIndex`), and a check that read nothing new
writes nothing.
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
from taxiway.rollout.assignment import Assigner
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
    "text_keys",
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
    given) gained since the state in ``folder`` was saved, fold it in, save it (unless it read
    nothing new), return it.

    ``boundaries`` are ``(time, step index)`` from the rollout's start and each promotion;
    ``names`` the outcome names kept per unit (the metric's, then the guardrails').
    """
    state = UnitsState.load(folder, names, latency_limit_ms)
    before = _marks(state)
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
        _fold_answers(state, answers, times, steps)
    outcomes = outcomes_folder if outcomes_folder is not None else log_folder.parent / "outcomes"
    requested = _Batch()
    if names and outcomes.is_dir():
        batch = _Batch()
        for chunk in iter_new(outcomes, LOG_GLOB, state.outcomes_cursor, schema=_OUTCOMES):
            _take_outcomes(state, batch, requested, chunk.table, list(names))
            state.outcomes_cursor = chunk.cursor
        if batch.units:
            rows = _rows(state.units, batch.column("unit_key"), batch.units)
            _fold_outcomes(state, rows, batch.columns_of(_OUTCOME_COLUMNS), list(names))
        if requested.columns:
            fresh = PendingOutcomes(*(requested.column(c) for c in PendingOutcomes._COLUMNS))
            state.pending = state.pending.concat(fresh)
    # the index and the clock pending outcomes expire by change only with new answers
    if names and len(state.pending) and (answers.units or requested.columns):
        _attribute_pending(state, list(names))
    if len(boundaries) > 1:
        _fill_buckets(state.units, salt)
    if save and (not state.saved or _marks(state) != before):
        state.save(folder)
    return state


def _marks(state: UnitsState) -> tuple[Any, ...]:
    """What a save would change: when none of it moved, the check read nothing new."""
    return (
        state.answers_cursor,
        state.outcomes_cursor,
        len(state.units),
        int(np.count_nonzero(state.units.bucket >= 0)),
        len(state.pending),
        state.by_request,
        state.unattributed,
        state.moved_outcomes,
    )


def _fill_buckets(units: UnitColumns, salt: str) -> None:
    """Each answered unit's assignment bucket, once the rollout has been promoted: only then
    can a unit have been moved to the candidate by a step (the analysis leaves such control
    units out), so the first step's checks do not pay a hash per unit. Deterministic, so the
    state does not depend on when it is filled."""
    missing = np.flatnonzero(units.exposed & (units.bucket < 0))
    if missing.size:
        assign = Assigner(salt)
        named = units.unit.take(pa.array(missing)).to_pylist()
        units.bucket[missing] = [assign.bucket(str(name)) for name in named]


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

    units: list[Any] = field(default_factory=list)  # pyarrow string arrays: the unit names
    columns: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)

    def add(self, units: Any, **columns: npt.NDArray[Any]) -> None:
        if units is not None:
            self.units.append(units)
        for name, values in columns.items():
            self.columns.setdefault(name, []).append(values)

    def column(self, name: str) -> npt.NDArray[Any]:
        return np.concatenate(self.columns[name])

    def columns_of(self, names: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        return {name: self.column(name) for name in names}


_OUTCOME_COLUMNS: Final = ("at", "value", "is_bool", "name")


def text_keys(texts: Any) -> Keys:
    """A 64-bit hash of each string of the arrow array ``texts`` (no nulls), vectorised: the
    bytes read as little-endian 64-bit words (the last one zero-padded), folded from the
    string's length through splitmix64's finaliser (``h = mix(h ^ word)``), one numpy pass
    per word. A unit's key, and a request id's. Strings of one length up to 8 bytes never
    collide (the fold is a bijection); otherwise collisions are as for random keys: about
    one chance in 400,000 among a rollout's 10 million request ids, one in 40 million among
    a million units.

    >>> keys = text_keys(pa.array(["a1", "a1", "1a", ""]))
    >>> keys.dtype, bool(keys[0] == keys[1]), len(set(keys.tolist()))
    (dtype('uint64'), True, 3)
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    count = len(texts)
    if not count:
        return np.zeros(0, np.uint64)
    if pa.types.is_string(texts.type) or pa.types.is_binary(texts.type):
        offsets = np.frombuffer(texts.buffers()[1], np.int32)
    else:
        texts = pc.cast(texts, pa.large_binary())
        offsets = np.frombuffer(texts.buffers()[1], np.int64)
    offsets = offsets[texts.offset : texts.offset + count + 1].astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(last - first + 8, np.uint8)  # every word read lies inside it
    data = texts.buffers()[2]
    if data is not None and last > first:
        padded[: last - first] = np.frombuffer(data, np.uint8)[first:last]
    words = np.ndarray((last - first + 1,), "<u8", padded.data, 0, (1,))  # a word at each byte
    starts, lengths = offsets[:-1] - first, np.diff(offsets)
    hashed = (lengths.astype(np.uint64) + np.uint64(1)) * _GOLDEN
    with np.errstate(over="ignore"):
        for word in range(0, max(int(lengths.max()), 1), 8):
            left = np.clip(lengths - word, 0, 8)
            hashed ^= words[np.minimum(starts + word, last - first)] & _LOW_BYTES[left]
            hashed ^= hashed >> np.uint64(30)
            hashed *= _MIX1
            hashed ^= hashed >> np.uint64(27)
            hashed *= _MIX2
            hashed ^= hashed >> np.uint64(31)
    return hashed


_LOW_BYTES: Final = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)


def _rows(units: UnitColumns, keys: Keys, names: list[Any]) -> Ints:
    """The row of each unit key, adding the units never seen (their names from ``names``,
    the arrow arrays the keys were computed from, in order): one hash encoding of the keys,
    one hash lookup of the distinct ones among the stored keys."""
    encoded = pc.dictionary_encode(pa.array(keys))
    distinct = np.asarray(encoded.dictionary.to_numpy(), np.uint64)
    codes = encoded.indices.to_numpy()
    rows = units.rows_of(distinct)
    fresh = np.flatnonzero(rows < 0)
    if fresh.size:
        first = _first_records(codes, len(distinct))
        pieces = [chunk for column in names for chunk in _chunks_of(column)]
        named = pa.chunked_array(pieces, pa.string()).take(first[fresh])
        rows[fresh] = len(units) + np.arange(fresh.size)
        units.add(named.combine_chunks(), distinct[fresh])
    mapped: Ints = rows[codes]
    return mapped


def _take_answers(state: UnitsState, batch: _Batch, table: pa.Table, started_us: int) -> None:
    """Count a chunk's answers per arm now; keep those with a unit for :func:`_fold_answers`."""
    if not table.num_rows:
        return
    ts, timed = _micros(table.column("ts"))
    arm = _codes(table.column("arm"), ARMS)
    keep = timed & (ts >= started_us) & (arm >= 0)
    if not keep.all():
        if not keep.any():
            return
        table, ts, arm = table.filter(pa.array(keep)), ts[keep], arm[keep]
    _count_arms(state, table, arm)
    units = table.column("unit")
    if units.null_count:
        has_unit = _true(pc.is_valid(units))
        state.answers_without_unit += int(np.count_nonzero(~has_unit))
        if not has_unit.any():
            return
        table, ts, arm = table.filter(pa.array(has_unit)), ts[has_unit], arm[has_unit]
        units = table.column("unit")
    request = table.column("request_id")
    if request.null_count:
        keyed = _true(pc.is_valid(request))
        keys = np.zeros(table.num_rows, np.uint64)
        keys[keyed] = text_keys(request.filter(pa.array(keyed)))
    else:
        keyed, keys = np.ones(table.num_rows, bool), text_keys(request)
    batch.add(units, ts=ts, arm=arm, unit_key=text_keys(units), key=keys, keyed=keyed)


def _fold_answers(
    state: UnitsState, batch: _Batch, times: Ints, steps: npt.NDArray[np.int16]
) -> None:
    u = state.units
    rows = _rows(u, batch.column("unit_key"), batch.units)
    ts, arm = batch.column("ts"), batch.column("arm")
    latest = int(ts.max())
    candidate = arm == 1
    np.minimum.at(u.first_candidate, rows[candidate], ts[candidate])
    first_key = np.left_shift(ts, 1, out=ts)  # time * 2 + arm, in place: 80 MB less per 10M
    first_key |= arm
    np.minimum.at(u.first_key, rows, first_key)
    ts = first_key >> 1 if len(times) > 1 else first_key
    if len(times) == 1:  # one step: the rollout's first (every answer is after its start)
        on_candidate: Any = steps[0]
        on_control: Any = steps[0]
    else:
        position = np.searchsorted(times, ts, side="right") - 1
        step = np.where(position >= 0, steps[np.maximum(position, 0)], 0).astype(np.int16)
        on_candidate, on_control = step[candidate], step[~candidate]
    np.minimum.at(u.candidate_step_min, rows[candidate], on_candidate)
    np.maximum.at(u.control_step_max, rows[~candidate], on_control)
    u.exposures += np.bincount(rows, minlength=len(u))
    keyed, keys = batch.column("keyed"), batch.column("key")
    state.requests.add(*((keys, rows) if keyed.all() else (keys[keyed], rows[keyed])))
    state.latest_answer_us = max(state.latest_answer_us, latest)


def _first_records(codes: npt.NDArray[Any], distinct: int) -> Ints:
    """The position of each code's first record. pyarrow numbers the values of a dictionary
    by their first appearance, so those are where the running maximum rises (checked; a
    scatter of the positions if not)."""
    running = np.maximum.accumulate(codes)
    rising = np.flatnonzero(codes[1:] > running[:-1]) + 1
    rising = np.concatenate([[0], rising]) if len(codes) else rising
    if len(rising) == distinct and (codes[rising] == np.arange(distinct)).all():
        return rising
    first = np.full(distinct, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def _chunks_of(column: Any) -> list[Any]:
    """The arrays of an arrow (chunked) array: a chunked array of chunked arrays is slow."""
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def _codes(column: Any, values: Sequence[str]) -> npt.NDArray[np.int8]:
    """The index of each value of ``column`` in ``values``; -1 for another value or null."""
    found = pc.index_in(column, value_set=pa.array(list(values)))
    codes = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
    return np.asarray(codes, np.int8)


def _count_arms(state: UnitsState, table: pa.Table, arm: npt.NDArray[Any]) -> None:
    path = table.column("path")
    fallback = ~_true(pc.equal(pc.fill_null(path, "model"), "model"))
    reason = table.column("reason")
    error = np.zeros(len(arm), bool)
    if reason.null_count < len(reason):
        error = _true(pc.match_substring_regex(pc.fill_null(reason, ""), _ERRORS))
    latency = np.asarray(
        pc.fill_null(table.column("latency_ms"), np.nan).to_numpy(zero_copy_only=False),
        np.float64,
    )
    measured = np.isfinite(latency)
    limit = state.latency_limit_ms
    slow = measured & (latency > limit) if limit is not None else np.zeros(len(arm), bool)
    bins = np.searchsorted(LATENCY_EDGES, latency, side="left")
    width = len(LATENCY_EDGES) + 1
    histograms = np.bincount((arm * width + bins)[measured], minlength=2 * width)
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
        histogram = histograms[code * width : (code + 1) * width]
        counts.latency = [a + int(b) for a, b in zip(counts.latency, histogram, strict=True)]
        for version, number in _tally(versions[mine]):
            key = str(version) if version >= 0 else "unknown"
            counts.versions[key] = counts.versions.get(key, 0) + number


def _tally(values: Ints) -> list[tuple[int, int]]:
    """Each distinct value and how often it occurs (a count per value when they are small)."""
    low, high = int(values.min()), int(values.max())
    if high - low < 65_536:
        counts = np.bincount(values - low)
        found = np.flatnonzero(counts)
        return list(zip((found + low).tolist(), counts[found].tolist(), strict=True))
    distinct, numbers = np.unique(values, return_counts=True)
    return list(zip(distinct.tolist(), numbers.tolist(), strict=True))


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
            key=text_keys(asked.column("request_id")),
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
    units = table.column("unit")
    batch.add(units, unit_key=text_keys(units), at=at, value=value, is_bool=is_bool, name=name)


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
