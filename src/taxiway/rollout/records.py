"""What a rollout is as stored: its state row and its events, their columns, and how each
becomes a row and back (JSON as canonical text, times as ISO 8601 UTC strings with
microseconds: the bytes an event's hash was computed over, on either backend)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

__all__ = [
    "ACTIVE",
    "EVENT_COLUMNS",
    "GENESIS",
    "JSON_STATE",
    "STATES",
    "STATE_COLUMNS",
    "RolloutEvent",
    "RolloutState",
    "StateName",
    "canonical",
    "event_content",
    "event_from_row",
    "event_hash",
    "iso",
    "state_from_row",
    "stored_value",
    "utc",
]

StateName = Literal["running", "paused", "rolled_back", "complete", "aborted"]
STATES: tuple[StateName, ...] = get_args(StateName)
ACTIVE: tuple[StateName, ...] = ("running", "paused")
"""The states in which the service splits traffic (paused holds the share where it is)."""

GENESIS = "0" * 64
"""The ``prev`` of the first event."""

STATE_COLUMNS = (
    "id",
    "name",
    "salt",
    "control",
    "candidate",
    "unit",
    "steps",
    "step_index",
    "share",
    "state",
    "started_at",
    "step_started_at",
    "updated_at",
    "verdict",
    "plan",
    "revision",
)
EVENT_COLUMNS = (
    "seq",
    "rollout_id",
    "name",
    "at",
    "kind",
    "from_state",
    "to_state",
    "step_index",
    "share",
    "by",
    "evidence",
    "prev",
    "hash",
)
JSON_STATE = ("control", "steps", "verdict", "plan")


@dataclass(frozen=True)
class RolloutState:
    """One rollout as stored: its plan, where it stands, and the last check's verdict.

    ``share`` is the candidate's percentage of traffic (0 after a rollback, 100 when
    complete). ``control`` is ``{"kind": "version"|"baseline"|"constant", "version": int |
    None, "constant": float | None}``. ``revision`` counts the row's changes.
    """

    id: int
    name: str
    salt: str
    control: dict[str, Any]
    candidate: int
    unit: str | None
    steps: list[float]
    step_index: int
    share: float
    state: StateName
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    verdict: dict[str, Any] | None
    plan: dict[str, Any]
    revision: int = 0

    @property
    def active(self) -> bool:
        """Whether the service splits traffic for it (running or paused)."""
        return self.state in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (times as ISO 8601 strings)."""
        data = asdict(self)
        for key in ("started_at", "step_started_at", "updated_at"):
            data[key] = iso(data[key])
        return data


@dataclass(frozen=True)
class RolloutEvent:
    """One transition of a rollout, a link of the hash chain."""

    seq: int
    rollout_id: int
    name: str
    at: datetime
    kind: str
    from_state: str | None
    to_state: str
    step_index: int
    share: float
    by: str
    evidence: dict[str, Any]
    prev: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        data = asdict(self)
        data["at"] = iso(self.at)
        return data


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that are hashed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def event_hash(prev: str, content: dict[str, Any]) -> str:
    """SHA-256 of ``prev`` followed by the canonical JSON of ``content``.

    >>> event_hash(GENESIS, {"kind": "start"})[:16]
    'f6df73c4ee30be1d'
    """
    return hashlib.sha256(prev.encode() + canonical(content)).hexdigest()


def stored_value(column: str, value: Any) -> Any:
    """``value`` of ``column`` as stored: JSON columns as canonical text, times as text."""
    if column in JSON_STATE:
        return None if value is None else canonical(value).decode()
    if isinstance(value, datetime):
        return iso(value)
    return value


def state_from_row(row: Sequence[Any]) -> RolloutState:
    """A state from stored values in :data:`STATE_COLUMNS` order."""
    values = dict(zip(STATE_COLUMNS, row, strict=True))
    for column in JSON_STATE:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    for column in ("started_at", "step_started_at", "updated_at"):
        values[column] = utc(values[column])
    values["share"] = float(values["share"])
    values["steps"] = [float(step) for step in values["steps"]]
    return RolloutState(**values)


def event_from_row(row: Sequence[Any]) -> RolloutEvent:
    """An event from stored values in :data:`EVENT_COLUMNS` order."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    values["evidence"] = json.loads(values["evidence"])
    values["at"] = utc(values["at"])
    values["share"] = float(values["share"])
    return RolloutEvent(**values)


def event_content(event: RolloutEvent) -> dict[str, Any]:
    """What an event's hash covers: every field but ``prev`` and ``hash``."""
    data = event.as_dict()
    del data["prev"], data["hash"]
    return data


def iso(moment: datetime | str) -> str:
    """A time as stored: ISO 8601 in UTC with microseconds (a string is kept as is)."""
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)
