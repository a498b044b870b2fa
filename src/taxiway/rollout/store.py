"""The rollout store: rollouts and their hash-chained events in the registry's database.

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

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from taxiway.errors import RolloutError
from taxiway.rollout.database import Database, Execute
from taxiway.rollout.records import (
    EVENT_COLUMNS,
    GENESIS,
    STATE_COLUMNS,
    STATES,
    RolloutEvent,
    RolloutState,
    canonical,
    event_content,
    event_from_row,
    event_hash,
    iso,
    state_from_row,
    stored_value,
)

__all__ = ["RolloutStore"]

_SELECT = ", ".join(STATE_COLUMNS)


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
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? AND state IN ('running', 'paused')",  # nosec B608
            (name,),
        )
        return state_from_row(rows[0]) if rows else None

    def latest(self, name: str) -> RolloutState | None:
        """The newest rollout of ``name`` in any state, or None."""
        rows = self._db.read(
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? ORDER BY id DESC LIMIT 1",  # nosec B608
            (name,),
        )
        return state_from_row(rows[0]) if rows else None

    def get(self, rollout_id: int) -> RolloutState:
        """Rollout ``rollout_id``; RolloutError when there is none."""
        rows = self._db.read(f"SELECT {_SELECT} FROM {{rollouts}} WHERE id = ?", (rollout_id,))  # nosec B608
        if not rows:
            raise RolloutError(
                f"there is no rollout {rollout_id} in {self.where}",
                fix="list the rollouts with `taxiway rollout status`",
            )
        return state_from_row(rows[0])

    def history(self, name: str) -> list[RolloutState]:
        """Every rollout of ``name``, oldest first."""
        rows = self._db.read(
            f"SELECT {_SELECT} FROM {{rollouts}} WHERE name = ? ORDER BY id",  # nosec B608
            (name,),
        )
        return [state_from_row(row) for row in rows]

    def events(self, rollout_id: int) -> list[RolloutEvent]:
        """The transitions of rollout ``rollout_id``, oldest first."""
        rows = self._db.read(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM {{rollout_events}} "  # nosec B608
            "WHERE rollout_id = ? ORDER BY seq",
            (rollout_id,),
        )
        return [event_from_row(row) for row in rows]

    def verify(self) -> int:
        """The number of events, after checking every link of the chain; RolloutError at the
        first event edited, deleted or inserted since it was written."""
        rows = self._db.read(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM {{rollout_events}} ORDER BY seq",  # nosec B608
            (),
        )
        prev = GENESIS
        for number, row in enumerate(rows, start=1):
            event = event_from_row(row)
            if event.seq != number:
                self._broken(
                    event.seq,
                    f"has seq {event.seq}, expected {number}: an event "
                    "before it was deleted or inserted",
                )
            if event.prev != prev:
                self._broken(event.seq, "does not follow the event before it (prev differs)")
            if event.hash != event_hash(event.prev, event_content(event)):
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
        moment = iso(now or datetime.now(UTC))
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
                f"INSERT INTO {{rollouts}} ({_SELECT}) VALUES ({', '.join('?' * len(STATE_COLUMNS))})",  # nosec B608
                [stored_value(column, values[column]) for column in STATE_COLUMNS],
            )
            state = state_from_row(tuple(stored_value(c, values[c]) for c in STATE_COLUMNS))
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
            params = [
                stored_value(c, getattr(new, c)) for c in (*changes, "updated_at", "revision")
            ]
            rows = execute(
                f"UPDATE {{rollouts}} SET {assignments} WHERE id = ? AND revision = ? RETURNING id",  # nosec B608
                [*params, current.id, current.revision],
            )
            if not rows:
                raise RolloutError(
                    f"rollout {current.id} of model {current.name!r} changed while this "
                    "controller was deciding (another check, or a person, acted first)",
                    fix="run the command again: it reads the new state",
                )
            if kind is not None:
                self._append(execute, new, kind, current.state, by, evidence or {}, iso(moment))
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
            f"INSERT INTO {{rollout_events}} ({', '.join(EVENT_COLUMNS)}) "  # nosec B608
            f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            [row[column] for column in EVENT_COLUMNS],
        )

    def _broken(self, seq: int, what: str) -> None:
        raise RolloutError(
            f"the rollout audit chain in {self.where} is broken: event {seq} {what}",
            fix="restore the rollout_events table from a backup; do not edit it by hand",
        )
