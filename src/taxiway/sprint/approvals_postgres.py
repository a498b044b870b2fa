"""The approvals log in the registry's PostgreSQL database, for replicas that share no disk.

When ``registry: {kind: postgres}``, the sign-offs live beside the registry and the rollout
state, in two tables of its schema: ``approvals`` (one row per record: the project, its
``seq`` and the record's canonical JSON line, exactly the bytes the file log would hold) and
``approvals_head`` (per project, the last record's ``seq`` and ``hash``, and their HMAC with a
signing key). Reading joins a project's lines in ``seq`` order and verifies them with the same
chain code as the file (:mod:`taxiway.sprint.approvals_chain`): a row edited, deleted or
inserted by hand, or rows cut off the end, is the same :class:`GovernanceError`. An append is
one transaction under a per-project advisory lock: read, verify, insert the record, move the
head; two writers on two machines queue on the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from taxiway.errors import GovernanceError
from taxiway.models.registry.side_tables import (
    PostgresDatabase,
    Session,
    SideTables,
    registry_url,
)
from taxiway.spec.models import PostgresRegistry

__all__ = ["Head", "PostgresApprovals"]

Head = dict[str, Any]
"""A project's head row: ``seq``, ``hash`` and ``mac`` (None without a signing key)."""

_TABLES = SideTables(
    "approvals",
    sqlite=(),  # the file log (approvals_log.py) serves a SQLite registry
    postgres=(
        """CREATE TABLE IF NOT EXISTS {schema}.approvals (
            project TEXT NOT NULL,
            seq BIGINT NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (project, seq)
        )""",
        """CREATE TABLE IF NOT EXISTS {schema}.approvals_head (
            project TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            mac TEXT
        )""",
    ),
)


class PostgresApprovals:
    """The approvals tables in the schema of the PostgreSQL registry ``registry``."""

    def __init__(self, registry: PostgresRegistry) -> None:
        url = registry_url(registry, "the approvals log", GovernanceError)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise GovernanceError(
                "registry.url does not hold a PostgreSQL connection URL",
                fix="set registry.url to a URL such as postgresql://user@host:5432/dbname",
            ) from None
        self.schema = registry.schema_name
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.where = f"postgresql {host}:{params.get('port') or 5432} {self.schema}.approvals"
        self._database = PostgresDatabase(
            url,
            _TABLES,
            self._failed,
            schema=self.schema,
            connect_timeout_s=registry.connect_timeout_s,
            where=self.where,
        )

    def read(self, project: str) -> tuple[bytes, Head | None]:
        """``project``'s lines as the file log's bytes, and its head (None: none yet)."""
        with self._database.session("read") as session:
            return _read(session, project)

    def append(
        self, project: str, build: Callable[[bytes, Head | None], tuple[int, bytes, Head]]
    ) -> None:
        """Under the project's lock: ``build(lines, head)`` verifies what is stored and returns
        the new record's ``seq``, its line and the new head, which are then written."""
        lock = f"taxiway.approvals:{self.schema}:{project}"
        with self._database.transaction("append to", lock=lock) as session:
            seq, line, head = build(*_read(session, project))
            session.execute(
                "INSERT INTO {schema}.approvals (project, seq, line) VALUES (%s, %s, %s)",
                (project, seq, line.decode()),
            )
            session.execute(
                "INSERT INTO {schema}.approvals_head (project, seq, hash, mac) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (project) DO UPDATE SET "
                "seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
                (project, head["seq"], head["hash"], head.get("mac")),
            )

    def _failed(self, action: str, where: str, reason: str) -> GovernanceError:
        return GovernanceError(
            f"cannot {action} the approvals log at {where}: {reason}",
            fix="check that the registry's PostgreSQL server is up, registry.url, and that the "
            f"role may create and write tables in schema {self.schema}",
        )


def _read(session: Session, project: str) -> tuple[bytes, Head | None]:
    rows = session.rows(
        "SELECT line FROM {schema}.approvals WHERE project = %s ORDER BY seq", (project,)
    )
    data = "".join(f"{row[0]}\n" for row in rows).encode()
    found = session.rows(
        "SELECT seq, hash, mac FROM {schema}.approvals_head WHERE project = %s", (project,)
    )
    head = None if not found else {"seq": found[0][0], "hash": found[0][1], "mac": found[0][2]}
    return data, head
