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

import math
from collections.abc import Callable
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from taxiway.errors import GovernanceError, TaxiwayError
from taxiway.spec.models import PostgresRegistry
from taxiway.spec.secrets import redact

__all__ = ["Head", "PostgresApprovals"]

Head = dict[str, Any]
"""A project's head row: ``seq``, ``hash`` and ``mac`` (None without a signing key)."""

_SCHEMA: list[LiteralString] = [
    "CREATE SCHEMA IF NOT EXISTS {schema}",
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
]
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class PostgresApprovals:
    """The approvals tables in the schema of the PostgreSQL registry ``registry``."""

    def __init__(self, registry: PostgresRegistry) -> None:
        try:
            self._url = registry.url.reveal()
            params = conninfo_to_dict(self._url)
        except TaxiwayError as error:  # an unset environment variable, an unreadable file
            raise GovernanceError(
                f"cannot read registry.url for the approvals log: {error.message}", fix=error.fix
            ) from None
        except psycopg.Error:
            raise GovernanceError(
                "registry.url does not hold a PostgreSQL connection URL",
                fix="set registry.url to a URL such as postgresql://user@host:5432/dbname",
            ) from None
        self.schema = registry.schema_name
        self._timeout = max(2, math.ceil(registry.connect_timeout_s))
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.where = f"postgresql {host}:{params.get('port') or 5432} {self.schema}.approvals"

    def read(self, project: str) -> tuple[bytes, Head | None]:
        """``project``'s lines as the file log's bytes, and its head (None: none yet)."""
        with self._connect("read") as conn:
            return self._read(conn, project)

    def append(
        self, project: str, build: Callable[[bytes, Head | None], tuple[int, bytes, Head]]
    ) -> None:
        """Under the project's lock: ``build(lines, head)`` verifies what is stored and returns
        the new record's ``seq``, its line and the new head, which are then written."""
        with self._connect("append to") as conn, conn.transaction():
            conn.execute(_LOCK, (f"taxiway.approvals:{self.schema}:{project}",))
            seq, line, head = build(*self._read(conn, project))
            conn.execute(
                self._sql(
                    "INSERT INTO {schema}.approvals (project, seq, line) VALUES (%s, %s, %s)"
                ),
                (project, seq, line.decode()),
            )
            conn.execute(
                self._sql(
                    "INSERT INTO {schema}.approvals_head (project, seq, hash, mac) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (project) DO UPDATE SET "
                    "seq = excluded.seq, hash = excluded.hash, mac = excluded.mac"
                ),
                (project, head["seq"], head["hash"], head.get("mac")),
            )

    def _read(
        self, conn: psycopg.Connection[tuple[Any, ...]], project: str
    ) -> tuple[bytes, Head | None]:
        rows = conn.execute(
            self._sql("SELECT line FROM {schema}.approvals WHERE project = %s ORDER BY seq"),
            (project,),
        ).fetchall()
        data = "".join(f"{row[0]}\n" for row in rows).encode()
        found = conn.execute(
            self._sql("SELECT seq, hash, mac FROM {schema}.approvals_head WHERE project = %s"),
            (project,),
        ).fetchone()
        head = None if found is None else {"seq": found[0], "hash": found[1], "mac": found[2]}
        return data, head

    def _sql(self, statement: LiteralString) -> sql.Composed:
        return sql.SQL(statement).format(schema=sql.Identifier(self.schema))

    def _connect(self, action: str) -> _Session:
        return _Session(self, action)


class _Session:
    """One connection for one read or append; the tables made on first use; errors explained."""

    def __init__(self, store: PostgresApprovals, action: str) -> None:
        self.store = store
        self.action = action
        self.conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def __enter__(self) -> psycopg.Connection[tuple[Any, ...]]:
        store = self.store
        try:
            self.conn = psycopg.connect(
                store._url,
                autocommit=True,
                connect_timeout=store._timeout,
                application_name="taxiway-approvals",
            )
            with self.conn.transaction():
                self.conn.execute(_LOCK, (f"taxiway.approvals:{store.schema}",))
                for statement in _SCHEMA:
                    self.conn.execute(store._sql(statement))
        except psycopg.Error as error:
            self._close()
            raise self._failed(error) from None
        return self.conn

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self._close()
        if isinstance(error, psycopg.Error):
            raise self._failed(error) from None

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _failed(self, error: psycopg.Error) -> GovernanceError:
        diag = getattr(error, "diag", None)
        text = getattr(diag, "message_primary", None) or str(error) or type(error).__name__
        reason = redact(str(text)).strip().splitlines()[0]
        return GovernanceError(
            f"cannot {self.action} the approvals log at {self.store.where}: {reason}",
            fix="check that the registry's PostgreSQL server is up, registry.url, and that the "
            f"role may create and write tables in schema {self.store.schema}",
        )
