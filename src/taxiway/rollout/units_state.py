"""The rollout's unit state in memory and on disk: :class:`ArmCounts` per arm,
:class:`UnitColumns` per unit, :class:`UnitsState` with the log cursors (see :mod:`.units`
for what each quantity means and how the logs fill them).

On disk it is one Arrow IPC file, ``<state>/rollout/<id>/units.arrow``: the per-unit columns,
with the cursors and the arm counts in its schema metadata, written to a temporary file and
renamed over the old one, so a process killed at any point leaves the previous state whole.
The request index and the pending outcomes (:class:`RequestIndex`, :class:`PendingOutcomes`)
have other lengths, so they go in two files beside it whose names carry a fresh token
(``requests.<token>.arrow``, ``pending.<token>.arrow``), written *before* ``units.arrow``
names them: the rename of ``units.arrow`` commits all three at once, and the files the
previous state named are deleted after it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from taxiway.errors import RolloutError
from taxiway.monitoring.segments import LogCursor
from taxiway.monitoring.windows import LATENCY_EDGES

__all__ = [
    "ARMS",
    "NONE",
    "NO_STEP_MAX",
    "NO_STEP_MIN",
    "ArmCounts",
    "PendingOutcomes",
    "RequestIndex",
    "UnitColumns",
    "UnitsState",
]

ARMS: Final = ("control", "candidate")
NONE: Final = np.iinfo(np.int64).max
"""A time (µs) or key never seen."""
NO_STEP_MAX: Final = -1
NO_STEP_MIN: Final = np.iinfo(np.int16).max
_FILE: Final = "units.arrow"

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Keys = npt.NDArray[np.uint64]
AMBIGUOUS: Final = -1
"""The row of a request whose answers named different units: its outcomes go to none."""
MISSING: Final = -2
"""The row :meth:`RequestIndex.find` gives a request it has not seen."""


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
            pa.array([], pa.string()),
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

    def add(self, names: Any) -> None:
        """Append the units ``names`` (never seen before), with nothing known of them yet."""
        added = len(names)
        self.unit = pa.concat_arrays([self.unit, names.cast(pa.string())])

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
class RequestIndex:
    """Which unit row answered each request: ``keys`` (the 64-bit hash of the request id,
    sorted ascending, unique) and ``rows`` beside them (:data:`AMBIGUOUS` when the request's
    answers named different units). 16 bytes per request.

    >>> index = RequestIndex.empty()
    >>> index.add(np.array([7, 3, 7], np.uint64), np.array([0, 1, 0]))
    >>> index.add(np.array([3, 9], np.uint64), np.array([2, 4]))
    >>> index.keys.tolist(), index.rows.tolist()
    ([3, 7, 9], [-1, 0, 4])
    >>> index.find(np.array([9, 5, 3], np.uint64)).tolist()
    [4, -2, -1]
    """

    keys: Keys
    rows: Ints
    changes: int = 0
    """How many times :meth:`add` changed it (a save rewrites it only when it changed)."""

    @classmethod
    def empty(cls) -> RequestIndex:
        """No request yet."""
        return cls(np.empty(0, np.uint64), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: Keys, rows: Ints) -> None:
        """Record that request ``keys[i]`` was answered for unit row ``rows[i]``: a request
        seen with two rows becomes :data:`AMBIGUOUS` (an order-free rule)."""
        if not len(keys):
            return
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        fresh, start = np.unique(keys, return_index=True)
        end = np.append(start[1:], len(keys))
        row = np.where(rows[start] == rows[end - 1], rows[start], AMBIGUOUS)
        at = np.searchsorted(self.keys, fresh)
        inside = at < len(self.keys)
        known = np.zeros(len(fresh), bool)
        known[inside] = self.keys[at[inside]] == fresh[inside]
        if known.any():
            place = at[known]
            same = self.rows[place] == row[known]
            self.rows[place] = np.where(same, self.rows[place], AMBIGUOUS)
        new = ~known
        self.changes += 1
        self.keys = np.insert(self.keys, at[new], fresh[new])
        self.rows = np.insert(self.rows, at[new], row[new])

    def find(self, keys: Keys) -> Ints:
        """The unit row of each request: :data:`MISSING` when never seen."""
        if not len(self.keys):
            return np.full(len(keys), MISSING, np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found: Ints = np.where(self.keys[at] == keys, self.rows[at], MISSING)
        return found


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
    _files: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """Per side file: its name as last loaded or saved, and what it held then."""

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
            "unit": u.unit,
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
        }
        token = secrets.token_hex(8)
        sides: dict[str, tuple[tuple[Any, int], RequestIndex | PendingOutcomes]] = {
            "requests": ((self.requests, self.requests.changes), self.requests),
            "pending": ((self.pending, 0), self.pending),
        }
        names = {kind: f"{kind}.{token}.arrow" for kind in sides}
        meta.update(names)
        table = pa.table(columns).replace_schema_metadata({"taxiway": orjson.dumps(meta)})
        try:
            for kind, (mark, held) in sides.items():
                before = self._files.get(kind)
                kept = before is not None and _same(before[1], mark)
                if not (kept and before and _link(folder / before[0], folder / names[kind])):
                    _write(_side_table(held), folder / names[kind])
            _write(table, folder / _FILE)  # the commit: it names the files just written
        except OSError as error:
            for name in names.values():
                (folder / name).unlink(missing_ok=True)
            raise RolloutError(
                f"cannot write the rollout's unit state in {folder}: {error.strerror or error}",
                fix="make the state directory writable and check free disk space",
            ) from None
        for name, _ in self._files.values():
            (folder / name).unlink(missing_ok=True)
        self._files = {kind: (names[kind], mark) for kind, (mark, _) in sides.items()}

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
                if meta["names"] != list(names) or meta["latency_limit_ms"] != latency_limit_ms:
                    return cls.new(names, latency_limit_ms)
                requests, pending = (
                    _read(folder / meta["requests"]),
                    _read(folder / meta["pending"]),
                )
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
            RequestIndex(_array(requests, "key"), _array(requests, "row")),
            PendingOutcomes(*(_array(pending, c) for c in PendingOutcomes._COLUMNS)),
            int(meta["by_request"]),
            int(meta["expired"]),
            int(meta["latest_answer_us"]),
        )
        loaded._files = {
            "requests": (str(meta["requests"]), (loaded.requests, loaded.requests.changes)),
            "pending": (str(meta["pending"]), (loaded.pending, 0)),
        }
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


def _same(before: tuple[Any, int], now: tuple[Any, int]) -> bool:
    """Whether a side file's content is what it was when last loaded or saved."""
    return before[0] is now[0] and before[1] == now[1]


def _link(source: Path, target: Path) -> bool:
    """A second name for an unchanged side file (no bytes written); False when it cannot be
    made (the file is gone: another saver replaced the state), so it is written again."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def _side_table(held: RequestIndex | PendingOutcomes) -> pa.Table:
    if isinstance(held, RequestIndex):
        return pa.table({"key": pa.array(held.keys), "row": pa.array(held.rows)})
    return held.table()


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _array(table: pa.Table, name: str) -> npt.NDArray[Any]:
    return np.array(table.column(name).to_numpy())  # a writable copy
