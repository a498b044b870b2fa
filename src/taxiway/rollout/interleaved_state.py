"""What the interleaving read has folded so far (:mod:`.interleaved`), in memory and on disk.

:class:`InterleavedState` holds the interleaved users and their clicks per team, every shown
item of the interleaved answers read (a 64-bit key of its request id and item, the user's row
and the team: 13 bytes an item, so a click that arrives later finds its item), the clicks
not matched yet (:class:`WaitingClicks`) and how far each log file was read (a
:class:`~taxiway.monitoring.segments.LogCursor` per folder).

On disk it is one Arrow IPC file, ``<state>/rollout/<id>/interleaved.arrow``: one row whose
columns are lists (their lengths differ), the cursors and counts in the schema's metadata,
written to a temporary file and renamed over the old one, so a check killed at any point
leaves the previous state whole. A state kept for another outcome name, another start or
another :data:`FORMAT` is read again from the logs.
"""

from __future__ import annotations

import os
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

__all__ = ["FORMAT", "InterleavedState", "ShownItems", "WaitingClicks"]

pc: Any = _pc  # the stubs miss some of pyarrow.compute's functions
FORMAT: Final = 1
_FILE: Final = "interleaved.arrow"
Keys = npt.NDArray[np.uint64]


def _columns(owner: Any, names: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
    return {name: getattr(owner, name) for name in names}


@dataclass
class ShownItems:
    """Every item of the interleaved answers read: ``key`` (request id and item,
    :func:`.interleaved.pair_keys`), ``row`` (the user's), ``team`` (0 candidate, 1 control)."""

    key: Keys
    row: npt.NDArray[np.int32]
    team: npt.NDArray[np.int8]

    COLUMNS: ClassVar = ("key", "row", "team")

    @classmethod
    def empty(cls) -> ShownItems:
        """No item yet."""
        return cls(np.empty(0, np.uint64), np.empty(0, np.int32), np.empty(0, np.int8))

    def __len__(self) -> int:
        return len(self.key)

    def concat(self, other: ShownItems) -> ShownItems:
        """These items, then ``other``'s."""
        return ShownItems(
            *(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self.COLUMNS)
        )


@dataclass
class WaitingClicks:
    """Clicks (outcomes of the metric naming a request and an item) that matched no shown item
    yet: ``key`` as :class:`ShownItems`', ``value``, ``received`` (µs: the time they expire by)."""

    key: Keys
    value: npt.NDArray[np.float64]
    received: npt.NDArray[np.int64]

    COLUMNS: ClassVar = ("key", "value", "received")

    @classmethod
    def empty(cls) -> WaitingClicks:
        """None waiting."""
        return cls(np.empty(0, np.uint64), np.empty(0), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.key)

    def filter(self, mask: npt.NDArray[np.bool_]) -> WaitingClicks:
        """The clicks where ``mask`` holds."""
        return WaitingClicks(*(getattr(self, c)[mask] for c in self.COLUMNS))

    def concat(self, other: WaitingClicks) -> WaitingClicks:
        """These clicks, then ``other``'s."""
        return WaitingClicks(
            *(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self.COLUMNS)
        )


@dataclass
class InterleavedState:
    """The interleaving read's state for one outcome name and start (see the module).

    >>> import tempfile
    >>> state = InterleavedState.new("click", 0)
    >>> state.users, state.answers = ["u1"], 3
    >>> state.candidate, state.control = np.array([2.0]), np.array([1.0])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     state.save(Path(tmp))
    ...     again = InterleavedState.load(Path(tmp), "click", 0)
    ...     other = InterleavedState.load(Path(tmp), "purchase", 0)  # another outcome: anew
    >>> again.users, again.candidate.tolist(), again.answers, other.users
    (['u1'], [2.0], 3, [])
    """

    outcome: str
    since_us: int
    users: list[str] = field(default_factory=list)
    candidate: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    control: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    answers: int = 0
    shown: ShownItems = field(default_factory=ShownItems.empty)
    waiting: WaitingClicks = field(default_factory=WaitingClicks.empty)
    answers_cursor: LogCursor = field(default_factory=LogCursor)
    outcomes_cursor: LogCursor = field(default_factory=LogCursor)
    latest_us: int = 0
    """The latest ``received_at`` of a click read (µs): the clock waiting clicks expire by."""
    expired: int = 0
    """Clicks dropped after waiting :data:`~taxiway.rollout.units.PENDING_FOR` (most are the
    A/B arms' clicks: the read cannot tell them from an interleaved answer's not read yet)."""

    @classmethod
    def new(cls, outcome: str, since_us: int) -> InterleavedState:
        """The state before anything is read."""
        return cls(outcome, since_us)

    def save(self, folder: Path) -> None:
        """Write the state to ``folder/interleaved.arrow`` atomically."""
        meta = {
            "format": FORMAT,
            "outcome": self.outcome,
            "since_us": self.since_us,
            "answers": self.answers,
            "answers_cursor": self.answers_cursor.to_dict(),
            "outcomes_cursor": self.outcomes_cursor.to_dict(),
            "latest_us": self.latest_us,
            "expired": self.expired,
        }
        columns: dict[str, Any] = {
            "users": pa.array(self.users, pa.string()),
            "candidate": self.candidate,
            "control": self.control,
            **{f"shown:{c}": v for c, v in _columns(self.shown, ShownItems.COLUMNS).items()},
            **{f"waiting:{c}": v for c, v in _columns(self.waiting, WaitingClicks.COLUMNS).items()},
        }
        table = pa.table(
            {
                name: pa.ListArray.from_arrays([0, len(v)], pa.array(v))
                for name, v in columns.items()
            }
        ).replace_schema_metadata({"taxiway": orjson.dumps(meta)})
        path = folder / _FILE
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            os.replace(temporary, path)
        except OSError as error:
            raise RolloutError(
                f"cannot write the interleaving state in {folder}: {error.strerror or error}",
                fix="make the state directory writable and check free disk space",
            ) from None
        finally:
            temporary.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path, outcome: str, since_us: int) -> InterleavedState:
        """The state saved in ``folder``; a new one when there is none, or when it was kept for
        another outcome, start or format."""
        path = folder / _FILE
        if not path.exists():
            return cls.new(outcome, since_us)
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            meta = orjson.loads((table.schema.metadata or {})[b"taxiway"])
            if (meta.get("format"), meta.get("outcome"), meta.get("since_us")) != (
                FORMAT,
                outcome,
                since_us,
            ):
                return cls.new(outcome, since_us)

            def values(name: str) -> Any:
                return pc.list_flatten(table.column(name))

            def column(name: str) -> npt.NDArray[Any]:
                return np.array(values(name).to_numpy())  # a writable copy

            return cls(
                outcome,
                since_us,
                values("users").to_pylist(),
                column("candidate"),
                column("control"),
                int(meta["answers"]),
                ShownItems(*(column(f"shown:{c}") for c in ShownItems.COLUMNS)),
                WaitingClicks(*(column(f"waiting:{c}") for c in WaitingClicks.COLUMNS)),
                LogCursor.from_dict(meta["answers_cursor"]),
                LogCursor.from_dict(meta["outcomes_cursor"]),
                int(meta["latest_us"]),
                int(meta["expired"]),
            )
        except (OSError, pa.ArrowInvalid, KeyError, orjson.JSONDecodeError) as error:
            raise RolloutError(
                f"the rollout's interleaving state {path} cannot be read ({error})",
                fix=f"delete {path}: the next check reads the logs again from the rollout's start",
            ) from None
