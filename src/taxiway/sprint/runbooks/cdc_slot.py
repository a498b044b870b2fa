"""The runbook page: a CDC replication slot falls behind (or is lost)."""

from __future__ import annotations

from taxiway.spec.models import PostgresSource
from taxiway.sprint.runbooks.facts import _Facts, _sh


def _slot(name: str, source: PostgresSource) -> str:
    # data.cdc.postgres.slot_name, restated: the sprint layer quotes it without psycopg2
    import re

    return source.slot or "taxiway_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:54]


def _cdc_slot(f: _Facts) -> str:
    captured = {
        name: source
        for name, source in f.project.spec.sources.items()
        if isinstance(source, PostgresSource) and source.cdc
    }
    if captured:
        rows = "\n".join(
            f"| `{name}` | `{source.table}` | `{_slot(name, source)}` | `{source.history}` |"
            for name, source in captured.items()
        )
        sources = (
            "| source | table | slot (and publication) | history |\n|---|---|---|---|\n" + rows
        )
        slots = ", ".join(f"'{_slot(n, s)}'" for n, s in captured.items())
    else:
        sources = (
            "This spec declares no `cdc: true` source, so nothing here applies until one is "
            "added (`kind: postgres`, `cdc: true`, `history:`)."
        )
        slots = "'<slot>'"
    query = (
        "SELECT slot_name, active, wal_status, "  # one line: the page's shell block  # nosec B608
        "pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) AS retained, "
        "pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) AS unconfirmed "
        f"FROM pg_replication_slots WHERE slot_name IN ({slots});"
    )
    return f"""{f.header("CDC slot behind")}
`taxiway features stream` captures these tables through a logical replication slot each
(pgoutput): PostgreSQL keeps every WAL segment the slot has not confirmed, so a consumer that is
stopped, or slower than the writes, makes the server's disk fill up.

{sources}

## Symptoms

- The consumer's progress line (every `--progress-every` seconds) says
  `slot <slot> retains <N> bytes of WAL, <M> unconfirmed (<wal_status>)` and N keeps growing;
  an ERROR line says the slot is `unreserved` or `lost`.
- Online values of views over these tables stop changing while the table changes
  (`taxiway features get <entity>=<key>`).
- On the server: `pg_wal` grows; `wal_status` in `pg_replication_slots` turns `extended`, then
  `unreserved`, then `lost`.

## Thresholds

PostgreSQL's `max_slot_wal_keep_size` bounds the WAL a slot may hold (default -1: no bound, so
a forgotten slot fills the disk). Set it to what the disk can spare; past it the slot is
`lost` and the table must be snapshotted again (below). `wal_sender_timeout` (60 s) ends a
consumer that stops answering.

## Diagnose

{_sh(f'psql -c "{query}"', "psql -c 'SHOW max_slot_wal_keep_size;'")}

`active = f`: no consumer is attached: start it. Active but `unconfirmed` growing: the consumer
is slower than the writes (its progress line gives changes/s; bench/cdc.py measures what it can
apply here).

## Recover

Start (or restart) the consumer; it resumes from the position it stored, skipping what it
already applied, and confirms as it goes:

{_sh(f.cmd("features", "stream"))}

A slot that is `lost` cannot resume: stop the consumer, drop the slot (`SELECT
pg_drop_replication_slot('<slot>');`), delete the state folder's `streams.sqlite` (or only the
`cdc_*` rows of the source), and start the consumer again: it snapshots the table afresh (the
history is rewritten from that snapshot). To retire a CDC source, drop its slot and publication
(`DROP PUBLICATION <slot>;`) so the server stops keeping WAL for it.

## Verify

`retained` in the query above falls back to a few MB and stays there; the online values show the
table's latest changes (`taxiway features get <entity>=<key>`).
"""  # nosec B608
