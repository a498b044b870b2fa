"""A rollout's stored state and its hash-chained event log, in the registry's database.

Two tables live beside the registry's (the same SQLite file, or the same PostgreSQL database
and schema), created on first use:

- ``rollouts``: one row per rollout, the current state (step, share, state, last verdict). A
  partial unique index allows one *active* rollout (``running`` or ``paused``) per model
  name, and serves :meth:`RolloutStore.active`, the one-row SELECT every serving worker runs
  each second.
- ``rollout_events``: every transition (start, promote, rollback, pause, resume, complete,
  abort) with its evidence. The events form one chain: ``seq`` counts from 1, ``prev`` is the
  hash of the event before (64 zeros for the first), and ``hash`` is the SHA-256 of ``prev``
  followed by the canonical JSON of the event's other fields. :meth:`RolloutStore.verify`
  walks the chain and names the first event that was edited, deleted or inserted.

A transition is one transaction: the row changes only if nobody changed it since it was read
(``revision``, compare-and-set), and its event is appended under the same write lock, so a
controller killed at any point leaves either the old state or the new one with its event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from taxiway.errors import RolloutError
from taxiway.rollout.database import Database, Execute
from taxiway.rollout.store_sqlite import SqliteDatabase
from taxiway.spec.models import PostgresRegistry, SqliteRegistry

__all__ = [
    "ACTIVE",
    "GENESIS",
    "STATES",
    "RolloutEvent",
    "RolloutState",
    "RolloutStore",
    "StateName",
    "event_hash",
    "open_rollout_store",
]

StateName = Literal["running", "paused", "rolled_back", "complete", "aborted"]
STATES: tuple[StateName, ...] = get_args(StateName)
ACTIVE: tuple[StateName, ...] = ("running", "paused")
"""The states in which the service splits traffic (paused holds the share where it is)."""

GENESIS = "0" * 64
"""The ``prev`` of the first event."""

_STATE_COLUMNS = (
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
_EVENT_COLUMNS = (
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
_JSON_STATE = ("control", "steps", "verdict", "plan")


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
            data[key] = _iso(data[key])
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
        data["at"] = _iso(self.at)
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


class RolloutStore:
    """Rollouts and their events in ``database`` (see :func:`open_rollout_store`)."""

    def __init__(self, database: Database, *, where: str) -> None:
        self._db = database
        self.where = where

    def __repr__(self) -> str:
        return f"RolloutStore({self.where!r})"

    # ------------------------------------------------------------------ reads

    def active(self, name: str) -> RolloutState | None:
        """The running or paused rollout of model ``name``, or None: one indexed SELECT."""
        rows = self._db.read(
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? AND state IN ('running', 'paused')",
            (name,),
        )
        return _state(rows[0]) if rows else None

    def latest(self, name: str) -> RolloutState | None:
        """The newest rollout of ``name`` in any state, or None."""
        rows = self._db.read(
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? ORDER BY id DESC LIMIT 1",
            (name,),
        )
        return _state(rows[0]) if rows else None

    def get(self, rollout_id: int) -> RolloutState:
        """Rollout ``rollout_id``; RolloutError when there is none."""
        rows = self._db.read(f"SELECT {_SELECT} FROM {{rollouts}} WHERE id = ?", (rollout_id,))
        if not rows:
            raise RolloutError(
                f"there is no rollout {rollout_id} in {self.where}",
                fix="list the rollouts with `taxiway rollout status`",
            )
        return _state(rows[0])

    def history(self, name: str) -> list[RolloutState]:
        """Every rollout of ``name``, oldest first."""
        rows = self._db.read(
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? ORDER BY id", (name,)
        )
        return [_state(row) for row in rows]

    def events(self, rollout_id: int) -> list[RolloutEvent]:
        """The transitions of rollout ``rollout_id``, oldest first."""
        rows = self._db.read(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {{rollout_events}} "
            "WHERE rollout_id = ? ORDER BY seq",
            (rollout_id,),
        )
        return [_event(row) for row in rows]

    def verify(self) -> int:
        """The number of events, after checking every link of the chain; RolloutError at the
        first event edited, deleted or inserted since it was written."""
        rows = self._db.read(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {{rollout_events}} ORDER BY seq", ()
        )
        prev = GENESIS
        for number, row in enumerate(rows, start=1):
            event = _event(row)
            if event.seq != number:
                self._broken(
                    event.seq,
                    f"has seq {event.seq}, expected {number}: an event "
                    "before it was deleted or inserted",
                )
            if event.prev != prev:
                self._broken(event.seq, "does not follow the event before it (prev differs)")
            if event.hash != event_hash(event.prev, _content(event)):
                self._broken(event.seq, "was edited after it was written (its hash differs)")
            prev = event.hash
        return len(rows)

    # ------------------------------------------------------------------ writes

    def start(
        self,
        *,
        name: str,
        salt: str,
        control: dict[str, Any],
        candidate: int,
        unit: str | None,
        steps: list[float],
        plan: dict[str, Any],
        by: str,
        evidence: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RolloutState:
        """Record a new rollout running at its first step; RolloutError when ``name`` has an
        active one already."""
        moment = _iso(now or datetime.now(UTC))
        with self._db.write("start a rollout in") as execute:
            existing = execute(
                "SELECT id, state FROM {rollouts} WHERE name = ? AND state IN ('running', 'paused')",
                (name,),
            )
            if existing:
                rollout_id, state = existing[0]
                raise RolloutError(
                    f"model {name!r} has a {state} rollout already (id {rollout_id})",
                    fix="finish it first: `taxiway rollout abort` (or rollback), then start again",
                )
            new_id = int(execute("SELECT coalesce(max(id), 0) + 1 FROM {rollouts}", ())[0][0])
            values: dict[str, Any] = {
                "id": new_id,
                "name": name,
                "salt": salt,
                "control": control,
                "candidate": candidate,
                "unit": unit,
                "steps": steps,
                "step_index": 0,
                "share": float(steps[0]),
                "state": "running",
                "started_at": moment,
                "step_started_at": moment,
                "updated_at": moment,
                "verdict": None,
                "plan": plan,
                "revision": 0,
            }
            execute(
                f"INSERT INTO {{rollouts}} ({_SELECT}) VALUES ({', '.join('?' * len(_STATE_COLUMNS))})",
                [_stored(column, values[column]) for column in _STATE_COLUMNS],
            )
            state = _state(tuple(_stored(c, values[c]) for c in _STATE_COLUMNS))
            self._append(execute, state, "start", None, by, evidence or {}, moment)
        return state

    def update(
        self,
        current: RolloutState,
        *,
        by: str,
        kind: str | None,
        evidence: dict[str, Any] | None = None,
        now: datetime | None = None,
        **changes: Any,
    ) -> RolloutState:
        """Change ``current`` (step_index, share, state, step_started_at, verdict) as read.

        ``kind`` names the transition recorded as an event with ``evidence``; None changes
        the row only (a check that holds). RolloutError when the row changed since
        ``current`` was read (another controller, or a person, acted first): read it again.
        """
        allowed = {"step_index", "share", "state", "step_started_at", "verdict"}
        if unknown := set(changes) - allowed:
            raise TypeError(f"cannot change {sorted(unknown)} of a rollout")
        if "state" in changes and changes["state"] not in STATES:
            raise RolloutError(f"{changes['state']!r} is not a rollout state")
        moment = now or datetime.now(UTC)
        new = replace(current, **changes, updated_at=moment, revision=current.revision + 1)
        with self._db.write("change a rollout in") as execute:
            assignments = ", ".join(f"{c} = ?" for c in (*changes, "updated_at", "revision"))
            params = [_stored(c, getattr(new, c)) for c in (*changes, "updated_at", "revision")]
            rows = execute(
                f"UPDATE {{rollouts}} SET {assignments} WHERE id = ? AND revision = ? RETURNING id",
                [*params, current.id, current.revision],
            )
            if not rows:
                raise RolloutError(
                    f"rollout {current.id} of model {current.name!r} changed while this "
                    "controller was deciding (another check, or a person, acted first)",
                    fix="run the command again: it reads the new state",
                )
            if kind is not None:
                self._append(execute, new, kind, current.state, by, evidence or {}, _iso(moment))
        return new

    def close(self) -> None:
        """Release the store's connections."""
        self._db.close()

    # ------------------------------------------------------------------ internals

    def _append(
        self,
        execute: Execute,
        state: RolloutState,
        kind: str,
        from_state: str | None,
        by: str,
        evidence: dict[str, Any],
        at: str,
    ) -> None:
        last = execute("SELECT seq, hash FROM {rollout_events} ORDER BY seq DESC LIMIT 1", ())
        seq, prev = (int(last[0][0]) + 1, str(last[0][1])) if last else (1, GENESIS)
        content: dict[str, Any] = {
            "seq": seq,
            "rollout_id": state.id,
            "name": state.name,
            "at": at,
            "kind": kind,
            "from_state": from_state,
            "to_state": state.state,
            "step_index": state.step_index,
            "share": float(state.share),
            "by": by,
            "evidence": json.loads(canonical(evidence)),
        }
        digest = event_hash(prev, content)
        row = {**content, "evidence": canonical(content["evidence"]).decode(), "prev": prev}
        row["hash"] = digest
        execute(
            f"INSERT INTO {{rollout_events}} ({', '.join(_EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
            [row[column] for column in _EVENT_COLUMNS],
        )

    def _broken(self, seq: int, what: str) -> None:
        raise RolloutError(
            f"the rollout audit chain in {self.where} is broken: event {seq} {what}",
            fix="restore the rollout_events table from a backup; do not edit it by hand",
        )


_SELECT = ", ".join(_STATE_COLUMNS)


def _stored(column: str, value: Any) -> Any:
    if column in _JSON_STATE:
        return None if value is None else canonical(value).decode()
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _state(row: Sequence[Any]) -> RolloutState:
    values = dict(zip(_STATE_COLUMNS, row, strict=True))
    for column in _JSON_STATE:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    for column in ("started_at", "step_started_at", "updated_at"):
        values[column] = _time(values[column])
    values["share"] = float(values["share"])
    values["steps"] = [float(step) for step in values["steps"]]
    return RolloutState(**values)


def _event(row: Sequence[Any]) -> RolloutEvent:
    values = dict(zip(_EVENT_COLUMNS, row, strict=True))
    values["evidence"] = json.loads(values["evidence"])
    values["at"] = _time(values["at"])
    values["share"] = float(values["share"])
    return RolloutEvent(**values)


def _content(event: RolloutEvent) -> dict[str, Any]:
    data = event.as_dict()
    del data["prev"], data["hash"]
    return data


def _iso(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- opening


def open_rollout_store(
    registry: SqliteRegistry | PostgresRegistry | None, state_dir: Path
) -> RolloutStore:
    """The rollout store in the database of the registry ``registry`` declares (no spec: the
    SQLite file ``<state_dir>/registry.sqlite``). Nothing connects until first use.

    >>> import tempfile
    >>> store = open_rollout_store(None, Path(tempfile.mkdtemp()))
    >>> started = store.start(name="churn", salt="s1", control={"kind": "version",
    ...     "version": 1, "constant": None}, candidate=2, unit="customer_id",
    ...     steps=[1.0, 5.0, 100.0], plan={}, by="ana")
    >>> store.active("churn").share
    1.0
    >>> promoted = store.update(started, by="controller", kind="promote", step_index=1,
    ...     share=5.0, evidence={"units": [120, 118]})
    >>> [e.kind for e in store.events(started.id)], store.verify()
    (['start', 'promote'], 2)
    >>> store.close()
    """
    state_dir = Path(state_dir)
    if registry is None or isinstance(registry, SqliteRegistry):
        path = (
            Path(registry.path)
            if registry is not None and registry.path
            else state_dir / "registry.sqlite"
        )
        return RolloutStore(SqliteDatabase(path), where=str(path))
    if isinstance(registry, PostgresRegistry):
        try:
            from taxiway.rollout.store_postgres import PostgresDatabase
        except ImportError as error:
            if (error.name or "").startswith("taxiway"):
                raise
            raise RolloutError(
                f"the registry is postgres but its client is missing ({error.name})",
                fix="pip install 'taxiway[postgres]'",
            ) from None
        try:
            url = registry.url.reveal()
        except Exception as error:  # an unset environment variable, an unreadable file
            raise RolloutError(
                f"cannot read registry.url for the rollout store: {getattr(error, 'message', error)}",
                fix=getattr(error, "fix", None),
            ) from None
        database = PostgresDatabase(
            url, schema=registry.schema_name, connect_timeout_s=registry.connect_timeout_s
        )
        return RolloutStore(database, where=database.where)
    raise RolloutError(f"unsupported registry {registry!r}")  # pragma: no cover
