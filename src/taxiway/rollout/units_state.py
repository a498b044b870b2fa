"""The rollout's unit state in memory and on disk: :class:`ArmCounts` per arm,
:class:`UnitColumns` per unit, :class:`UnitsState` with the log cursors (see :mod:`.units`
for what each quantity means and how the logs fill them).

On disk it is one Arrow IPC file, ``<state>/rollout/<id>/units.arrow``: the per-unit columns,
with the cursors and the arm counts in its schema metadata, written to a temporary file and
renamed over the old one, so a process killed at any point leaves the previous state whole.
The request index and the pending outcomes (:class:`RequestIndex`, :class:`PendingOutcomes`)
have other lengths, so they go in files beside it whose names carry a fresh token
(``requests.<token>.arrow``, one per segment of the index, and ``pending.<token>.arrow``),
written *before* ``units.arrow`` names them: the rename of ``units.arrow`` commits them all at
once, and the files the previous state named are deleted after it. A file whose content did
not change is given the new name by a hard link, not written again: a check writes the
request index's new segment (what it read), not the whole index.

Units are found by a 64-bit key, a hash of their name (:func:`.units.text_keys`), kept beside
the name and looked up in a :class:`KeyRows` table. The state's format (:data:`FORMAT`) is stored with it: a state
of another format is read again from the logs' start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as _pc

from taxiway.errors import RolloutError
from taxiway.monitoring.segments import LogCursor
from taxiway.monitoring.windows import LATENCY_EDGES

__all__ = [
    "ANSWER_ARMS",
    "ARMS",
    "INTERLEAVED",
    "INTERLEAVED_ROW",
    "NONE",
    "NO_STEP_MAX",
    "NO_STEP_MIN",
    "ArmCounts",
    "KeyRows",
    "PendingOutcomes",
    "RequestIndex",
    "UnitColumns",
    "UnitsState",
]

ARMS: Final = ("control", "candidate")
INTERLEAVED: Final = "interleaved"
"""The ``arm`` of an interleaved answer (``rollout.interleaving``): counted as an arm of its
own (:class:`ArmCounts`), never a unit's exposure."""
ANSWER_ARMS: Final = (*ARMS, INTERLEAVED)
"""The arms whose answers are counted, in code order (0, 1, 2)."""
NONE: Final = np.iinfo(np.int64).max
"""A time (µs) or key never seen."""
NO_STEP_MAX: Final = -1
NO_STEP_MIN: Final = np.iinfo(np.int16).max
FORMAT: Final = 3
"""The state's on-disk format: 2 keys units and requests by :func:`.units.text_keys`; 3 adds
the interleaved arm and its requests (:data:`INTERLEAVED_ROW`)."""
_FILE: Final = "units.arrow"

pc: Any = _pc  # the stubs refuse plain Python scalars where pyarrow takes them
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Keys = npt.NDArray[np.uint64]
AMBIGUOUS: Final = -1
"""The row of a request whose answers named different units: its outcomes go to none."""
MISSING: Final = -2
"""The row :meth:`RequestIndex.find` gives a request it has not seen."""
INTERLEAVED_ROW: Final = int(np.iinfo(np.int32).max)
"""The row the request index holds for an interleaved answer's request (no unit row: its
outcomes are the interleaving test's, :mod:`taxiway.rollout.interleaved`)."""


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

    unit: Any  # the unit names, one per row: a pyarrow string array
    key: Keys  # a 64-bit hash of each name (units.unit_keys): how a check finds a unit
    first_key: Ints  # first answer: time (µs) * 2 + arm (0 control, 1 candidate); NONE if none
    first_candidate: Ints  # µs, NONE if never a candidate
    control_step_max: npt.NDArray[np.int16]
    candidate_step_min: npt.NDArray[np.int16]
    exposures: Ints
    bucket: npt.NDArray[np.int16]  # the unit's assignment bucket (0..9999), -1 until answered
    pre: dict[str, Floats]
    post: dict[str, Floats]
    post_events: dict[str, Ints]
    _spare: dict[str, npt.NDArray[Any]] = field(default_factory=dict, repr=False, compare=False)
    """Each column's buffer with room to grow (:meth:`add`): the column is a view of it."""
    _index: KeyRows | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, names: Iterable[str]) -> UnitColumns:
        """No unit yet, with room for the outcomes ``names``."""
        names = list(names)
        return cls(
            pa.array([], pa.string()),
            np.empty(0, np.uint64),
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

    def rows_of(self, keys: Keys) -> Ints:
        """The row of each unit key (-1 where none), from the keys' hash table
        (:class:`KeyRows`, built at the first lookup and kept up to date by :meth:`add`)."""
        if self._index is None or len(self._index) != len(self):
            self._index = KeyRows(self.key)
        return self._index.find(keys)

    def add(self, names: Any, keys: Keys) -> None:
        """Append the units ``names`` (an arrow string array) with their distinct ``keys``
        (never seen before), with nothing known of them yet.

        The columns grow into spare capacity (doubling), and the names are kept as chunks
        until :meth:`settle`, so adding a few units at each of many chunks of a read copies
        each column about twice, not once per chunk."""
        added, held = len(keys), len(self)
        if not added:
            return
        self.unit = pa.chunked_array([*_chunks(self.unit), names.cast(pa.string())], pa.string())
        total = held + added
        for holder, name, label, fill in self._columns():
            values = holder[name]
            spare = self._spare.get(label)
            if spare is None or len(spare) < total or values.base is not spare:
                spare = np.empty(max(total, 2 * held, 1024), values.dtype)
                spare[:held] = values
                self._spare[label] = spare
            spare[held:total] = fill
            holder[name] = spare[:total]
        self.key[held:] = keys
        if self._index is not None and len(self._index) == held:
            self._index.insert(self.key[held:], np.arange(held, total))

    def settle(self) -> None:
        """The names as one array again (after :meth:`add`): what is saved and hashed."""
        if isinstance(self.unit, pa.ChunkedArray):
            self.unit = (
                self.unit.combine_chunks() if self.unit.num_chunks != 1 else self.unit.chunk(0)
            )

    def _columns(self) -> list[tuple[dict[str, Any], str, str, Any]]:
        """Where each numeric column is held, under which name, its label, and a new unit's
        value."""
        fields: dict[str, Any] = vars(self)
        plain = [
            ("key", 0),
            ("first_key", NONE),
            ("first_candidate", NONE),
            ("control_step_max", NO_STEP_MAX),
            ("candidate_step_min", NO_STEP_MIN),
            ("exposures", 0),
            ("bucket", -1),
        ]
        parts: dict[str, dict[str, Any]] = {
            "pre": self.pre,
            "post": self.post,
            "post_events": self.post_events,
        }
        return [(fields, name, name, fill) for name, fill in plain] + [
            (holder, name, f"{part}:{name}", 0)
            for part, holder in parts.items()
            for name in list(holder)
        ]


class KeyRows:
    """A hash table from 64-bit unit keys to rows: open addressing with linear probing in
    two numpy arrays (a slot's key, and its row or -1), at most half full, every operation
    vectorised over the keys asked (a round per probe, over the keys still probing).

    pyarrow's hash lookup (``index_in``) rebuilds its table from the value set at every
    call, and a check looks up each chunk it reads: this table is built once per check and
    grows with the units added.

    >>> table = KeyRows(np.array([7, 3, 2**63 + 7], np.uint64))
    >>> table.find(np.array([3, 5, 2**63 + 7, 7], np.uint64)).tolist()
    [1, -1, 2, 0]
    >>> table.insert(np.array([5], np.uint64), np.array([3]))
    >>> table.find(np.array([5, 4], np.uint64)).tolist()
    [3, -1]
    """

    def __init__(self, keys: Keys) -> None:
        self._entries = 0
        self._allocate(max(1024, 1 << int(2 * max(len(keys), 1) - 1).bit_length()))
        self.insert(np.asarray(keys, np.uint64), np.arange(len(keys)))

    def __len__(self) -> int:
        return self._entries

    def _allocate(self, slots: int) -> None:
        self._keys = np.zeros(slots, np.uint64)
        self._rows = np.full(slots, -1, np.int64)
        self._mask = np.uint64(slots - 1)

    def _home(self, keys: Keys) -> Ints:
        # the keys are hashes already (splitmix64's finaliser): their high bits are uniform
        shift = np.uint64(64 - (len(self._keys).bit_length() - 1))
        return (keys >> shift).astype(np.int64)

    def find(self, keys: Keys) -> Ints:
        """The row of each key; -1 where it is absent."""
        found = np.full(len(keys), -1, np.int64)
        slot = self._home(keys)
        asking = np.arange(len(keys))
        last = len(self._keys) - 1
        while asking.size:
            rows = self._rows[slot]
            hit = (rows >= 0) & (self._keys[slot] == keys[asking])
            found[asking[hit]] = rows[hit]
            probing = (rows >= 0) & ~hit
            asking, slot = asking[probing], (slot[probing] + 1) & last
        return found

    def insert(self, keys: Keys, rows: Ints) -> None:
        """Add ``keys`` (distinct, and absent) with their ``rows``."""
        if 2 * (self._entries + len(keys)) > len(self._keys):
            held = self._rows >= 0
            old_keys, old_rows = self._keys[held], self._rows[held]
            self._allocate(1 << int(4 * (self._entries + len(keys)) - 1).bit_length())
            self._entries = 0
            self.insert(old_keys, old_rows)
        slot = self._home(keys)
        placing = np.arange(len(keys))
        last = len(self._keys) - 1
        while placing.size:
            free = self._rows[slot] < 0
            claim, where = placing[free], slot[free]
            self._keys[where] = keys[claim]  # several keys may claim one slot: one is kept
            won = self._keys[where] == keys[claim]
            self._rows[where[won]] = rows[claim[won]]
            moving = np.ones(len(placing), bool)
            moving[np.flatnonzero(free)[won]] = False
            placing, slot = placing[moving], (slot[moving] + 1) & last
        self._entries += len(keys)


def _chunks(values: Any) -> list[Any]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


@dataclass
class RequestIndex:
    """Which unit row answered each request: one entry per answer read (``key``, the 64-bit
    hash of its request id, and ``row``, its unit's row), in *segments* of no particular
    order, 12 bytes an entry.

    A check's answers are appended as one segment, and a segment no larger than the one
    after it is merged into it, so a rollout keeps about log2(answers / a check's answers)
    segments and an entry is copied about that many times: the index is never sorted or
    rewritten whole, and a save writes only the segments that changed (:class:`UnitsState`).
    :meth:`find` scans the segments for the keys asked (pyarrow's hash ``is_in``, about
    10 ms per million entries), which happens only while outcomes posted by request id wait.
    A request whose answers named different rows is :data:`AMBIGUOUS` (an order-free rule).

    >>> index = RequestIndex.empty()
    >>> index.add(np.array([7, 3, 7], np.uint64), np.array([0, 1, 0]))
    >>> index.add(np.array([3, 9], np.uint64), np.array([2, 4]))
    >>> index.find(np.array([9, 5, 3, 7], np.uint64)).tolist(), len(index.segments)
    ([4, -2, -1, 0], 2)
    >>> index.add(np.array([1, 2], np.uint64), np.array([5, 5]))  # 3, 2, 2 -> 3, 4 -> 7
    >>> [len(keys) for keys, _ in index.segments]
    [7]
    """

    segments: list[tuple[Keys, npt.NDArray[np.int32]]]

    @classmethod
    def empty(cls) -> RequestIndex:
        """No request yet."""
        return cls([])

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self.segments)

    def add(self, keys: Keys, rows: Ints) -> None:
        """Record that request ``keys[i]`` was answered for unit row ``rows[i]``."""
        if not len(keys):
            return
        self.segments.append(
            (keys.astype(np.uint64, copy=False), rows.astype(np.int32, copy=False))
        )
        while len(self.segments) >= 2 and len(self.segments[-2][0]) <= len(self.segments[-1][0]):
            (older_keys, older_rows), (newer_keys, newer_rows) = self.segments[-2:]
            self.segments[-2:] = [
                (np.concatenate([older_keys, newer_keys]), np.concatenate([older_rows, newer_rows]))
            ]

    def find(self, keys: Keys) -> Ints:
        """The unit row of each request: :data:`MISSING` when never seen, :data:`AMBIGUOUS`
        when its answers named different rows."""
        found = np.full(len(keys), MISSING, np.int64)
        if not len(keys) or not self.segments:
            return found
        asked = np.unique(keys)
        value_set = pa.array(asked)
        low = np.full(len(asked), np.iinfo(np.int64).max, np.int64)
        high = np.full(len(asked), -1, np.int64)
        for segment_keys, segment_rows in self.segments:
            hit = pc.is_in(pa.array(segment_keys), value_set=value_set)
            where = np.flatnonzero(np.asarray(hit.to_numpy(zero_copy_only=False), bool))
            if not where.size:
                continue
            at = np.searchsorted(asked, segment_keys[where])
            rows = segment_rows[where].astype(np.int64)
            np.minimum.at(low, at, rows)
            np.maximum.at(high, at, rows)
        row = np.where(high < 0, MISSING, np.where(low == high, low, AMBIGUOUS))
        result: Ints = row[np.searchsorted(asked, keys)]
        return result


@dataclass
class PendingOutcomes:
    """Outcomes posted with a request id only, whose request the prediction log has not
    shown yet: kept to be attributed at a later check (or dropped, see :mod:`.units`)."""

    key: Keys
    name: npt.NDArray[np.int16]  # the index of the outcome's name in the state's names
    value: Floats
    is_bool: npt.NDArray[np.bool_]
    at: Ints  # µs: the outcome's time
    received: Ints  # µs: when the service received it (the time it expires by)

    _COLUMNS: ClassVar = ("key", "name", "value", "is_bool", "at", "received")

    @classmethod
    def empty(cls) -> PendingOutcomes:
        """None pending."""
        return cls(
            np.empty(0, np.uint64),
            np.empty(0, np.int16),
            np.empty(0),
            np.empty(0, bool),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.key)

    def filter(self, mask: npt.NDArray[np.bool_]) -> PendingOutcomes:
        """The outcomes where ``mask`` holds."""
        return PendingOutcomes(*(getattr(self, c)[mask] for c in self._COLUMNS))

    def concat(self, other: PendingOutcomes) -> PendingOutcomes:
        """These outcomes, then ``other``'s."""
        return PendingOutcomes(
            *(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self._COLUMNS)
        )

    def table(self) -> pa.Table:
        """As an Arrow table."""
        return pa.table({c: getattr(self, c) for c in self._COLUMNS})


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
    requests: RequestIndex = field(default_factory=RequestIndex.empty)
    pending: PendingOutcomes = field(default_factory=PendingOutcomes.empty)
    by_request: int = 0
    """Outcomes without a unit attributed by their request id."""
    expired: int = 0
    """Outcomes without a unit whose request never showed (counted in ``unattributed`` too)."""
    latest_answer_us: int = 0
    """The latest answer time read (µs): the clock pending outcomes expire by."""
    outcomes_interleaved: int = 0
    """Outcomes without a unit whose request was an interleaved answer: the interleaving
    test's (:mod:`taxiway.rollout.interleaved`), neither attributed, pending nor expired."""
    _files: list[tuple[str, Any]] = field(default_factory=list)
    """The side files as last loaded or saved: each one's name, and the array or object it
    held then (a file is reused while the state still holds that very object)."""

    @classmethod
    def new(cls, names: Iterable[str], latency_limit_ms: float | None) -> UnitsState:
        """The state before anything is read."""
        return cls(
            UnitColumns.empty(names),
            {arm: ArmCounts() for arm in ANSWER_ARMS},
            latency_limit_ms=latency_limit_ms,
        )

    @property
    def saved(self) -> bool:
        """Whether this state was loaded from, or saved to, a folder."""
        return bool(self._files)

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
            "unit": u.unit,
            "key": u.key,
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
            "by_request": self.by_request,
            "expired": self.expired,
            "latest_answer_us": self.latest_answer_us,
            "outcomes_interleaved": self.outcomes_interleaved,
        }
        token = secrets.token_hex(8)
        sides: list[tuple[str, Any, Callable[[], pa.Table]]] = [
            (f"requests.{token}.{i}.arrow", keys, _segment_table(keys, rows))
            for i, (keys, rows) in enumerate(self.requests.segments)
        ]
        sides.append((f"pending.{token}.arrow", self.pending, self.pending.table))
        meta["requests"] = [name for name, _, _ in sides[:-1]]
        meta["pending"] = sides[-1][0]
        meta["format"] = FORMAT
        table = pa.table(columns).replace_schema_metadata({"taxiway": orjson.dumps(meta)})
        before = {id(held): name for name, held in self._files}
        try:
            for name, held, content in sides:
                kept = before.get(id(held))
                if kept is None or not _link(folder / kept, folder / name):
                    _write(content(), folder / name)
            _write(table, folder / _FILE)  # the commit: it names the files just written
        except OSError as error:
            for name, _, _ in sides:
                (folder / name).unlink(missing_ok=True)
            raise RolloutError(
                f"cannot write the rollout's unit state in {folder}: {error.strerror or error}",
                fix="make the state directory writable and check free disk space",
            ) from None
        for name, _ in self._files:
            (folder / name).unlink(missing_ok=True)
        self._files = [(name, held) for name, held, _ in sides]

    @classmethod
    def load(cls, folder: Path, names: Sequence[str], latency_limit_ms: float | None) -> UnitsState:
        """The state saved in ``folder``; a new one when there is none, or when it was kept
        for other outcome names or another latency limit (then everything is read again)."""
        path = folder / _FILE
        if not path.exists():
            return cls.new(names, latency_limit_ms)
        for attempt in (1, 2):  # a second time if another saver replaced it while it was read
            try:
                table = _read(path)
                meta = orjson.loads((table.schema.metadata or {})[b"taxiway"])
                if (
                    meta.get("format") != FORMAT
                    or meta["names"] != list(names)
                    or meta["latency_limit_ms"] != latency_limit_ms
                ):
                    return cls.new(names, latency_limit_ms)
                segments = [(name, _read(folder / name)) for name in meta["requests"]]
                pending = _read(folder / meta["pending"])
                break
            except (OSError, pa.ArrowInvalid, KeyError, orjson.JSONDecodeError) as error:
                if attempt == 2 or not isinstance(error, FileNotFoundError):
                    raise RolloutError(
                        f"the rollout's unit state {path} cannot be read ({error})",
                        fix=f"delete {path}: the next check reads the logs again from their start",
                    ) from None

        def column(name: str) -> npt.NDArray[Any]:
            return np.array(table.column(name).to_numpy())  # a writable copy

        units = UnitColumns(
            table.column("unit").combine_chunks(),
            column("key"),
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
        loaded = cls(
            units,
            arms,
            LogCursor.from_dict(meta["answers_cursor"]),
            LogCursor.from_dict(meta["outcomes_cursor"]),
            dict(meta["boolean"]),
            int(meta["answers_without_unit"]),
            int(meta["unattributed"]),
            int(meta["moved_outcomes"]),
            latency_limit_ms,
            RequestIndex([(_view(t, "key"), _view(t, "row")) for _, t in segments]),
            PendingOutcomes(*(_array(pending, c) for c in PendingOutcomes._COLUMNS)),
            int(meta["by_request"]),
            int(meta["expired"]),
            int(meta["latest_answer_us"]),
            int(meta["outcomes_interleaved"]),
        )
        loaded._files = [
            (name, keys)
            for (name, _), (keys, _) in zip(segments, loaded.requests.segments, strict=True)
        ]
        loaded._files.append((str(meta["pending"]), loaded.pending))
        return loaded


def _write(table: pa.Table, path: Path) -> None:
    """``table`` to ``path`` atomically (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _link(source: Path, target: Path) -> bool:
    """A second name for an unchanged side file (no bytes written); False when it cannot be
    made (the file is gone: another saver replaced the state), so it is written again."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def _segment_table(keys: Keys, rows: npt.NDArray[np.int32]) -> Callable[[], pa.Table]:
    return lambda: pa.table({"key": pa.array(keys), "row": pa.array(rows)})


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _array(table: pa.Table, name: str) -> npt.NDArray[Any]:
    return np.array(table.column(name).to_numpy())  # a writable copy


def _view(table: pa.Table, name: str) -> npt.NDArray[Any]:
    """A column as numpy without a copy (read-only: a request segment is never changed)."""
    column = table.column(name)
    return (
        column.combine_chunks().to_numpy() if column.num_chunks != 1 else column.chunk(0).to_numpy()
    )
