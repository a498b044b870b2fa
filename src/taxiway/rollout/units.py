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
  1/0. Outcomes without a unit cannot be attributed (``unattributed``).

An outcome is classified with what the prediction log held when it was read: outcomes are
read after the answers of the same check, so an answer logged after the outcome it led to
(a clock skew beyond the read) is the one case where pieces and one read may differ.

The state lives in ``<state>/rollout/<id>/units.arrow``: one Arrow IPC file (the per-unit
columns, with the cursors and the arm counts in its metadata), replaced atomically, so a
check killed at any point leaves the previous state and its cursors together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as _pc

from taxiway.errors import RolloutError
from taxiway.monitoring.segments import LogCursor, iter_new
from taxiway.monitoring.windows import ERROR_REASONS, LATENCY_EDGES
from taxiway.rollout.assignment import bucket

__all__ = [
    "LOG_GLOB",
    "ArmCounts",
    "UnitColumns",
    "UnitsState",
    "update_units",
]

LOG_GLOB: Final = "predictions-*.jsonl"
ARMS: Final = ("control", "candidate")
NONE: Final = np.iinfo(np.int64).max
"""A time (µs) or key never seen."""
NO_STEP_MAX: Final = -1
NO_STEP_MIN: Final = np.iinfo(np.int16).max
_ERRORS: Final = "(?:^|; )(?:" + "|".join(re.escape(r) for r in ERROR_REASONS) + ")"
_FILE: Final = "units.arrow"
_TEXT: pa.DataType = pa.string()
_ANSWER_FIELDS: list[pa.Field[Any]] = [
    pa.field("ts", _TEXT),
    pa.field("unit", _TEXT),
    pa.field("arm", _TEXT),
    pa.field("model_version", pa.int64()),
    pa.field("path", _TEXT),
    pa.field("reason", _TEXT),
    pa.field("latency_ms", pa.float64()),
]
_ANSWERS: Final = pa.schema(_ANSWER_FIELDS)
_OUTCOMES: Final = pa.schema(
    [
        pa.field("unit", _TEXT),
        pa.field("name", _TEXT),
        pa.field("value", _TEXT),  # a boolean or a number: read as text, converted here
        pa.field("timestamp", _TEXT),
        pa.field("received_at", _TEXT),
    ]
)

pc: Any = _pc  # the stubs refuse plain Python scalars where pyarrow takes them
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass
class ArmCounts:
    """One arm's answers and what went wrong with them (see the module's definitions)."""

    answers: int = 0
    fallbacks: int = 0
    errors: int = 0
    slow: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES) + 1))
    versions: dict[str, int] = field(default_factory=dict)

    def latency_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of latency (ms), at the histogram's resolution (the upper edge
        of the bin holding it; bins are about 14% wide); None without answers.

        >>> counts = ArmCounts(answers=100, latency=[0] * 10 + [99, 1] + [0] * 88)
        >>> round(counts.latency_quantile(0.99), 3), counts.latency_quantile(0.999) > 0.3
        (0.389, True)
        """
        total = sum(self.latency)
        if total == 0:
            return None
        rank = np.searchsorted(np.cumsum(self.latency), q * total, side="left")
        return float(LATENCY_EDGES[min(int(rank), len(LATENCY_EDGES) - 1)])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


@dataclass
class UnitColumns:
    """The per-unit state, one row per unit seen (exposed, or with an outcome only)."""

    unit: list[str]
    first_key: Ints  # first answer: time (µs) * 2 + arm (0 control, 1 candidate); NONE if none
    first_candidate: Ints  # µs, NONE if never a candidate
    control_step_max: npt.NDArray[np.int16]
    candidate_step_min: npt.NDArray[np.int16]
    exposures: Ints
    bucket: npt.NDArray[np.int16]  # the unit's assignment bucket (0..9999), -1 until answered
    pre: dict[str, Floats]
    post: dict[str, Floats]
    post_events: dict[str, Ints]

    @classmethod
    def empty(cls, names: Iterable[str]) -> UnitColumns:
        """No unit yet, with room for the outcomes ``names``."""
        names = list(names)
        return cls(
            [],
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int16),
            np.empty(0, np.int16),
            np.empty(0, np.int64),
            np.empty(0, np.int16),
            {n: np.empty(0) for n in names},
            {n: np.empty(0) for n in names},
            {n: np.empty(0, np.int64) for n in names},
        )

    def __len__(self) -> int:
        return len(self.unit)

    @property
    def exposed(self) -> npt.NDArray[np.bool_]:
        """Units with at least one answer."""
        exposed: npt.NDArray[np.bool_] = self.first_key != NONE
        return exposed

    @property
    def first_us(self) -> Ints:
        """Each unit's first answer time (µs; NONE when never answered)."""
        return np.where(self.exposed, self.first_key >> 1, NONE)

    @property
    def first_arm(self) -> npt.NDArray[np.int8]:
        """0 control, 1 candidate, -1 never answered."""
        return np.where(self.exposed, self.first_key & 1, -1).astype(np.int8)

    @property
    def in_both(self) -> npt.NDArray[np.bool_]:
        """Units that saw both arms within one step, or went back to control."""
        return self.control_step_max.astype(np.int32) >= self.candidate_step_min

    def grow(self, added: int) -> None:
        """Append ``added`` units never seen (their names already appended to ``unit``)."""

        def more(values: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            return np.concatenate([values, np.full(added, fill, values.dtype)])

        self.first_key = more(self.first_key, NONE)
        self.first_candidate = more(self.first_candidate, NONE)
        self.control_step_max = more(self.control_step_max, NO_STEP_MAX)
        self.candidate_step_min = more(self.candidate_step_min, NO_STEP_MIN)
        self.exposures = more(self.exposures, 0)
        self.bucket = more(self.bucket, -1)
        for name in self.pre:
            self.pre[name] = more(self.pre[name], 0.0)
            self.post[name] = more(self.post[name], 0.0)
            self.post_events[name] = more(self.post_events[name], 0)


@dataclass
class UnitsState:
    """A rollout's units and arms, and how far each log was read."""

    units: UnitColumns
    arms: dict[str, ArmCounts]
    answers_cursor: LogCursor = field(default_factory=LogCursor)
    outcomes_cursor: LogCursor = field(default_factory=LogCursor)
    boolean: dict[str, bool] = field(default_factory=dict)
    """Per outcome name: every value read so far was true/false (a unit's value is then
    whether it had any true outcome, else the sum of its values)."""
    answers_without_unit: int = 0
    unattributed: int = 0
    moved_outcomes: int = 0
    latency_limit_ms: float | None = None

    @classmethod
    def new(cls, names: Iterable[str], latency_limit_ms: float | None) -> UnitsState:
        """The state before anything is read."""
        return cls(
            UnitColumns.empty(names),
            {arm: ArmCounts() for arm in ARMS},
            latency_limit_ms=latency_limit_ms,
        )

    def value(self, name: str, part: str = "post") -> Floats:
        """Each unit's outcome ``name`` (``post``) or its pre-exposure value (``pre``): the
        sum of its values, or for a true/false outcome whether it had any true one."""
        values = (self.units.post if part == "post" else self.units.pre)[name]
        if self.boolean.get(name, False):
            return (values > 0).astype(np.float64)
        return values

    # ------------------------------------------------------------------ files

    def save(self, folder: Path) -> None:
        """Write the state to ``folder/units.arrow`` atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        u = self.units
        columns: dict[str, Any] = {
            "unit": pa.array(u.unit, pa.string()),
            "first_key": u.first_key,
            "first_candidate": u.first_candidate,
            "control_step_max": u.control_step_max,
            "candidate_step_min": u.candidate_step_min,
            "exposures": u.exposures,
            "bucket": u.bucket,
        }
        for name in u.pre:
            columns[f"pre:{name}"] = u.pre[name]
            columns[f"post:{name}"] = u.post[name]
            columns[f"post_events:{name}"] = u.post_events[name]
        meta = {
            "arms": {arm: counts.to_dict() for arm, counts in self.arms.items()},
            "answers_cursor": self.answers_cursor.to_dict(),
            "outcomes_cursor": self.outcomes_cursor.to_dict(),
            "boolean": self.boolean,
            "answers_without_unit": self.answers_without_unit,
            "unattributed": self.unattributed,
            "moved_outcomes": self.moved_outcomes,
            "latency_limit_ms": self.latency_limit_ms,
            "names": list(u.pre),
        }
        table = pa.table(columns).replace_schema_metadata({"taxiway": orjson.dumps(meta)})
        temporary = folder / f".{_FILE}.{os.getpid()}"
        try:
            with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            os.replace(temporary, folder / _FILE)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise RolloutError(
                f"cannot write the rollout's unit state in {folder}: {error.strerror or error}",
                fix="make the state directory writable and check free disk space",
            ) from None

    @classmethod
    def load(cls, folder: Path, names: Sequence[str], latency_limit_ms: float | None) -> UnitsState:
        """The state saved in ``folder``; a new one when there is none, or when it was kept
        for other outcome names or another latency limit (then everything is read again)."""
        path = folder / _FILE
        if not path.exists():
            return cls.new(names, latency_limit_ms)
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            meta = orjson.loads((table.schema.metadata or {})[b"taxiway"])
        except (OSError, pa.ArrowInvalid, KeyError, orjson.JSONDecodeError) as error:
            raise RolloutError(
                f"the rollout's unit state {path} cannot be read ({error})",
                fix=f"delete {path}: the next check reads the logs again from their start",
            ) from None
        if meta["names"] != list(names) or meta["latency_limit_ms"] != latency_limit_ms:
            return cls.new(names, latency_limit_ms)

        def column(name: str) -> npt.NDArray[Any]:
            return np.array(table.column(name).to_numpy())  # a writable copy

        units = UnitColumns(
            [str(unit) for unit in table.column("unit").to_pylist()],
            column("first_key"),
            column("first_candidate"),
            column("control_step_max"),
            column("candidate_step_min"),
            column("exposures"),
            column("bucket"),
            {n: column(f"pre:{n}") for n in names},
            {n: column(f"post:{n}") for n in names},
            {n: column(f"post_events:{n}") for n in names},
        )
        arms = {arm: ArmCounts(**counts) for arm, counts in meta["arms"].items()}
        return cls(
            units,
            arms,
            LogCursor.from_dict(meta["answers_cursor"]),
            LogCursor.from_dict(meta["outcomes_cursor"]),
            dict(meta["boolean"]),
            int(meta["answers_without_unit"]),
            int(meta["unattributed"]),
            int(meta["moved_outcomes"]),
            latency_limit_ms,
        )


# --------------------------------------------------------------------------- reading


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
    index = _UnitIndex(state.units)
    started_us = _micros_of(started_at)
    times = np.array([_micros_of(at) for at, _ in boundaries], np.int64)
    steps = np.array([step for _, step in boundaries], np.int16)
    if log_folder.is_dir():
        for chunk in iter_new(log_folder, LOG_GLOB, state.answers_cursor, schema=_ANSWERS):
            _fold_answers(state, index, salt, chunk.table, started_us, times, steps)
            state.answers_cursor = chunk.cursor
    outcomes = outcomes_folder if outcomes_folder is not None else log_folder.parent / "outcomes"
    if names and outcomes.is_dir():
        for chunk in iter_new(outcomes, LOG_GLOB, state.outcomes_cursor, schema=_OUTCOMES):
            _fold_outcomes(state, index, chunk.table, set(names))
            state.outcomes_cursor = chunk.cursor
    if save:
        state.save(folder)
    return state


class _UnitIndex:
    """Unit name -> row, built on first use (a check with nothing new never builds it)."""

    def __init__(self, units: UnitColumns) -> None:
        self.units = units
        self._rows: dict[str, int] | None = None

    def rows(self, column: Any) -> Ints:
        """The row of each value of ``column`` (no nulls), adding the units never seen."""
        if self._rows is None:
            self._rows = {unit: row for row, unit in enumerate(self.units.unit)}
        rows = self._rows
        encoded = pc.dictionary_encode(column).combine_chunks()
        names = encoded.dictionary.to_pylist()
        before = len(self.units.unit)
        mapped = np.empty(len(names), np.int64)
        for i, name in enumerate(names):
            row = rows.get(name)
            if row is None:
                row = rows[name] = len(self.units.unit)
                self.units.unit.append(name)
            mapped[i] = row
        if len(self.units.unit) > before:
            self.units.grow(len(self.units.unit) - before)
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
        return mapped[codes]


def _fold_answers(
    state: UnitsState,
    index: _UnitIndex,
    salt: str,
    table: pa.Table,
    started_us: int,
    times: Ints,
    steps: npt.NDArray[np.int16],
) -> None:
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
    if not has_unit.any():
        return
    units = table.column("unit").filter(pa.array(has_unit))
    ts, arm = ts[has_unit], arm[has_unit]
    rows = index.rows(units)
    u = state.units
    position = np.searchsorted(times, ts, side="right") - 1
    step = np.where(position >= 0, steps[np.maximum(position, 0)], 0).astype(np.int16)
    np.minimum.at(u.first_key, rows, ts * 2 + arm)
    candidate = arm == 1
    np.minimum.at(u.first_candidate, rows[candidate], ts[candidate])
    np.minimum.at(u.candidate_step_min, rows[candidate], step[candidate])
    np.maximum.at(u.control_step_max, rows[~candidate], step[~candidate])
    np.add.at(u.exposures, rows, 1)
    fresh = np.flatnonzero(u.bucket[np.unique(rows)] < 0)
    if fresh.size:
        rows_fresh = np.unique(rows)[fresh]
        u.bucket[rows_fresh] = [bucket(salt, u.unit[row]) for row in rows_fresh.tolist()]


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


def _fold_outcomes(state: UnitsState, index: _UnitIndex, table: pa.Table, names: set[str]) -> None:
    if not table.num_rows:
        return
    wanted = _true(pc.is_in(table.column("name"), pa.array(sorted(names))))
    table = table.filter(pa.array(wanted))
    if not table.num_rows:
        return
    has_unit = _true(pc.is_valid(table.column("unit")))
    state.unattributed += int(np.count_nonzero(~has_unit))
    table = table.filter(pa.array(has_unit))
    if not table.num_rows:
        return
    text = pc.utf8_lower(pc.fill_null(table.column("value"), ""))
    is_true = _true(pc.equal(text, "true"))
    is_bool = is_true | _true(pc.equal(text, "false"))
    numbers = np.asarray(
        pc.cast(pc.if_else(pa.array(is_bool), "0", text), pa.float64(), safe=False)
        .fill_null(0.0)
        .to_numpy(zero_copy_only=False)
        if not is_bool.all()
        else np.zeros(len(is_bool)),
        np.float64,
    )
    value = np.where(is_bool, is_true.astype(np.float64), numbers)
    value = np.where(np.isfinite(value), value, 0.0)
    at, timed = _micros(table.column("timestamp"))
    received, _ = _micros(table.column("received_at"))
    at = np.where(timed, at, received)
    rows = index.rows(table.column("unit"))
    u = state.units
    first = u.first_us[rows]
    moved = (u.first_arm[rows] == 0) & (at >= u.first_candidate[rows])
    pre = at < first
    post = ~pre & ~moved
    state.moved_outcomes += int(np.count_nonzero(~pre & moved))
    name_column = table.column("name")
    for name in names:
        mine = _true(pc.equal(name_column, name))
        if not mine.any():
            continue
        state.boolean[name] = state.boolean.get(name, True) and bool(is_bool[mine].all())
        np.add.at(u.pre[name], rows[mine & pre], value[mine & pre])
        np.add.at(u.post[name], rows[mine & post], value[mine & post])
        np.add.at(
            u.post_events[name], rows[mine & post], (value[mine & post] != 0).astype(np.int64)
        )


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
