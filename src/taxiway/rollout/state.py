"""A rollout's stored state: where it lives (the registry's database) and how to open it.

The names every layer above uses are here: :class:`RolloutState` and :class:`RolloutEvent`
(:mod:`.records`), :class:`RolloutStore` (:mod:`.store`: the tables, the transitions, the
event chain) and :func:`open_rollout_store`.
"""

from __future__ import annotations

from pathlib import Path

from taxiway.errors import RolloutError, TaxiwayError
from taxiway.rollout.records import (
    ACTIVE,
    GENESIS,
    STATES,
    RolloutEvent,
    RolloutState,
    StateName,
    event_hash,
)
from taxiway.rollout.store import RolloutStore
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
        except TaxiwayError as error:  # an unset environment variable, an unreadable file
            raise RolloutError(
                f"cannot read registry.url for the rollout store: {error.message}",
                fix=error.fix,
            ) from None
        database = PostgresDatabase(
            url, schema=registry.schema_name, connect_timeout_s=registry.connect_timeout_s
        )
        return RolloutStore(database, where=database.where)
    raise RolloutError(f"unsupported registry {registry!r}")  # pragma: no cover
