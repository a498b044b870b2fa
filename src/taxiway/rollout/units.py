"""What a rollout has seen of each unit and each arm, read from the logs incrementally.

Definitions (every quantity is an order-free aggregate: a sum, a min or a max, so reading
the logs in any number of pieces, in any file order, gives the same state as reading them at
once; ``tests/rollout/test_units.py`` checks it over random split points):

- An *answer* is a prediction-log record with ``ts`` at or after the rollout's start and
  ``arm`` ``control``, ``candidate`` or ``interleaved`` (``rollout.interleaving``: one list
  drafted from both arms, :mod:`taxiway.serving.interleave`). An interleaved answer counts in
  its own arm's :class:`ArmCounts` (so the guardrails see what interleaving costs,
  :mod:`.guards`) and in the request index, and nowhere else: it exposes no unit to the A/B
  test (the interleaving test reads it, :mod:`.interleaved`). Its *step* is the step the rollout was at at ``ts``
  (from the step boundaries the controller passes: the times of its start and promotions).
- Per arm (:class:`ArmCounts`), over answers: ``answers``; ``fallbacks`` (``path`` is not
  ``model``); ``errors`` (a fallback because a dependency failed: ``reason``, or one of its
  ``"; "``-separated parts, less an interleaved answer's ``control: ``/``candidate: ``
  prefix, starts with one of the monitor's :data:`~taxiway.monitoring.windows.ERROR_REASONS`); ``slow`` (``latency_ms``
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
  units attributes its outcomes to none. An outcome whose request was an interleaved answer
  is the interleaving test's: it counts in ``outcomes_interleaved`` only (never pending,
  expired or unattributed). An outcome whose request the log has not shown yet
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
have them, with ``ts`` parsed when the sidecar was written), and folds it a chunk at a time
(every aggregate is order-free, so nothing waits for the whole read: memory is a chunk's).
Units and request ids are hashed to 64-bit keys (:func:`text_keys`, one numpy pass per 8
bytes), units found in an open-addressing table of their keys
(:class:`~taxiway.rollout.units_state.KeyRows`, built once per check), and every aggregate
is a numpy scatter (``minimum.at``, ``bincount``), so no Python loop runs per record. The
request index gains one segment per check
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

from taxiway.monitoring.columnar import TIME
from taxiway.monitoring.segments import FileMark, LogCursor, iter_new
from taxiway.monitoring.windows import ERROR_REASONS, LATENCY_EDGES
from taxiway.rollout.assignment import Assigner
from taxiway.rollout.units_state import (
    AMBIGUOUS,
    ANSWER_ARMS,
    INTERLEAVED_ROW,
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
    "latency_bins",
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
# an interleaved answer's reasons name the arm each came from: "candidate: model failed ..."
_ERRORS: Final = (
    "(?:^|; )(?:(?:control|candidate): )?(?:" + "|".join(re.escape(r) for r in ERROR_REASONS) + ")"
)
_HEAD_BYTES: Final = 1024  # a file's first bytes a cursor mark identifies it by (segments)
_TEXT: pa.DataType = pa.string()
_ANSWER_FIELDS: list[pa.Field[Any]] = [
    pa.field("ts", TIME),  # parsed when the sidecar was written, or by the reader
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
    pa.field("timestamp", TIME),
    pa.field("received_at", TIME),
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
    answers = _Answers(
        state,
        started_us=_micros_of(started_at),
        times=np.array([_micros_of(at) for at, _ in boundaries], np.int64),
        steps=np.array([step for _, step in boundaries], np.int16),
    )
    if log_folder.is_dir():
        if not state.answers_cursor.files:
            state.answers_cursor = _history_skipped(log_folder, started_at)
        for chunk in iter_new(log_folder, LOG_GLOB, state.answers_cursor, schema=_ANSWERS):
            answers.fold(chunk.table)
            state.answers_cursor = chunk.cursor
        answers.finish()
    outcomes = outcomes_folder if outcomes_folder is not None else log_folder.parent / "outcomes"
    requested = _Batch()
    if names and outcomes.is_dir():
        for chunk in iter_new(outcomes, LOG_GLOB, state.outcomes_cursor, schema=_OUTCOMES):
            _take_outcomes(state, requested, chunk.table, list(names))
            state.outcomes_cursor = chunk.cursor
        if requested.columns:
            fresh = PendingOutcomes(*(requested.column(c) for c in PendingOutcomes._COLUMNS))
            state.pending = state.pending.concat(fresh)
    # the index and the clock pending outcomes expire by change only with new answers
    if names and len(state.pending) and (answers.read or requested.columns):
        _attribute_pending(state, list(names))
    state.units.settle()
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
        state.outcomes_interleaved,
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
    """Columns gathered chunk by chunk (outcomes posted by request id), joined once."""

    columns: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)

    def add(self, **columns: npt.NDArray[Any]) -> None:
        for name, values in columns.items():
            self.columns.setdefault(name, []).append(values)

    def column(self, name: str) -> npt.NDArray[Any]:
        return np.concatenate(self.columns[name])


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


def _rows(units: UnitColumns, keys: Keys, names: Any) -> Ints:
    """The row of each unit key, adding the units never seen (their names from ``names``,
    the arrow array the keys were computed from): one lookup in the units' hash table
    (:class:`~taxiway.rollout.units_state.KeyRows`), and a sort of the keys not found."""
    rows = units.rows_of(keys)
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        fresh, first, inverse = np.unique(keys[missing], return_index=True, return_inverse=True)
        rows[missing] = len(units) + inverse
        units.add(names.take(pa.array(missing[first])), fresh)
    return rows


@dataclass
class _Answers:
    """The answers of one update, folded into the state a chunk at a time (every aggregate
    is order-free, so no chunk waits for the others: memory is a chunk's, whatever was
    read); the request index's entries are gathered into one segment by :meth:`finish`."""

    state: UnitsState
    started_us: int
    times: Ints  # the step boundaries (µs) and each one's step
    steps: npt.NDArray[np.int16]
    read: int = 0  # answers with a unit folded, and interleaved answers indexed
    latest: int = 0
    requests: list[tuple[Keys, npt.NDArray[np.int32]]] = field(default_factory=list)

    def fold(self, table: pa.Table) -> None:
        """Count a chunk's answers per arm; fold those with a unit into their units."""
        if not table.num_rows:
            return
        state = self.state
        ts, timed = _micros(table.column("ts"))
        arm = _arms(table.column("arm"))
        keep = timed & (ts >= self.started_us) & (arm >= 0)
        if not keep.all():
            if not keep.any():
                return
            table, ts, arm = table.filter(pa.array(keep)), ts[keep], arm[keep]
        _count_arms(state, table, arm)
        self.latest = max(self.latest, int(ts.max()))
        interleaved = arm == 2
        if interleaved.any():  # their requests only: an interleaved answer exposes no unit
            self._interleaved(table.column("request_id").filter(pa.array(interleaved)))
            if interleaved.all():
                return
            mixed = ~interleaved
            table, ts, arm = table.filter(pa.array(mixed)), ts[mixed], arm[mixed]
        units = table.column("unit")
        if units.null_count:
            has_unit = _true(pc.is_valid(units))
            state.answers_without_unit += int(np.count_nonzero(~has_unit))
            if not has_unit.any():
                return
            table, ts, arm = table.filter(pa.array(has_unit)), ts[has_unit], arm[has_unit]
            units = table.column("unit")
        units = _one_array(units)
        rows = _rows(state.units, text_keys(units), units)
        self._scatter(rows, ts, arm)
        request = table.column("request_id")
        if request.null_count:
            keyed = _true(pc.is_valid(request))
            keys, rows = text_keys(request.filter(pa.array(keyed))), rows[keyed]
        else:
            keys = text_keys(request)
        self.requests.append((keys, rows.astype(np.int32)))
        self.read += len(ts)

    def _interleaved(self, requests: Any) -> None:
        """Index the requests of interleaved answers (:data:`INTERLEAVED_ROW`), so an outcome
        posted by one of them is known for the interleaving test's, not left to expire."""
        if requests.null_count:
            requests = requests.filter(pc.is_valid(requests))
        keys = text_keys(requests)
        self.requests.append((keys, np.full(len(keys), INTERLEAVED_ROW, np.int32)))
        self.read += len(keys)

    def _scatter(self, rows: Ints, ts: Ints, arm: npt.NDArray[np.int8]) -> None:
        u = self.state.units
        candidate = arm == 1
        np.minimum.at(u.first_candidate, rows[candidate], ts[candidate])
        np.minimum.at(u.first_key, rows, ts * 2 + arm)  # time * 2 + arm: control first on a tie
        if len(self.times) == 1:  # one step, the rollout's first: every answer is in it
            # a plain assignment: every duplicate of a row writes the same min (or max)
            step = self.steps[0]
            mine = rows[candidate]
            u.candidate_step_min[mine] = np.minimum(u.candidate_step_min[mine], step)
            mine = rows[~candidate]
            u.control_step_max[mine] = np.maximum(u.control_step_max[mine], step)
        else:
            position = np.searchsorted(self.times, ts, side="right") - 1
            steps = np.where(position >= 0, self.steps[np.maximum(position, 0)], 0)
            steps = steps.astype(np.int16)
            np.minimum.at(u.candidate_step_min, rows[candidate], steps[candidate])
            np.maximum.at(u.control_step_max, rows[~candidate], steps[~candidate])
        np.add.at(u.exposures, rows, 1)

    def finish(self) -> None:
        """The request index's new segment (one per check), and the answers' clock."""
        if self.requests:
            keys, rows = zip(*self.requests, strict=True)
            self.state.requests.add(np.concatenate(keys), np.concatenate(rows))
            self.requests = []
        self.state.latest_answer_us = max(self.state.latest_answer_us, self.latest)


def _one_array(column: Any) -> Any:
    """An arrow (chunked) array as one array (a copy only when it has several chunks)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _arms(column: Any) -> npt.NDArray[np.int8]:
    """Each answer's arm: 0 control, 1 candidate, 2 interleaved, -1 another value or null."""
    codes = np.full(len(column), -1, np.int8)
    for code, name in enumerate(ANSWER_ARMS):
        codes[_true(pc.equal(column, name))] = code
    return codes


def _count_arms(state: UnitsState, table: pa.Table, arm: npt.NDArray[Any]) -> None:
    """Add a chunk's answers to each arm's counts: the four counts in one ``bincount`` over
    a code per answer (arm, fallback, error, slow), the latency histograms in another."""
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
    code = arm.astype(np.int64) << 3
    code |= fallback << 2
    code |= error << 1
    code |= slow
    many = len(ANSWER_ARMS)
    flags = np.bincount(code, minlength=8 * many).reshape(many, 2, 2, 2)  # arm, fallback, ...
    width = len(LATENCY_EDGES) + 1
    timed = arm[measured].astype(np.int64) * width + latency_bins(latency[measured])
    histograms = np.bincount(timed, minlength=many * width).reshape(many, width)
    versions = np.asarray(
        pc.fill_null(table.column("model_version"), -1).to_numpy(zero_copy_only=False), np.int64
    )
    tallies = _tally(versions, arm)
    for code_of_arm, name in enumerate(ANSWER_ARMS):
        mine = flags[code_of_arm]
        if not mine.any():
            continue
        counts = state.arms.setdefault(name, ArmCounts())
        counts.answers += int(mine.sum())
        counts.fallbacks += int(mine[1].sum())
        counts.errors += int(mine[:, 1].sum())
        counts.slow += int(mine[:, :, 1].sum())
        histogram = histograms[code_of_arm].tolist()
        counts.latency = [a + b for a, b in zip(counts.latency, histogram, strict=True)]
        for version, number in tallies[code_of_arm]:
            key = str(version) if version >= 0 else "unknown"
            counts.versions[key] = counts.versions.get(key, 0) + number


_LOG_EDGES: Final = np.log(LATENCY_EDGES)
_LOG_STEP: Final = float(np.diff(_LOG_EDGES).mean())


def latency_bins(latency: Floats) -> Ints:
    """Each latency's bin among :data:`~taxiway.monitoring.windows.LATENCY_EDGES`: the
    number of edges below it (``searchsorted(..., side="left")``), from its logarithm (the
    edges are log-spaced), then moved by one where rounding put it past an edge.

    >>> values = np.array([0.0, 0.1, 0.1000001, 3.0, 60_000.0, 1e9])
    >>> latency_bins(values).tolist() == np.searchsorted(LATENCY_EDGES, values).tolist()
    True
    """
    last = len(LATENCY_EDGES)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.ceil((np.log(latency) - _LOG_EDGES[0]) / _LOG_STEP)
    bins: Ints = np.clip(np.nan_to_num(estimate, nan=0.0, neginf=0.0), 0, last).astype(np.int64)
    bins -= (bins > 0) & (LATENCY_EDGES[np.maximum(bins - 1, 0)] >= latency)
    bins += (bins < last) & (LATENCY_EDGES[np.minimum(bins, last - 1)] < latency)
    return bins


def _tally(values: Ints, arm: npt.NDArray[Any]) -> list[list[tuple[int, int]]]:
    """Per arm, each distinct value and how often it occurs (one count per (arm, value)
    when the values are few)."""
    many = len(ANSWER_ARMS)
    if not len(values):
        return [[] for _ in range(many)]
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span <= 65_536:
        counts = np.bincount(arm * span + (values - low), minlength=many * span)
        counts = counts.reshape(many, span)
        found = [np.flatnonzero(row) for row in counts]
        return [
            list(zip((where + low).tolist(), counts[a][where].tolist(), strict=True))
            for a, where in enumerate(found)
        ]
    tallies = []
    for code in range(many):
        distinct, numbers = np.unique(values[arm == code], return_counts=True)
        tallies.append(list(zip(distinct.tolist(), numbers.tolist(), strict=True)))
    return tallies


def _take_outcomes(state: UnitsState, requested: _Batch, table: pa.Table, names: list[str]) -> None:
    """Fold a chunk's outcomes of ``names`` that name a unit (their values as numbers);
    keep those that name only a request in ``requested``."""
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
            key=text_keys(asked.column("request_id")),
            name=name.astype(np.int16),
            value=value,
            is_bool=is_bool,
            at=at,
            received=np.where(readable, received, at),
        )
    if not has_unit.all():
        table = table.filter(pa.array(has_unit))
    if not table.num_rows:
        return
    at, value, is_bool, name = _outcome_values(table, names)
    units = _one_array(table.column("unit"))
    rows = _rows(state.units, text_keys(units), units)
    columns = {"at": at, "value": value, "is_bool": is_bool, "name": name}
    _fold_outcomes(state, rows, columns, names)


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
    found = (rows >= 0) & (rows != INTERLEAVED_ROW)
    if found.any():
        state.by_request += int(np.count_nonzero(found))
        columns: dict[str, npt.NDArray[Any]] = {
            "at": pending.at[found],
            "value": pending.value[found],
            "is_bool": pending.is_bool[found],
            "name": pending.name[found].astype(np.int64),
        }
        _fold_outcomes(state, rows[found], columns, names)
    interleaved = rows == INTERLEAVED_ROW
    state.outcomes_interleaved += int(np.count_nonzero(interleaved))
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
    """Times read as :data:`~taxiway.monitoring.columnar.TIME` (µs since the epoch, UTC),
    and which were readable (an unreadable one is 0)."""
    micros = pc.fill_null(pc.cast(column, pa.int64()), 0)
    values = np.asarray(micros.to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, _true(pc.is_valid(column))


def _micros_of(moment: datetime) -> int:
    return int(pa.scalar(moment, pa.timestamp("us", tz="UTC")).value or 0)
