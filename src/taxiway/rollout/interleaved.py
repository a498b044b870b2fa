"""Each interleaved user's clicks per team, read from the service's logs.

Definitions. An *interleaved answer* is a prediction-log record with ``arm`` ``interleaved``,
a ``unit`` (the user), a ``request_id`` and ``ts`` at or after the rollout's start; each of
its ``items`` names the ``team`` that drafted it (:mod:`taxiway.serving.interleave`). A click
is an outcome record (``<log parent>/outcomes``) naming the answer's ``request_id``, the
``item`` and the outcome ``name`` (the rollout metric's); its value is summed as the A/B test
sums it (``true`` counts 1, ``false`` 0, a number itself; anything else nothing). An outcome
naming no item, or an item the request did not show, credits no team and is left out. Per
user: the sum over its interleaved answers of the clicks on candidate-team items, and of
those on control-team items; a user shown interleaved lists who clicked nothing has zeros.
A torn line is skipped.

Cost: every check reads the log files last written since the rollout began, whole, unlike
the A/B unit state's incremental read (:mod:`.units`). Only the lines that can hold an
interleaved answer (the bytes ``"arm":"interleaved"``, spaces allowed, found by one regular
expression over each file) and an outcome of the metric's name are parsed, so the read costs
a scan of the files' bytes plus the interleaved share's records (``bench/rollout.py --part
interleaving --il-read``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from taxiway.errors import RolloutError

__all__ = ["ANSWER_GLOB", "InterleavedUsers", "read_interleaved"]

ANSWER_GLOB = "predictions-*.jsonl"
_INTERLEAVED = re.compile(rb'"arm"\s*:\s*"interleaved"')
_TEAMS = {"candidate": 0, "control": 1}


@dataclass(frozen=True)
class InterleavedUsers:
    """Per interleaved user (``users``, sorted), clicks on each team's items; and how many
    interleaved answers were read."""

    users: list[str]
    candidate: npt.NDArray[np.float64]
    control: npt.NDArray[np.float64]
    answers: int


def read_interleaved(
    log_folder: Path, outcomes_folder: Path, *, outcome: str, since: datetime
) -> InterleavedUsers:
    """The interleaved users since ``since`` and their clicks (outcome ``outcome``) per team
    (see the module). Folders without files give no users; a file that cannot be read is a
    :class:`RolloutError` (the next check reads again)."""
    try:
        shown = _interleaved_answers(_written_since(Path(log_folder), since), since)
        credit: dict[str, list[float]] = {unit: [0.0, 0.0] for unit, _ in shown.values()}
        name = re.compile(rb'"name"\s*:\s*' + re.escape(orjson.dumps(outcome)))
        for record in _records(_written_since(Path(outcomes_folder), since), name):
            if record.get("name") != outcome:
                continue
            found = shown.get(record.get("request_id"))  # type: ignore[arg-type]
            value = _value(record.get("value"))
            if found is None or value is None:
                continue
            unit, teams = found
            team = teams.get(record.get("item"))  # type: ignore[arg-type]
            if team is not None:
                credit[unit][team] += value
    except OSError as error:
        raise RolloutError(
            f"the interleaved answers could not be read: {error}",
            fix="check again (the logs are read whole at every check); if it persists, check "
            "the prediction log folder",
        ) from None
    users = sorted(credit)
    return InterleavedUsers(
        users=users,
        candidate=np.array([credit[u][0] for u in users], dtype=np.float64),
        control=np.array([credit[u][1] for u in users], dtype=np.float64),
        answers=len(shown),
    )


def _interleaved_answers(
    files: list[Path], since: datetime
) -> dict[str, tuple[str, dict[str, int]]]:
    """Each interleaved answer since ``since`` by request id: its unit and its items' teams
    (0 candidate, 1 control)."""
    shown: dict[str, tuple[str, dict[str, int]]] = {}
    for record in _records(files, _INTERLEAVED):
        unit, request, items = record.get("unit"), record.get("request_id"), record.get("items")
        if record.get("arm") != "interleaved" or not isinstance(items, list):
            continue
        if not isinstance(unit, str) or not isinstance(request, str):
            continue
        at = _time(record.get("ts"))
        if at is None or at < since:
            continue
        teams = {
            str(item["item"]): _TEAMS[item["team"]]
            for item in items
            if isinstance(item, dict) and item.get("team") in _TEAMS and "item" in item
        }
        shown[request] = (unit, teams)
    return shown


def _records(files: list[Path], pattern: re.Pattern[bytes]) -> Iterator[dict[str, Any]]:
    """The records of ``files`` on the lines where ``pattern`` matches (once per line)."""
    for path in files:
        data = path.read_bytes()
        after = 0
        for match in pattern.finditer(data):
            if match.start() < after:
                continue  # a second match on a line already read
            start = data.rfind(b"\n", 0, match.start()) + 1
            end = data.find(b"\n", match.end())
            after = len(data) if end < 0 else end
            try:
                record = orjson.loads(data[start:after])
            except orjson.JSONDecodeError:  # a torn line
                continue
            if isinstance(record, dict):
                yield record


def _written_since(folder: Path, since: datetime) -> list[Path]:
    """The log files of ``folder`` last written at or after ``since`` (an older file holds no
    record of the rollout), sorted."""
    cutoff = since.timestamp()
    files = []
    for path in sorted(folder.glob(ANSWER_GLOB)):
        try:
            if path.stat().st_mtime >= cutoff:
                files.append(path)
        except FileNotFoundError:  # deleted by retention meanwhile
            continue
    return files


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
