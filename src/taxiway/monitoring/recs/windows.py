"""The recommendation monitor's windows and what it keeps between runs.

A :class:`RecsWindow` counts the answers of the monitored version whose ``ts`` falls in
``[start, end)`` (windows aligned to the Unix epoch, as the classifier monitor's): the paths and
reasons, degraded answers, *model fallbacks* (a fallback for any reason but ``no history``: the
model could have answered and did not), unknown users, the ``recent_items`` sent and those the
catalog does not know, the slots shown per item, per stage and per position, the stages and
popularity deciles of the slots of ``model`` answers (the served mix), then, as they come, the
outcomes credited to its impressions and the realised recall of its answers once judged.

Outcomes and judgements arrive after their answers, so the store keeps each answer of the
version (``request_id``, user, ``ts``, the items shown) in ``kept-<generation>.arrow``:

- an outcome (``request_id``, ``item``, ``name``, ``value``) credits the impression it names
  once per name (``value > 0``: a click, a purchase), in the window of the *answer*, at its
  position; an outcome naming an answer not kept (another version's, one pruned, or an item
  it did not show) joins nothing and is counted in ``unjoined_outcomes``;
- an answer is *judged* once the interactions source holds data up to ``ts + horizon``: the
  user's interactions in ``(ts, ts + horizon]`` are what they did next; its recall@k is the
  share of those items among its first ``k`` (an answer whose user did nothing in the horizon
  cannot be judged and only counts in ``judged``);
- answers are dropped once judged and older than ``horizon`` before the log's newest answer,
  or, never judged (the source is late or not given), older than 4 horizons (counted).

An update commits atomically, like :class:`taxiway.monitoring.windows.WindowStore`: changed
windows and the kept answers go to new files, then ``cursor.json`` (both logs' cursors, the
file names) replaces the old one; a crash leaves the previous state whole and the next update
reads the same records again. Other settings (window, version, catalog, k, horizon) start the
store over from the logs' beginning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from taxiway.errors import MonitoringError
from taxiway.monitoring.recs.inputs import CatalogFacts
from taxiway.monitoring.recs.measures import list_recall
from taxiway.monitoring.recs.reading import (
    ANSWER_SCHEMA,
    OUTCOME_SCHEMA,
    Answers,
    answers_of,
    outcomes_of,
    reason_key,
)
from taxiway.monitoring.segments import LogCursor, iter_new

__all__ = ["LOG_PATTERN", "NO_HISTORY", "RecsStore", "RecsWindow", "merge_windows"]

logger = logging.getLogger(__name__)

LOG_PATTERN: Final = "predictions-*.jsonl"
"""The prediction log's and the outcomes log's file names (one writer code for both)."""
NO_HISTORY: Final = "no history"
"""How the reason of an answer for a user with nothing to personalise from starts."""
_FORMAT: Final = 1
_STATE: Final = "cursor.json"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_UNJUDGED_HORIZONS: Final = 4
_KEPT_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", pa.string()),
    pa.field("unit", pa.string()),
    pa.field("ts_us", pa.int64()),
    pa.field("window_us", pa.int64()),
    pa.field("known", pa.bool_()),
    pa.field("items", pa.list_(pa.string())),
    pa.field("judged", pa.bool_()),
]
_KEPT: Final = pa.schema(_KEPT_FIELDS)
_CREDITED: Final = pa.schema([pa.field("key", pa.string()), pa.field("request_id", pa.string())])


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + int(count)
    return out


def _add_lists(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


@dataclass
class RecsWindow:
    """The answers of ``[start, end)``: see the module's text for each count."""

    start: datetime
    end: datetime
    answers: int = 0
    degraded: int = 0
    model_fallbacks: int = 0
    unknown_users: int = 0
    with_recent: int = 0
    recent_items: int = 0
    unknown_recent: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    model_stages: dict[str, int] = field(default_factory=dict)
    model_deciles: dict[str, int] = field(default_factory=dict)
    shown: list[int] = field(default_factory=list)
    clicks: dict[str, list[int]] = field(default_factory=dict)
    judged: int = 0
    relevant: int = 0
    recall_sum: float = 0.0
    recall_sq: float = 0.0
    hits: int = 0
    known_relevant: int = 0
    known_recall_sum: float = 0.0
    known_recall_sq: float = 0.0

    _COUNTS = ("paths", "reasons", "items", "stages", "model_stages", "model_deciles")
    _NUMBERS = (
        "answers", "degraded", "model_fallbacks", "unknown_users", "with_recent",
        "recent_items", "unknown_recent", "judged", "relevant", "recall_sum", "recall_sq",
        "hits", "known_relevant", "known_recall_sum", "known_recall_sq",
    )  # fmt: skip

    @property
    def slots(self) -> int:
        """Items shown in the window (every position of every answer)."""
        return sum(self.shown)

    def merge(self, other: RecsWindow) -> RecsWindow:
        """A new window counting both, from the earlier start to the later end.

        >>> t = datetime(2026, 12, 6, tzinfo=UTC)
        >>> a = RecsWindow(t, t + timedelta(hours=1), answers=2, items={"x": 2}, shown=[2])
        >>> b = RecsWindow(t + timedelta(hours=1), t + timedelta(hours=2), answers=1,
        ...                items={"x": 1, "y": 1}, shown=[1, 1])
        >>> both = a.merge(b)
        >>> both.answers, both.items, both.shown, both.end.hour
        (3, {'x': 3, 'y': 1}, [3, 1], 2)
        """
        merged = RecsWindow(min(self.start, other.start), max(self.end, other.end))
        for name in self._NUMBERS:
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        for name in self._COUNTS:
            setattr(merged, name, _add(getattr(self, name), getattr(other, name)))
        merged.shown = _add_lists(self.shown, other.shown)
        merged.clicks = {
            name: _add_lists(self.clicks.get(name, []), other.clicks.get(name, []))
            for name in sorted({*self.clicks, *other.clicks})
        }
        return merged

    def to_dict(self) -> dict[str, Any]:
        """JSON-able data (:meth:`from_dict` reads it back)."""
        out: dict[str, Any] = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        out |= {name: getattr(self, name) for name in (*self._NUMBERS, *self._COUNTS)}
        return out | {"shown": list(self.shown), "clicks": dict(self.clicks)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecsWindow:
        """The window :meth:`to_dict` wrote."""
        try:
            window = cls(datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]))
            for name in cls._NUMBERS:
                kind = float if name.endswith(("_sum", "_sq")) else int
                setattr(window, name, kind(d[name]))
            for name in cls._COUNTS:
                setattr(window, name, {str(k): int(v) for k, v in d[name].items()})
            window.shown = [int(v) for v in d["shown"]]
            window.clicks = {str(k): [int(v) for v in vs] for k, vs in d["clicks"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise MonitoringError(
                f"a stored recommendation window is malformed ({error!r})",
                fix="delete the monitor's recs folder to read the log again",
            ) from None
        return window


def merge_windows(windows: Sequence[RecsWindow]) -> RecsWindow:
    """One window over ``windows`` (a period); MonitoringError when there is none."""
    if not windows:
        raise MonitoringError(
            "there is no window of recommendations to report",
            fix="serve recommendations in the period first, or widen --since",
        )
    merged = windows[0].merge(RecsWindow(windows[0].start, windows[0].end))
    for window in windows[1:]:
        merged = merged.merge(window)
    return merged


@dataclass
class _State:
    settings: dict[str, Any]
    log: LogCursor = field(default_factory=LogCursor)
    outcomes: LogCursor = field(default_factory=LogCursor)
    files: dict[str, str] = field(default_factory=dict)  # window start (ISO) -> file
    kept: str | None = None
    credited: str | None = None
    generation: int = 0
    newest_us: int | None = None
    untimed: int = 0
    unjoined_outcomes: int = 0
    dropped_unjudged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "generation": self.generation,
            "settings": self.settings,
            "log": self.log.to_dict(),
            "outcomes": self.outcomes.to_dict(),
            "windows": dict(sorted(self.files.items())),
            "kept": self.kept,
            "credited": self.credited,
            "newest_us": self.newest_us,
            "untimed": self.untimed,
            "unjoined_outcomes": self.unjoined_outcomes,
            "dropped_unjudged": self.dropped_unjudged,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _State:
        return cls(
            settings=dict(d["settings"]),
            log=LogCursor.from_dict(d["log"]),
            outcomes=LogCursor.from_dict(d["outcomes"]),
            files={str(k): str(v) for k, v in d["windows"].items()},
            kept=d.get("kept"),
            credited=d.get("credited"),
            generation=int(d["generation"]),
            newest_us=None if d.get("newest_us") is None else int(d["newest_us"]),
            untimed=int(d.get("untimed", 0)),
            unjoined_outcomes=int(d.get("unjoined_outcomes", 0)),
            dropped_unjudged=int(d.get("dropped_unjudged", 0)),
        )


@dataclass(frozen=True)
class Progress:
    """What the store holds beyond its windows, for the report."""

    kept: int
    pending: int
    newest: datetime | None
    judged_until: datetime | None
    unjoined_outcomes: int
    dropped_unjudged: int
    untimed: int


class RecsStore:
    """The recommendation windows of one version's monitoring, kept in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.notes: tuple[str, ...] = ()
        self.progress = Progress(0, 0, None, None, 0, 0, 0)

    def windows(self, since: datetime | None = None) -> list[RecsWindow]:
        """The stored windows, oldest first; with ``since``, those ending after it."""
        state = self._load()
        if state is None:
            return []
        found = [self._window(name) for name in state.files.values()]
        found.sort(key=lambda w: w.start)
        return [w for w in found if since is None or w.end > since]

    def update(
        self,
        log_folder: Path,
        outcomes_folder: Path | None,
        *,
        window: timedelta,
        version: int | None,
        catalog: CatalogFacts,
        k: int,
        horizon: timedelta,
        interactions: Callable[[], pa.Table] | None,
    ) -> list[RecsWindow]:
        """Count the logs' new records, credit new outcomes, judge the answers old enough,
        commit, and return every stored window, oldest first (see the module)."""
        if window < timedelta(seconds=1) or window % _US:
            raise MonitoringError(
                f"a monitoring window of {window} is too short or not whole microseconds",
                fix="use a window of at least 1s (e.g. --window 1h)",
            )
        settings = {
            "window_us": window // _US,
            "version": version,
            "catalog": catalog.fingerprint(),
            "k": k,
            "horizon_us": horizon // _US,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load()
            if state is not None and state.settings != settings:
                logger.warning(
                    "recommendation windows in %s were counted with other settings (%s, now "
                    "%s): reading the logs again from their start",
                    self.folder,
                    state.settings,
                    settings,
                )
                state = _State(settings, generation=state.generation)
            state = state or _State(settings)
            run = _Run(self, state, window // _US, catalog, k, horizon // _US)
            for chunk in iter_new(Path(log_folder), LOG_PATTERN, state.log, schema=ANSWER_SCHEMA):
                run.add_answers(chunk.table, version)
                run.log = chunk.cursor
            if outcomes_folder is not None and Path(outcomes_folder).is_dir():
                for chunk in iter_new(
                    Path(outcomes_folder), LOG_PATTERN, state.outcomes, schema=OUTCOME_SCHEMA
                ):
                    run.add_outcomes(chunk.table)
                    run.outcomes = chunk.cursor
            run.judge(interactions)
            run.prune()
            self.notes = run.log.notes + run.notes
            self._commit(run)
            self.progress = run.progress()
        return self.windows()

    # -- files ------------------------------------------------------------------------

    def _window(self, name: str) -> RecsWindow:
        try:
            return RecsWindow.from_dict(orjson.loads((self.folder / name).read_bytes()))
        except (OSError, orjson.JSONDecodeError) as error:
            raise MonitoringError(
                f"the recommendation window {self.folder / name} cannot be read ({error})",
                fix="delete the monitor's recs folder to read the log again",
            ) from None

    def _table(self, name: str | None, schema: pa.Schema) -> pa.Table:
        if name is None:
            return schema.empty_table()
        try:
            with ipc.open_file(str(self.folder / name)) as reader:
                return reader.read_all()
        except (OSError, pa.ArrowInvalid) as error:
            raise MonitoringError(
                f"the monitor's kept answers {self.folder / name} cannot be read ({error})",
                fix="delete the monitor's recs folder to read the log again",
            ) from None

    def _load(self) -> _State | None:
        path = self.folder / _STATE
        try:
            d = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as error:
            raise MonitoringError(
                f"the monitor's state {path} cannot be read ({error})",
                fix="delete the monitor's recs folder to read the log again",
            ) from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise MonitoringError(
                f"the monitor's state {path} has an unknown format",
                fix="delete the monitor's recs folder to read the log again",
            )
        try:
            return _State.from_dict(d)
        except (KeyError, TypeError, ValueError) as error:
            raise MonitoringError(
                f"the monitor's state {path} is malformed ({error!r})",
                fix="delete the monitor's recs folder to read the log again",
            ) from None

    def _commit(self, run: _Run) -> None:
        old = run.state
        generation = old.generation + 1
        files = dict(old.files)
        for start_us, window in sorted(run.touched.items()):
            name = f"window-{start_us}-{generation}.json"
            _write_atomic(self.folder / name, orjson.dumps(window.to_dict()))
            files[window.start.isoformat()] = name
        kept = f"kept-{generation}.arrow"
        credited = f"credited-{generation}.arrow"
        _write_table(self.folder / kept, run.kept)
        _write_table(self.folder / credited, run.credited_table())
        new = _State(
            settings=old.settings,
            log=run.log,
            outcomes=run.outcomes,
            files=files,
            kept=kept,
            credited=credited,
            generation=generation,
            newest_us=run.newest_us,
            untimed=old.untimed + run.untimed,
            unjoined_outcomes=old.unjoined_outcomes + run.unjoined,
            dropped_unjudged=old.dropped_unjudged + run.dropped,
        )
        _write_atomic(self.folder / _STATE, orjson.dumps(new.to_dict(), option=orjson.OPT_INDENT_2))
        held = {*files.values(), kept, credited, _STATE}
        for path in self.folder.glob("*"):
            if path.is_file() and path.name not in held and not path.name.startswith("."):
                with contextlib.suppress(OSError):
                    path.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class _Run:
    """One update's work: the windows it touched, the kept answers and credited impressions."""

    def __init__(
        self,
        store: RecsStore,
        state: _State,
        window_us: int,
        catalog: CatalogFacts,
        k: int,
        horizon_us: int,
    ) -> None:
        self.store = store
        self.state = state
        self.window_us = window_us
        self.catalog = catalog
        self.k = k
        self.horizon_us = horizon_us
        self.log = state.log
        self.outcomes = state.outcomes
        self.touched: dict[int, RecsWindow] = {}
        self.kept = store._table(state.kept, _KEPT)
        keys: list[Any] = store._table(state.credited, _CREDITED).column("key").to_pylist()
        self.credited: set[str] = {str(key) for key in keys}
        self.newest_us = state.newest_us
        self.untimed = 0
        self.unjoined = 0
        self.dropped = 0
        self.judged_until_us: int | None = None
        self.notes: tuple[str, ...] = ()

    def window(self, start_us: int) -> RecsWindow:
        window = self.touched.get(start_us)
        if window is None:
            start = _EPOCH + start_us * _US
            stored = self.state.files.get(start.isoformat())
            window = (
                self.store._window(stored)
                if stored is not None
                else RecsWindow(start, start + self.window_us * _US)
            )
            self.touched[start_us] = window
        return window

    # -- answers ----------------------------------------------------------------------

    def add_answers(self, table: pa.Table, version: int | None) -> None:
        if not table.num_rows:
            return
        a, untimed = answers_of(table, version)
        self.untimed += untimed
        if not a.n:
            return
        starts = a.ts_us // self.window_us * self.window_us
        newest = int(a.ts_us.max())
        self.newest_us = newest if self.newest_us is None else max(self.newest_us, newest)
        slot_start = starts[a.slot_row] if len(a.slot_row) else starts[:0]
        items = np.array(a.slot_item, dtype=object)
        stages = np.array(a.slot_stage, dtype=object)
        for start_us in np.unique(starts).tolist():
            rows = np.flatnonzero(starts == start_us)
            slots = np.flatnonzero(slot_start == start_us)
            self._count(self.window(int(start_us)), a, rows, slots, items, stages)
        self.kept = pa.concat_tables([self.kept, _kept_of(a, starts)])

    def _count(
        self,
        w: RecsWindow,
        a: Answers,
        rows: np.ndarray[Any, np.dtype[np.int64]],
        slots: np.ndarray[Any, np.dtype[np.int64]],
        items: np.ndarray[Any, np.dtype[np.object_]],
        stages: np.ndarray[Any, np.dtype[np.object_]],
    ) -> None:
        w.answers += len(rows)
        w.degraded += int(np.count_nonzero(a.degraded[rows]))
        w.unknown_users += int(np.count_nonzero(a.unknown_user[rows]))
        model_rows = set()
        for row in rows.tolist():
            path = a.path[row]
            w.paths[path] = w.paths.get(path, 0) + 1
            reason = a.reason[row]
            if reason is not None:
                key = reason_key(reason)
                w.reasons[key] = w.reasons.get(key, 0) + 1
            if path == "model":
                model_rows.add(row)
            elif not (reason or "").startswith(NO_HISTORY):
                w.model_fallbacks += 1
            recent = a.recent[row]
            if recent:
                w.with_recent += 1
                w.recent_items += len(recent)
                w.unknown_recent += sum(not self.catalog.knows(i) for i in recent)
        if not len(slots):
            return
        _count_into(w.items, items[slots])
        _count_into(w.stages, stages[slots])
        positions = a.slot_position[slots]
        positions = positions[(positions >= 1) & (positions <= 10_000)]
        if len(positions):
            w.shown = _add_lists(w.shown, np.bincount(positions - 1).tolist())
        in_model = np.array([int(r) in model_rows for r in a.slot_row[slots]], dtype=bool)
        chosen = slots[in_model]
        if len(chosen):
            _count_into(w.model_stages, stages[chosen])
            deciles = [self.catalog.decile_of(str(i)) for i in items[chosen]]
            _count_into(
                w.model_deciles,
                np.array(["unknown" if d is None else str(d) for d in deciles], dtype=object),
            )

    # -- outcomes ---------------------------------------------------------------------

    def add_outcomes(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        o = outcomes_of(table)
        if not o.name:
            return
        index = self._impressions()
        for request_id, item, name, value in zip(
            o.request_id, o.item, o.name, o.value.tolist(), strict=True
        ):
            found = index.get((request_id, item))
            if found is None:
                self.unjoined += 1
                continue
            key = f"{request_id}\x1f{item}\x1f{name}"
            if not value > 0 or key in self.credited:
                continue
            self.credited.add(key)
            start_us, position = found
            w = self.window(start_us)
            w.clicks[name] = _add_lists(w.clicks.get(name, []), [0] * (position - 1) + [1])

    def _impressions(self) -> dict[tuple[str, str], tuple[int, int]]:
        index: dict[tuple[str, str], tuple[int, int]] = {}
        ids: list[Any] = self.kept.column("request_id").to_pylist()
        starts: list[Any] = self.kept.column("window_us").to_pylist()
        for request_id, start, items in zip(
            ids, starts, self.kept.column("items").to_pylist(), strict=True
        ):
            for position, item in enumerate(items or [], start=1):
                index.setdefault((request_id, item), (start, position))
        return index

    # -- judgement --------------------------------------------------------------------

    def judge(self, interactions: Callable[[], pa.Table] | None) -> None:
        judged = np.asarray(self.kept.column("judged").to_numpy(zero_copy_only=False), bool)
        if interactions is None or judged.all():
            return
        table = interactions()
        if not table.num_rows:
            self.notes += ("the interactions source is empty: no answer can be judged yet",)
            return
        at = np.asarray(table.column("at").to_numpy(zero_copy_only=False), np.int64)
        newest = int(at.max())
        self.judged_until_us = newest - self.horizon_us
        ts = np.asarray(self.kept.column("ts_us").to_numpy(), np.int64)
        ready = np.flatnonzero(~judged & (ts + self.horizon_us <= newest))
        if not len(ready):
            return
        later = _Later(table, at)
        units: list[Any] = self.kept.column("unit").to_pylist()
        known: list[Any] = self.kept.column("known").to_pylist()
        lists: list[Any] = self.kept.column("items").to_pylist()
        starts: list[Any] = self.kept.column("window_us").to_pylist()
        for row in ready.tolist():
            w = self.window(int(starts[row]))
            w.judged += 1
            relevant = later.items(str(units[row]), int(ts[row]), int(ts[row]) + self.horizon_us)
            recall = list_recall(lists[row] or [], relevant, self.k)
            if recall is None:
                continue
            w.relevant += 1
            w.recall_sum += recall
            w.recall_sq += recall * recall
            w.hits += int(recall > 0)
            if known[row]:
                w.known_relevant += 1
                w.known_recall_sum += recall
                w.known_recall_sq += recall * recall
        judged[ready] = True
        self.kept = self.kept.set_column(
            self.kept.schema.get_field_index("judged"), "judged", pa.array(judged)
        )

    def prune(self) -> None:
        if self.newest_us is None or not self.kept.num_rows:
            return
        ts = np.asarray(self.kept.column("ts_us").to_numpy(), np.int64)
        judged = np.asarray(self.kept.column("judged").to_numpy(zero_copy_only=False), bool)
        old = ts < self.newest_us - self.horizon_us
        stale = ts < self.newest_us - _UNJUDGED_HORIZONS * self.horizon_us
        drop = (judged & old) | (~judged & stale)
        self.dropped += int(np.count_nonzero(~judged & stale))
        if drop.any():
            self.kept = self.kept.filter(pa.array(~drop))
            held = set(self.kept.column("request_id").to_pylist())
            self.credited = {k for k in self.credited if k.split("\x1f", 1)[0] in held}

    def credited_table(self) -> pa.Table:
        keys = sorted(self.credited)
        return pa.table(
            {"key": pa.array(keys, pa.string()),
             "request_id": pa.array([k.split("\x1f", 1)[0] for k in keys], pa.string())},
            schema=_CREDITED,
        )  # fmt: skip

    def progress(self) -> Progress:
        judged = np.asarray(self.kept.column("judged").to_numpy(zero_copy_only=False), bool)
        return Progress(
            kept=self.kept.num_rows,
            pending=int(np.count_nonzero(~judged)),
            newest=None if self.newest_us is None else _EPOCH + self.newest_us * _US,
            judged_until=(
                None if self.judged_until_us is None else _EPOCH + self.judged_until_us * _US
            ),
            unjoined_outcomes=self.state.unjoined_outcomes + self.unjoined,
            dropped_unjudged=self.state.dropped_unjudged + self.dropped,
            untimed=self.state.untimed + self.untimed,
        )


class _Later:
    """Each user's interactions sorted by time, for "what did they do in (t0, t1]"."""

    def __init__(self, table: pa.Table, at: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        users = np.array([str(u) for u in table.column("user").to_pylist()], dtype=object)
        items = np.array([str(i) for i in table.column("item").to_pylist()], dtype=object)
        order = np.lexsort((at, users))
        self.users, self.at, self.item = users[order], at[order], items[order]
        names, first = np.unique(self.users, return_index=True)
        last = np.r_[first[1:], len(self.users)]
        self.slices = {str(u): (int(a), int(b)) for u, a, b in zip(names, first, last, strict=True)}

    def items(self, user: str, after_us: int, until_us: int) -> set[str]:
        found = self.slices.get(user)
        if found is None:
            return set()
        a, b = found
        times = self.at[a:b]
        lo = a + int(np.searchsorted(times, after_us, side="right"))
        hi = a + int(np.searchsorted(times, until_us, side="right"))
        return {str(i) for i in self.item[lo:hi]}


def _kept_of(a: Answers, starts: np.ndarray[Any, np.dtype[np.int64]]) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array(a.request_id, pa.string()),
            "unit": pa.array(a.unit, pa.string()),
            "ts_us": pa.array(a.ts_us, pa.int64()),
            "window_us": pa.array(starts, pa.int64()),
            "known": pa.array(~a.unknown_user),
            "items": pa.array(a.items, pa.list_(pa.string())),
            "judged": pa.array(np.zeros(a.n, dtype=bool)),
        },
        schema=_KEPT,
    )


def _count_into(counts: dict[str, int], values: np.ndarray[Any, np.dtype[np.object_]]) -> None:
    if not len(values):
        return
    labels, hits = np.unique(values.astype(str), return_counts=True)
    for label, n in zip(labels.tolist(), hits.tolist(), strict=True):
        counts[label] = counts.get(label, 0) + int(n)


def _write_table(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    _write_atomic(path, sink.getvalue().to_pybytes())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, sync it, and rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise MonitoringError(
            f"the monitoring state {path} cannot be written: {error.strerror or error}",
            fix=f"make {path.parent} writable, with free space",
        ) from None
