"""Windows of the prediction log, each profiled once; any period is a merge of windows.

A window is ``[start, end)`` of length ``window``, aligned to the Unix epoch (UTC): with 1 h
windows, 05:00 to 06:00. A record belongs to the window holding its ``ts``; a record without a
readable ``ts`` (absent, or not ISO 8601; a time without an offset is taken as UTC) belongs to
none and is counted in :attr:`WindowStore.untimed`.

What a :class:`Window` counts, over **every** record in it (the service, whatever the version):

* ``requests``; ``fallbacks``: ``path`` is not ``model`` (a fallback answered); ``degraded``:
  ``degraded`` is true (a fallback, or the model scored with online features missing/stale);
* ``errors``: the answer is a fallback because a dependency failed, i.e. its ``reason`` (or
  one of its ``"; "``-separated parts) starts with one of :data:`ERROR_REASONS`: the model
  failed, returned a non-finite score, overran the latency budget or sits behind its open
  circuit breaker, or the online store failed, timed out or sits behind its open breaker.
  Fallbacks for data (features missing, values out of the training range) are not errors.
  Requests refused before an answer (shed with 429, or a 503 when the log cannot be written)
  are not in the log, so not here;
* ``latency``: a :class:`NumericProfile` of ``latency_ms`` on fixed log-spaced bins (0.1 ms to
  60 s) with its KLL sketch (p50, p99); ``slow``: ``latency_ms > budget_ms`` (0 without a
  budget);
* ``versions`` and ``arms``: records per ``model_version`` / ``arm``;
* ``minutes``: ``{"YYYY-MM-DDTHH:MM": [requests, slow, errors]}`` per UTC minute, for SLO burn
  rates (:mod:`taxiway.monitoring.slo`).

And over the records of the **monitored version** only (``profiled`` of them; every record
when no version is given): ``features`` (one profile per feature of the reference, numbers as
floats and categories as strings, each an ``empty_like`` of the reference's profile then
updated), ``output`` (``prediction``), ``missing`` (per feature: records with it missing, i.e.
null, absent, NaN or invalid) and ``out_of_range`` (per feature: records that named it in
``out_of_range``).

A :class:`WindowStore` keeps the windows as JSON files in its folder and reads only the log's
new bytes on each :meth:`~WindowStore.update` (:mod:`taxiway.monitoring.segments`); new records
for a window already stored are counted into it. An update commits atomically: changed windows
go to new files, then ``cursor.json`` (the log cursor and the list of window files) replaces
the old one, so a crash leaves the previous state whole and the next update reads the same
records again. If the window length, the budget, the version or the reference changes, the
store starts over from the log's beginning (with a warning in the logs).

>>> import tempfile
>>> from types import SimpleNamespace
>>> from taxiway.monitoring.profiles import NumericProfile
>>> ref = SimpleNamespace(features={"age": NumericProfile.reference([20.0, 40.0, 60.0])},
...                       output=NumericProfile.reference([0.1, 0.9]))
>>> line = (b'{"ts": "2026-12-06T05:31:02+00:00", "model_version": 3, "path": "model", '
...         b'"latency_ms": 12.5, "prediction": 0.4, "features": {"age": 70}, '
...         b'"out_of_range": ["age"]}\\n')
>>> with tempfile.TemporaryDirectory() as tmp:
...     logs = Path(tmp) / "log"; logs.mkdir()
...     _ = (logs / "predictions-w1-20261206T050000-0000.jsonl").write_bytes(line * 3)
...     store = WindowStore(Path(tmp) / "windows")
...     [w] = store.update(logs, "predictions-*.jsonl", ref, window=timedelta(hours=1),
...                        budget_ms=10.0, version=3)
...     again = store.update(logs, "predictions-*.jsonl", ref, window=timedelta(hours=1),
...                          budget_ms=10.0, version=3)
>>> w.start.isoformat(), w.requests, w.slow, w.features["age"].above, w.out_of_range
('2026-12-06T05:00:00+00:00', 3, 3, 3, {'age': 3})
>>> w.minutes, again[0].requests
({'2026-12-06T05:31': [3, 3, 0]}, 3)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    profile_from_dict,
)
from taxiway.monitoring.segments import Chunk, LogCursor, iter_new, log_schema

__all__ = [
    "ERROR_REASONS",
    "LATENCY_EDGES",
    "ReferenceProfiles",
    "Window",
    "WindowStore",
    "latency_profile",
    "period",
    "profile_tables",
    "times_of",
    "window_schema",
]

logger = logging.getLogger(__name__)

ERROR_REASONS: Final = (
    "model failed",
    "model returned a non-finite score",
    "model overran the latency budget",
    "model overran its share of",  # the recommendation service: "... of the 50 ms budget"
    "model circuit breaker open",
    "online store failed",
    "online store timed out",
    "online store circuit breaker open",
)
"""How the ``reason`` of an answer that fell back because a dependency failed starts
(:mod:`taxiway.serving.predictor` and :mod:`taxiway.serving.recommend_service` write them)."""
_ERROR_PATTERN: Final = "(?:^|; )(?:" + "|".join(re.escape(r) for r in ERROR_REASONS) + ")"

LATENCY_EDGES: Final = np.geomspace(0.1, 60_000.0, 99)
"""The fine bins of every window's latency profile, in ms (log-spaced, 0.1 ms to 60 s)."""
_LATENCY_HIGH: Final = 600_000.0  # above 10 minutes counts as out of range
_FORMAT: Final = 1
_STATE: Final = "cursor.json"
_US: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_US: Final = 60_000_000
_UNUSED: Final = frozenset(("request_id", "model", "unit", "lookup_ms"))

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class ReferenceProfiles(Protocol):
    """What a window is profiled against: the version's reference profiles
    (:func:`taxiway.monitoring.calibration.load_reference` returns one)."""

    @property
    def features(self) -> Mapping[str, Profile]:
        """One profile per feature, by name."""
        ...

    @property
    def output(self) -> Profile:
        """The profile of the prediction."""
        ...


def latency_profile() -> NumericProfile:
    """An empty latency profile on :data:`LATENCY_EDGES` (every window's is the same shape).

    >>> profile = latency_profile()
    >>> profile.update([3.0, 250.0]); profile.quantiles([1.0])
    [250.0]
    """
    return NumericProfile(LATENCY_EDGES, 0.0, _LATENCY_HIGH)


@dataclass
class Window:
    """The profile of the records in ``[start, end)`` (see the module's text for each count).

    Windows returned by a store are shared with its cache: :meth:`merge` them, do not change
    them in place.
    """

    start: datetime
    end: datetime
    features: dict[str, Profile]
    output: Profile
    latency: NumericProfile = field(default_factory=latency_profile)
    requests: int = 0
    profiled: int = 0
    fallbacks: int = 0
    degraded: int = 0
    errors: int = 0
    slow: int = 0
    out_of_range: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    arms: dict[str, int] = field(default_factory=dict)
    minutes: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def empty(cls, start: datetime, end: datetime, reference: ReferenceProfiles) -> Window:
        """A window with nothing counted, its profiles shaped like ``reference``'s."""
        features = {name: p.empty_like() for name, p in reference.features.items()}
        missing = dict.fromkeys(features, 0)
        return cls(start, end, features, reference.output.empty_like(), missing=missing)

    def merge(self, other: Window) -> Window:
        """A new window counting both (spanning from the earlier start to the later end).

        >>> from types import SimpleNamespace
        >>> from taxiway.monitoring.profiles import NumericProfile
        >>> ref = SimpleNamespace(features={}, output=NumericProfile.reference([0.0, 1.0]))
        >>> t = datetime(2026, 12, 6, 5, tzinfo=UTC)
        >>> a = Window.empty(t, t + timedelta(hours=1), ref)
        >>> b = Window.empty(t + timedelta(hours=1), t + timedelta(hours=2), ref)
        >>> a.requests, b.requests, a.versions = 2, 3, {"3": 2}
        >>> both = a.merge(b)
        >>> both.requests, both.versions, both.end.hour
        (5, {'3': 2}, 7)
        """
        if self.features.keys() != other.features.keys():
            raise MonitoringError(
                "windows of different feature sets cannot be merged",
                fix="merge windows profiled against the same reference (one version)",
            )
        minutes = {key: list(counts) for key, counts in self.minutes.items()}
        for key, counts in other.minutes.items():
            mine = minutes.setdefault(key, [0] * len(counts))
            for i, count in enumerate(counts):
                mine[i] += count
        return Window(
            start=min(self.start, other.start),
            end=max(self.end, other.end),
            features={
                name: profile.merge(other.features[name]) for name, profile in self.features.items()
            },
            output=self.output.merge(other.output),
            latency=self.latency.merge(other.latency),
            requests=self.requests + other.requests,
            profiled=self.profiled + other.profiled,
            fallbacks=self.fallbacks + other.fallbacks,
            degraded=self.degraded + other.degraded,
            errors=self.errors + other.errors,
            slow=self.slow + other.slow,
            out_of_range=_add_counts(self.out_of_range, other.out_of_range),
            missing=_add_counts(self.missing, other.missing),
            versions=_add_counts(self.versions, other.versions),
            arms=_add_counts(self.arms, other.arms),
            minutes=dict(sorted(minutes.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (profiles by their ``to_dict``)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "requests": self.requests,
            "profiled": self.profiled,
            "fallbacks": self.fallbacks,
            "degraded": self.degraded,
            "errors": self.errors,
            "slow": self.slow,
            "out_of_range": dict(self.out_of_range),
            "missing": dict(self.missing),
            "versions": dict(self.versions),
            "arms": dict(self.arms),
            "minutes": {key: list(counts) for key, counts in self.minutes.items()},
            "latency": self.latency.to_dict(),
            "features": {name: profile.to_dict() for name, profile in self.features.items()},
            "output": self.output.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Window:
        """The window :meth:`to_dict` wrote."""
        try:
            latency = profile_from_dict(d["latency"])
            if not isinstance(latency, NumericProfile):
                raise TypeError("latency: expected a numeric profile")
            return cls(
                start=datetime.fromisoformat(d["start"]),
                end=datetime.fromisoformat(d["end"]),
                features={name: profile_from_dict(p) for name, p in d["features"].items()},
                output=profile_from_dict(d["output"]),
                latency=latency,
                requests=int(d["requests"]),
                profiled=int(d["profiled"]),
                fallbacks=int(d["fallbacks"]),
                degraded=int(d["degraded"]),
                errors=int(d["errors"]),
                slow=int(d["slow"]),
                out_of_range={str(k): int(v) for k, v in d["out_of_range"].items()},
                missing={str(k): int(v) for k, v in d["missing"].items()},
                versions={str(k): int(v) for k, v in d["versions"].items()},
                arms={str(k): int(v) for k, v in d["arms"].items()},
                minutes={str(k): [int(c) for c in v] for k, v in d["minutes"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise MonitoringError(
                f"a stored monitoring window is malformed ({error!r})",
                fix="delete the monitor's window folder to profile the log again",
            ) from None


def period(windows: Sequence[Window]) -> Window:
    """One window merging ``windows`` (from the earliest start to the latest end).

    >>> period([])
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: there is no window to merge into a period
      fix: serve predictions in the period first, or widen --since
    """
    if not windows:
        raise MonitoringError(
            "there is no window to merge into a period",
            fix="serve predictions in the period first, or widen --since",
        )
    merged = windows[0]
    for window in windows[1:]:
        merged = merged.merge(window)
    if len(windows) == 1:  # a copy, so the caller never shares the store's window
        merged = Window.from_dict(merged.to_dict())
    return merged


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


@dataclass
class _State:
    """What ``cursor.json`` holds: the settings, the log cursor, and the window files."""

    settings: dict[str, Any]
    cursor: LogCursor = field(default_factory=LogCursor)
    files: dict[str, str] = field(default_factory=dict)  # window start (ISO) -> file name
    generation: int = 0
    untimed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "generation": self.generation,
            "settings": self.settings,
            "log": self.cursor.to_dict(),
            "windows": dict(sorted(self.files.items())),
            "untimed": self.untimed,
        }


class WindowStore:
    """The windows of one model version's monitoring, kept as JSON in ``folder``.

    ``folder`` holds ``cursor.json`` and one ``window-<start>-<generation>.json`` per window.
    Several stores may share no folder; an update holds a lock on it (``.lock``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.notes: tuple[str, ...] = ()
        """What the last update noticed in the log (replaced files, skipped lines...)."""
        self._cache: dict[str, Window] = {}  # by file name: a rewritten window gets a new one

    @property
    def untimed(self) -> int:
        """Records read without a readable ``ts`` (in no window), since the store began."""
        state = self._load()
        return 0 if state is None else state.untimed

    # ------------------------------------------------------------------ reading

    def windows(self, since: datetime | None = None) -> list[Window]:
        """The stored windows, oldest first; with ``since``, those ending after it."""
        state = self._load()
        if state is None:
            return []
        try:
            found = [self._window(name) for name in state.files.values()]
        except MonitoringError:  # an update may have committed meanwhile, removing files
            state = self._load()
            found = [] if state is None else [self._window(n) for n in state.files.values()]
        found.sort(key=lambda window: window.start)
        return [window for window in found if since is None or window.end > since]

    def _window(self, name: str) -> Window:
        window = self._cache.get(name)
        if window is None:
            try:
                data = (self.folder / name).read_bytes()
                window = Window.from_dict(orjson.loads(data))
            except (OSError, orjson.JSONDecodeError) as error:
                raise MonitoringError(
                    f"the monitoring window {self.folder / name} cannot be read ({error})",
                    fix="delete the monitor's window folder to profile the log again",
                ) from None
            self._cache[name] = window
        return window

    def _load(self) -> _State | None:
        path = self.folder / _STATE
        try:
            d = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as error:
            raise MonitoringError(
                f"the monitor's state {path} cannot be read ({error})",
                fix="delete the monitor's window folder to profile the log again",
            ) from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise MonitoringError(
                f"the monitor's state {path} has an unknown format",
                fix="delete the monitor's window folder to profile the log again",
            )
        return _State(
            settings=dict(d["settings"]),
            cursor=LogCursor.from_dict(d["log"]),
            files={str(k): str(v) for k, v in d["windows"].items()},
            generation=int(d["generation"]),
            untimed=int(d.get("untimed", 0)),
        )

    # ------------------------------------------------------------------ updating

    def update(
        self,
        log_folder: Path,
        pattern: str,
        reference: ReferenceProfiles,
        *,
        window: timedelta,
        budget_ms: float | None,
        version: int | None = None,
        columns: Iterable[str] = (),
        on_chunk: Callable[[pa.Table], None] | None = None,
    ) -> list[Window]:
        """Profile the log's records written since the last update into their windows, store
        them, and return every stored window, oldest first.

        ``pattern`` is the log files' glob (serving's ``LOG_GLOB``); ``version`` the model
        version whose records are profiled (None: every record's). A caller that needs more
        of the new records (the outcomes' join keeps ``request_id`` and ``unit``) gets each
        chunk's table from ``on_chunk``, with the top-level log ``columns`` it names added,
        instead of parsing the log a second time; a chunk is handed over again by the next
        update if this one fails before it commits.
        """
        if window < timedelta(seconds=1) or window % _US:
            raise MonitoringError(
                f"a monitoring window of {window} is too short or not whole microseconds",
                fix="use a window of at least 1s (e.g. --window 1h)",
            )
        settings = {
            "window_us": window // _US,
            "budget_ms": budget_ms,
            "version": version,
            "reference": _fingerprint(reference),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load()
            if state is not None and state.settings != settings:
                logger.warning(
                    "monitoring windows in %s were profiled with other settings (%s, now %s): "
                    "profiling the prediction log again from its start",
                    self.folder,
                    state.settings,
                    settings,
                )
                state = _State(settings, generation=state.generation)
            if state is None:
                state = _State(settings)
            profiler = _Profiler(self, state, reference, window // _US, budget_ms, version)
            cursor = state.cursor
            schema = _schema(reference, columns)
            chunks = iter_new(Path(log_folder), pattern, cursor, schema=schema)
            with contextlib.closing(_read_ahead(chunks)) as ahead:  # stops the reader on error
                for chunk in ahead:
                    if on_chunk is not None and chunk.table.num_rows:
                        on_chunk(chunk.table)
                    profiler.add(chunk.table)
                    cursor = chunk.cursor
            self.notes = cursor.notes
            if profiler.untimed:
                self.notes += (f"{profiler.untimed} record(s) without a readable ts skipped",)
            unchanged = not profiler.touched and not profiler.untimed and cursor == state.cursor
            if not (unchanged and (self.folder / _STATE).exists()):
                self._commit(state, cursor, profiler)
        return self.windows()

    def _commit(self, state: _State, cursor: LogCursor, profiler: _Profiler) -> None:
        generation = state.generation + 1
        files = dict(state.files)
        for start_us, window in sorted(profiler.touched.items()):
            stamp = window.start.strftime("%Y%m%dT%H%M%S") + f"{start_us % 1_000_000:06d}"
            name = f"window-{stamp}-{generation}.json"
            _write_atomic(self.folder / name, orjson.dumps(window.to_dict()))
            files[window.start.isoformat()] = name
            self._cache[name] = window
        new = _State(state.settings, cursor, files, generation, state.untimed + profiler.untimed)
        _write_atomic(self.folder / _STATE, orjson.dumps(new.to_dict(), option=orjson.OPT_INDENT_2))
        kept = set(files.values())
        for path in self.folder.glob("window-*.json"):
            if path.name not in kept:
                with contextlib.suppress(OSError):
                    path.unlink()
                self._cache.pop(path.name, None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _read_ahead(chunks: Iterator[Chunk]) -> Generator[Chunk]:
    """``chunks``, the next one read and parsed in a thread (pyarrow's parsing releases the
    GIL) while the caller profiles this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="taxiway-monitor-read") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


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


def _fingerprint(reference: ReferenceProfiles) -> str:
    """What windows depend on in a reference: each profile's name, kind, edges and range."""

    def shape(profile: Profile) -> list[Any]:
        if isinstance(profile, NumericProfile):
            return ["numeric", profile.edges.tolist(), _finite(profile.low), _finite(profile.high)]
        return ["categorical"]

    described = {name: shape(p) for name, p in sorted(reference.features.items())}
    described["__output__"] = shape(reference.output)
    return hashlib.sha256(orjson.dumps(described)).hexdigest()[:32]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def profile_tables(
    tables: Iterable[pa.Table],
    reference: ReferenceProfiles,
    *,
    window: timedelta,
    budget_ms: float | None,
    version: int | None = None,
) -> tuple[list[Window], int]:
    """The windows of ``tables`` (log records in :func:`window_schema`'s columns), oldest
    first, and the count of records without a readable ``ts``: what :meth:`WindowStore.update`
    counts, with no store. Windows of two sets of records merge into those of both, so a
    cluster profiles each partition with this and merges (:mod:`taxiway.monitoring.spark_windows`).
    """
    profiler = _Profiler(None, _State({}), reference, window // _US, budget_ms, version)
    for table in tables:
        profiler.add(table)
    return [profiler.touched[key] for key in sorted(profiler.touched)], profiler.untimed


def window_schema(reference: ReferenceProfiles) -> pa.Schema:
    """The log columns a window of ``reference``'s features is profiled from."""
    return _schema(reference)


def _schema(reference: ReferenceProfiles, columns: Iterable[str] = ()) -> pa.Schema:
    """The log columns a window needs, and ``columns`` (fewer columns parse faster)."""
    numeric = [n for n, p in reference.features.items() if isinstance(p, NumericProfile)]
    categorical = [n for n, p in reference.features.items() if isinstance(p, CategoricalProfile)]
    output = pa.float64() if isinstance(reference.output, NumericProfile) else pa.string()
    schema = log_schema(numeric, categorical, prediction=output)
    unused = _UNUSED - set(columns)
    return pa.schema([f for f in schema if f.name not in unused])


class _Profiler:
    """Counts the records of each chunk into the windows they fall in."""

    def __init__(
        self,
        store: WindowStore | None,
        state: _State,
        reference: ReferenceProfiles,
        window_us: int,
        budget_ms: float | None,
        version: int | None,
    ) -> None:
        self.store = store
        self.state = state
        self.reference = reference
        self.window_us = window_us
        self.budget_ms = budget_ms
        self.version = version
        self.touched: dict[int, Window] = {}
        self.untimed = 0

    def window(self, start_us: int) -> Window:
        window = self.touched.get(start_us)
        if window is None:
            start = _EPOCH + start_us * _US
            stored = self.state.files.get(start.isoformat())
            if stored is not None and self.store is not None:
                # a copy: the cached one stays as stored until commit
                window = Window.from_dict(self.store._window(stored).to_dict())
            else:
                window = Window.empty(start, start + self.window_us * _US, self.reference)
            self.touched[start_us] = window
        return window

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        times, timed = times_of(table.column("ts"))
        if not timed.all():
            self.untimed += int(np.count_nonzero(~timed))
            table = table.filter(pa.array(timed))
            times = times[timed]
            if not table.num_rows:
                return
        columns = _Columns(table, times, self.budget_ms, self.version)
        ids = times // self.window_us
        first, last = int(ids.min()), int(ids.max())
        if first == last:
            self._count(self.window(first * self.window_us), columns, None)
            return
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
        for rows in np.split(order, cuts):
            self._count(self.window(int(ids[rows[0]]) * self.window_us), columns, rows)

    def _count(self, window: Window, c: _Columns, rows: Ints | None) -> None:
        def pick(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values if rows is None else values[rows]

        n = len(c.times) if rows is None else len(rows)
        window.requests += n
        fallback, degraded, error, slow = (
            pick(a) for a in (c.fallback, c.degraded, c.error, c.slow)
        )
        window.fallbacks += int(np.count_nonzero(fallback))
        window.degraded += int(np.count_nonzero(degraded))
        window.errors += int(np.count_nonzero(error))
        window.slow += int(np.count_nonzero(slow))
        window.latency.update(pick(c.latency))
        _count_labels(window.versions, pick(c.version_codes), c.version_labels)
        _count_labels(window.arms, pick(c.arm_codes), c.arm_labels)
        minutes = pick(c.times) // _MINUTE_US
        first = int(minutes.min())
        offsets = minutes - first  # a window spans few minutes: count them by offset
        per_minute = np.stack(
            [
                np.bincount(offsets),
                np.bincount(offsets, weights=slow).astype(np.int64),
                np.bincount(offsets, weights=error).astype(np.int64),
            ],
            axis=1,
        )
        used = np.flatnonzero(per_minute[:, 0])
        for minute, counts in zip((used + first).tolist(), per_minute[used].tolist(), strict=True):
            key = (_EPOCH + minute * _MINUTE_US * _US).strftime("%Y-%m-%dT%H:%M")
            mine = window.minutes.get(key)
            if mine is None:
                window.minutes[key] = counts
            else:
                window.minutes[key] = [a + b for a, b in zip(mine, counts, strict=True)]
        # the monitored version's records
        profiled = pick(c.profiled)
        chosen = None if profiled.all() else np.flatnonzero(profiled)
        if rows is not None:
            chosen = rows if chosen is None else rows[chosen]
        elif chosen is not None:
            chosen = chosen.astype(np.int64)
        count = n if chosen is None else len(chosen)
        if not count:
            return
        window.profiled += count
        for name, profile in window.features.items():
            if isinstance(profile, CategoricalProfile):
                profile = window.features[name] = profile.merge(c.categories(name, chosen))
            else:
                profile.update(c.feature(name, chosen))
            window.missing[name] = profile.missing
        window.output.update(c.output(chosen))
        for name, hits in c.out_of_range(chosen).items():
            window.out_of_range[name] = window.out_of_range.get(name, 0) + hits


def _count_labels(counts: dict[str, int], codes: Ints, labels: list[str]) -> None:
    if not codes.size:
        return
    for code, hits in enumerate(np.bincount(codes, minlength=len(labels)).tolist()):
        if hits:
            counts[labels[code]] = counts.get(labels[code], 0) + hits


class _Columns:
    """One chunk's columns as numpy arrays, computed once for every window they feed."""

    def __init__(
        self, table: pa.Table, times: Ints, budget_ms: float | None, version: int | None
    ) -> None:
        self.table = table
        self.times = times
        path: Any = table.column("path")
        self.fallback: Bools = _bools(pc.not_equal(path, pa.scalar("model")))
        self.degraded: Bools = _bools(table.column("degraded"))
        self.error: Bools = _bools(pc.match_substring_regex(table.column("reason"), _ERROR_PATTERN))
        latency = _floats(table.column("latency_ms"))
        self.latency = latency
        self.slow: Bools = (
            np.zeros(len(times), dtype=bool)
            if budget_ms is None
            else np.nan_to_num(latency, nan=-math.inf, posinf=-math.inf) > budget_ms
        )
        versions = table.column("model_version")
        self.version_codes, self.version_labels = _codes(pc.cast(versions, pa.string()))
        self.arm_codes, self.arm_labels = _codes(table.column("arm"))
        self.profiled: Bools = (
            np.ones(len(times), dtype=bool)
            if version is None
            else _bools(pc.equal(versions, pa.scalar(version, pa.int64())))
        )
        self._features: Any = (
            table.column("features").combine_chunks() if "features" in table.column_names else None
        )

    def feature(self, name: str, rows: Ints | None) -> npt.NDArray[Any]:
        if self._features is None:
            return np.full(len(self.times) if rows is None else len(rows), np.nan)
        return _values(pc.struct_field(self._features, name), rows)

    def categories(self, name: str, rows: Ints | None) -> CategoricalProfile:
        """The labels of one categorical feature in ``rows``, counted (dictionary-encoded by
        arrow, so no Python object per value)."""
        if self._features is None:
            return CategoricalProfile(missing=len(self.times) if rows is None else len(rows))
        values: Any = pc.struct_field(self._features, name)
        if rows is not None:
            values = values.take(rows)
        encoded: Any = values.dictionary_encode()
        labels = [str(v) for v in encoded.dictionary.to_pylist()]
        codes: Any = pc.fill_null(encoded.indices, len(labels))  # null: one past the labels
        hits = np.bincount(codes.to_numpy(), minlength=len(labels) + 1).tolist()
        counted = CategoricalProfile(missing=hits.pop())
        for label, count in sorted(zip(labels, hits, strict=True), key=lambda x: -x[1]):
            if count:
                counted.counts[label] = counted.counts.get(label, 0) + count
                counted.sketch.update(label, count)
        return counted

    def output(self, rows: Ints | None) -> npt.NDArray[Any]:
        return _values(self.table.column("prediction"), rows)

    def out_of_range(self, rows: Ints | None) -> dict[str, int]:
        lists: Any = self.table.column("out_of_range").combine_chunks()
        if rows is not None:
            lists = lists.take(rows)
        flat: Any = pc.list_flatten(lists)
        if not len(flat):
            return {}
        counted: Any = pc.value_counts(flat)
        names = counted.field("values").to_pylist()
        hits = counted.field("counts").to_pylist()
        return {str(n): int(h) for n, h in zip(names, hits, strict=True) if n is not None}


def _values(array: Any, rows: Ints | None) -> npt.NDArray[Any]:
    """The values in ``rows`` (all when None): numbers as floats (null -> NaN), anything else
    as objects (null -> None). Taken in numpy, faster than arrow's take."""
    if pa.types.is_floating(array.type) or pa.types.is_integer(array.type):
        if rows is None:
            return _floats(array)
        floats: Any = pc.cast(array, pa.float64())
        return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)[rows]
    objects: npt.NDArray[Any] = array.to_numpy(zero_copy_only=False)
    return objects if rows is None else objects[rows]


def _floats(column: Any) -> npt.NDArray[np.float64]:
    """Numbers as a float array (null -> NaN), writable (the KLL sketch takes no read-only
    array)."""
    floats: Any = pc.cast(column, pa.float64())
    values = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values if values.flags.writeable else values.copy()


def _bools(column: Any) -> Bools:
    filled: Any = pc.fill_null(column, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _codes(column: Any) -> tuple[Ints, list[str]]:
    """Each value's index among the distinct values (null as ``unknown``), and the values."""
    filled: Any = pc.fill_null(column, "unknown")
    encoded: Any = filled.combine_chunks().dictionary_encode()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(v) for v in encoded.dictionary.to_pylist()]


def times_of(column: Any) -> tuple[Ints, Bools]:
    """A log's ``ts`` column (ISO 8601 text, or timestamps) as microseconds since the epoch
    (UTC; a time without an offset is UTC), and which were readable (an unreadable one is 0
    and False). Every reader of the log puts a record in a window by this.

    >>> micros, readable = times_of(pa.chunked_array([["1970-01-01T00:00:01+00:00", "soon"]]))
    >>> micros.tolist(), readable.tolist()
    ([1000000, 0], [True, False])
    """
    stamps: Any
    try:
        stamps = pc.cast(column, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        stamps = pa.chunked_array(
            [pa.array([_parse_time(v) for v in column.to_pylist()], pa.timestamp("us", tz="UTC"))]
        )
    valid = _bools(pc.is_valid(stamps))
    micros: Any = pc.fill_null(pc.cast(stamps, pa.int64()), 0)
    return np.asarray(micros.to_numpy(zero_copy_only=False), dtype=np.int64), valid


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
