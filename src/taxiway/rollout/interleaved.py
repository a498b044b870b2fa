"""Each interleaved user's clicks per team, read from the service's logs incrementally.

Definitions. An *interleaved answer* is a prediction-log record with ``arm`` ``interleaved``,
a ``unit`` (the user), a ``request_id`` and ``ts`` at or after the rollout's start; each of
its ``items`` names the ``team`` that drafted it (:mod:`taxiway.serving.interleave`). A click
is an outcome record (``<log parent>/outcomes``) naming the answer's ``request_id``, the
``item`` and the outcome ``name`` (the rollout metric's); its value is summed as the A/B test
sums it (``true`` counts 1, ``false`` 0, a number itself; anything else nothing). An outcome
naming no item, or an item the request did not show, credits no team and is left out. Per
user: the sum over its interleaved answers of the clicks on candidate-team items, and of
those on control-team items; a user shown interleaved lists who clicked nothing has zeros.
A torn line is skipped. Request ids are the service's, one per answer.

Incremental (:func:`update_interleaved`, what each check runs). Every quantity is a sum, so
the logs can be read in pieces: a check reads only the bytes each log file gained since the
last one (a :class:`~taxiway.monitoring.segments.LogCursor` per folder: per file, the offset
after its last complete line, its inode and first bytes), keeps every shown item (a 64-bit
key of its request id and item, :func:`pair_keys`, with the user's row and team), and keeps a
click that matched no shown item *waiting* until one does, or until the clicks read reach
:data:`~taxiway.rollout.units.PENDING_FOR` past its ``received_at`` (then it is dropped:
``expired``; most such clicks are the A/B arms', which the read cannot tell from those of an
interleaved answer not read yet). Reading in pieces equals reading once (:func:`read_interleaved`)
except for an answer logged more than that hour after a click on it, the unit state's caveat
(:mod:`.units`); ``tests/rollout/test_interleaved.py`` checks it over random split points.

Cost: the lines that can hold an interleaved answer (the bytes ``"arm":"interleaved"``,
spaces allowed, found by one regular expression over the new bytes) and an outcome of the
metric's name are parsed, the rest only scanned; the waiting and new clicks are matched
against every shown item in one hash lookup (pyarrow's ``index_in``), and the state (13 bytes
per shown item, 24 per waiting click) is rewritten when the check read anything
(``bench/rollout.py --part interleaving --il-read N --il-new M``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as _pc

from taxiway.errors import RolloutError
from taxiway.monitoring.columnar import HEAD_BYTES, digest
from taxiway.monitoring.segments import FileMark, LogCursor
from taxiway.rollout.interleaved_state import InterleavedState, ShownItems, WaitingClicks
from taxiway.rollout.units import PENDING_FOR, text_keys

__all__ = [
    "ANSWER_GLOB",
    "InterleavedUsers",
    "pair_keys",
    "read_interleaved",
    "update_interleaved",
]

pc: Any = _pc
ANSWER_GLOB = "predictions-*.jsonl"
_INTERLEAVED = re.compile(rb'"arm"\s*:\s*"interleaved"')
_TEAMS = {"candidate": 0, "control": 1}
_PENDING_US = int(PENDING_FOR.total_seconds() * 1_000_000)


@dataclass(frozen=True)
class InterleavedUsers:
    """Per interleaved user (``users``, sorted), clicks on each team's items; and how many
    interleaved answers were read."""

    users: list[str]
    candidate: npt.NDArray[np.float64]
    control: npt.NDArray[np.float64]
    answers: int


def update_interleaved(
    folder: Path,
    log_folder: Path,
    outcomes_folder: Path,
    *,
    outcome: str,
    since: datetime,
    save: bool = True,
) -> InterleavedUsers:
    """Fold what the logs gained since the state in ``folder`` was saved (see the module),
    save it (unless it read nothing new), and return the interleaved users since ``since``
    with their clicks (outcome ``outcome``) per team. A file that cannot be read is a
    :class:`RolloutError` (the next check reads from where the last saved state stopped)."""
    since_us = _micros(since)
    state = InterleavedState.load(folder, outcome, since_us)
    before = (state.answers_cursor, state.outcomes_cursor)
    _fold(state, log_folder, outcomes_folder, since)
    if save and (state.answers_cursor, state.outcomes_cursor) != before:
        state.save(folder)
    return _users(state)


def read_interleaved(
    log_folder: Path, outcomes_folder: Path, *, outcome: str, since: datetime
) -> InterleavedUsers:
    """The interleaved users since ``since`` and their clicks (outcome ``outcome``) per team,
    read once from the logs' start (no state kept: what :func:`update_interleaved` equals)."""
    state = InterleavedState.new(outcome, _micros(since))
    _fold(state, log_folder, outcomes_folder, since)
    return _users(state)


def pair_keys(requests: list[str], items: list[str]) -> npt.NDArray[np.uint64]:
    """A 64-bit key per (request id, item): :func:`~taxiway.rollout.units.text_keys` of the
    two joined by a byte neither holds (the unit separator).

    >>> a, b = pair_keys(["r1", "r1"], ["a", "b"]), pair_keys(["r1"], ["a"])
    >>> bool(a[0] == b[0]), bool(a[0] == a[1])
    (True, False)
    """
    return text_keys(pa.array([f"{r}\x1f{i}" for r, i in zip(requests, items, strict=True)]))


def _fold(
    state: InterleavedState, log_folder: Path, outcomes_folder: Path, since: datetime
) -> None:
    """Read what each folder gained, fold the new answers' items in, match the waiting and new
    clicks against every shown item, expire those that waited too long."""
    try:
        lines, state.answers_cursor = _new_lines(
            Path(log_folder), state.answers_cursor, since, _INTERLEAVED
        )
        _take_answers(state, lines, state.since_us)
        name = re.compile(rb'"name"\s*:\s*' + re.escape(orjson.dumps(state.outcome)))
        lines, state.outcomes_cursor = _new_lines(
            Path(outcomes_folder), state.outcomes_cursor, since, name
        )
        fresh = _clicks(state, lines)
    except OSError as error:
        raise RolloutError(
            f"the interleaved answers could not be read: {error}",
            fix="check again (the read resumes where the last check stopped); if it persists, "
            "check the prediction log folder",
        ) from None
    waiting = state.waiting.concat(fresh)
    if len(waiting):
        waiting = _match(state, waiting)
        expired = waiting.received < state.latest_us - _PENDING_US
        state.expired += int(np.count_nonzero(expired))
        waiting = waiting.filter(~expired)
    state.waiting = waiting


def _take_answers(
    state: InterleavedState, records: Iterator[dict[str, Any]], since_us: int
) -> None:
    """Fold the interleaved answers among ``records``: their users, and their shown items."""
    rows = {user: row for row, user in enumerate(state.users)}
    requests: list[str] = []
    items: list[str] = []
    owners: list[int] = []
    teams: list[int] = []
    for record in records:
        unit, request, shown = record.get("unit"), record.get("request_id"), record.get("items")
        if record.get("arm") != "interleaved" or not isinstance(shown, list):
            continue
        if not isinstance(unit, str) or not isinstance(request, str):
            continue
        at = _time(record.get("ts"))
        if at is None or _micros(at) < since_us:
            continue
        row = rows.setdefault(unit, len(rows))
        state.answers += 1
        for item in shown:
            if isinstance(item, dict) and item.get("team") in _TEAMS and "item" in item:
                requests.append(request)
                items.append(str(item["item"]))
                owners.append(row)
                teams.append(_TEAMS[item["team"]])
    if len(rows) > len(state.users):
        added = len(rows) - len(state.users)
        state.users = list(rows)
        state.candidate = np.concatenate([state.candidate, np.zeros(added)])
        state.control = np.concatenate([state.control, np.zeros(added)])
    if requests:
        new = ShownItems(
            pair_keys(requests, items), np.array(owners, np.int32), np.array(teams, np.int8)
        )
        state.shown = state.shown.concat(new)


def _clicks(state: InterleavedState, records: Iterator[dict[str, Any]]) -> WaitingClicks:
    """The clicks among ``records``: outcomes of the state's name with a request id, an item
    and a value the A/B test counts; and the clicks' clock (``received_at``) moved on."""
    requests: list[str] = []
    items: list[str] = []
    values: list[float] = []
    received: list[int] = []
    for record in records:
        if record.get("name") != state.outcome:
            continue
        request, item = record.get("request_id"), record.get("item")
        value = _value(record.get("value"))
        if not isinstance(request, str) or item is None or value is None:
            continue
        # when it arrived: its received_at (the service's), else its timestamp, else unknown
        at = _time(record.get("received_at")) or _time(record.get("timestamp"))
        requests.append(request)
        items.append(str(item))
        values.append(value)
        received.append(_micros(at) if at is not None else -1)
    if received:
        state.latest_us = max(state.latest_us, max(received))
    if not requests:
        return WaitingClicks.empty()
    arrived = np.array(received, np.int64)
    arrived[arrived < 0] = state.latest_us  # unknown: it waits an hour from the clock's now
    return WaitingClicks(pair_keys(requests, items), np.array(values), arrived)


def _match(state: InterleavedState, waiting: WaitingClicks) -> WaitingClicks:
    """Credit each shown item with the waiting clicks on it; the clicks that matched none."""
    shown = state.shown
    if not len(shown):
        return waiting
    asked, inverse = np.unique(waiting.key, return_inverse=True)
    total = np.bincount(inverse, weights=waiting.value, minlength=len(asked))
    where = pc.index_in(pa.array(shown.key), value_set=pa.array(asked))
    hit = np.asarray(where.is_valid().to_numpy(zero_copy_only=False), bool)
    if not hit.any():
        return waiting
    clicked = np.asarray(where.filter(pa.array(hit)).to_numpy(zero_copy_only=False), np.int64)
    gained = total[clicked]
    rows, teams = shown.row[hit], shown.team[hit]
    np.add.at(state.candidate, rows[teams == 0], gained[teams == 0])
    np.add.at(state.control, rows[teams == 1], gained[teams == 1])
    matched = np.zeros(len(asked), bool)
    matched[clicked] = True
    return waiting.filter(~matched[inverse])


def _users(state: InterleavedState) -> InterleavedUsers:
    order = sorted(range(len(state.users)), key=state.users.__getitem__)
    return InterleavedUsers(
        users=[state.users[i] for i in order],
        candidate=state.candidate[order].astype(np.float64),
        control=state.control[order].astype(np.float64),
        answers=state.answers,
    )


def _new_lines(
    folder: Path, cursor: LogCursor, since: datetime, pattern: re.Pattern[bytes]
) -> tuple[Iterator[dict[str, Any]], LogCursor]:
    """The records on the new complete lines of ``folder``'s log files where ``pattern``
    matches, and the cursor after them. A file last written before ``since`` and never read
    holds no record of the rollout and is passed over; a file replaced under its name (smaller
    than the cursor, or another inode with other first bytes) is read from its start."""
    records: list[dict[str, Any]] = []
    marks: dict[str, FileMark] = {}
    cutoff = since.timestamp()
    for path in sorted(folder.glob(ANSWER_GLOB)) if folder.is_dir() else []:
        mark = cursor.files.get(path.name)
        try:
            with path.open("rb") as f:
                stat = os.fstat(f.fileno())
                if mark is None and stat.st_mtime < cutoff:
                    continue
                if mark is not None and (
                    stat.st_size < mark.offset
                    or (stat.st_ino != mark.inode and digest(f.read(mark.head_bytes)) != mark.head)
                ):
                    mark = None
                start = mark.offset if mark is not None else 0
                f.seek(start)
                data = f.read(max(stat.st_size - start, 0))
                end = data.rfind(b"\n") + 1
                records.extend(_records(data, end, pattern))
                offset = start + end
                f.seek(0)
                head = f.read(min(offset, HEAD_BYTES))
        except FileNotFoundError:  # deleted by retention meanwhile
            continue
        marks[path.name] = FileMark(offset, stat.st_ino, digest(head), len(head))
    return iter(records), LogCursor(marks, cursor.skipped)


def _records(data: bytes, size: int, pattern: re.Pattern[bytes]) -> Iterator[dict[str, Any]]:
    """The records on the lines of ``data[:size]`` where ``pattern`` matches (once per line)."""
    after = 0
    for match in pattern.finditer(data, 0, size):
        if match.start() < after:
            continue  # a second match on a line already read
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end(), size)
        after = size if end < 0 else end
        try:
            record = orjson.loads(data[start:after])
        except orjson.JSONDecodeError:  # a torn line
            continue
        if isinstance(record, dict):
            yield record


def _micros(moment: datetime) -> int:
    """``moment`` in µs since the epoch (UTC when it names no zone)."""
    at = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(text: Any) -> datetime | None:
    """An ISO time (UTC when it names no zone), None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _value(value: Any) -> float | None:
    """An outcome's value as the A/B test counts it: true 1, false 0, a number itself.

    >>> _value(True), _value(2), _value("2")
    (1.0, 2.0, None)
    """
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None
