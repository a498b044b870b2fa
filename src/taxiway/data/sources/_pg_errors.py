"""PostgreSQL failures explained: what failed, why, and the one statement or step that fixes it.

Shared by the reader (:mod:`taxiway.data.sources.postgres`) and the access checks
(:mod:`taxiway.data.access`). libpq reports connection failures only as text (ADBC and psycopg
both pass it on), so they are classified by message; statement failures carry a SQLSTATE.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from taxiway.errors import SourceError

__all__ = [
    "Endpoint",
    "Grant",
    "connect_error",
    "denied_object",
    "endpoint",
    "grant_for_denial",
    "libpq_timeout",
    "primary_message",
    "quote_idents",
    "scrub",
    "similar_relations",
    "url_origin",
    "view_owner",
]

Connection = psycopg.Connection[tuple[Any, ...]]

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_DENIED = re.compile(
    r"permission denied for (schema|table|view|materialized view|foreign table|sequence|"
    r"relation|function|database) (.+)$"
)
_SIMPLE_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")


def scrub(text: str) -> str:
    """``text`` with any password (in a URL or a ``password=`` pair) replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def url_origin(names: Sequence[str]) -> str:
    """Where the connection URL comes from, in words: the env vars or files the spec names."""
    env = [n for n in names if not n.startswith("file:")]
    files = [n[len("file:") :] for n in names if n.startswith("file:")]
    parts = []
    if env:
        noun = "environment variable" if len(env) == 1 else "environment variables"
        parts.append(f"the {noun} {', '.join(env)}")
    if files:
        noun = "file" if len(files) == 1 else "files"
        parts.append(f"the {noun} {', '.join(files)}")
    return " and ".join(parts) if parts else "`url:` in the spec"


def libpq_timeout(seconds: float) -> int:
    """The whole seconds libpq waits for ``connect_timeout_s`` (it rounds up, minimum 2)."""
    return max(2, math.ceil(seconds))


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes, without the password."""

    host: str
    port: str
    database: str
    user: str

    @property
    def address(self) -> str:
        """``host:port``, as a message shows it."""
        return f"{self.host}:{self.port}"


def endpoint(conninfo: str, *, origin: str, source: str) -> Endpoint:
    """Parse a libpq URL or ``key=value`` string; raise :class:`SourceError` if it is neither."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise SourceError(
            f"source `{source}`: {origin} does not hold a PostgreSQL connection URL",
            fix=f"set {origin} to a URL such as postgresql://user@host:5432/dbname",
        ) from None
    user = str(params.get("user") or "(default user)")
    return Endpoint(
        host=str(params.get("host") or params.get("hostaddr") or "localhost"),
        port=str(params.get("port") or "5432"),
        database=str(params.get("dbname") or params.get("user") or "(default database)"),
        user=user,
    )


def _reason(text: str) -> str:
    """The libpq reason inside a wrapped connection error, on one line."""
    text = scrub(text).strip()
    for prefix in ("IO: [libpq] Failed to connect: ", "connection failed: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    first = text.splitlines()[0] if text else "unknown error"
    if " failed: " in first:
        first = first.split(" failed: ", 1)[1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", first).strip()


def _ident(name: str) -> str:
    """``name`` as PostgreSQL would print it in a statement (quoted only when needed)."""
    if _SIMPLE_IDENT.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def connect_error(
    error: BaseException | str,
    *,
    source: str,
    endpoint: Endpoint,
    names: Sequence[str],
    timeout_s: float,
) -> SourceError:
    """A :class:`SourceError` saying why connecting to ``endpoint`` failed and what to do."""
    text = str(error)
    lowered = text.lower()
    origin = url_origin(names)
    reason = _reason(text)
    at = f"PostgreSQL at {endpoint.address}"
    head = f"source `{source}`: cannot connect to {at}"
    user, database = _ident(endpoint.user), _ident(endpoint.database)
    if "connection refused" in lowered:
        return SourceError(
            f"{head}: connection refused (no server is listening there)",
            fix=f"start the PostgreSQL server, or check the host and port in {origin}",
        )
    if "timeout expired" in lowered or "timed out" in lowered:
        return SourceError(
            f"{head}: no answer within {libpq_timeout(timeout_s)} s",
            fix="check that the host is reachable from here (VPN, firewall, security group) "
            f"and the host and port in {origin}; or raise `connect_timeout_s` "
            f"(now {timeout_s:g})",
        )
    if (
        "password authentication failed" in lowered
        or "no password supplied" in lowered
        or "authentication failed" in lowered
    ):
        return SourceError(
            f"{head}: the server rejected the login of role {endpoint.user} ({reason})",
            fix=f"check the user name and password in {origin}",
        )
    if re.search(r'database ".*" does not exist', text):
        return SourceError(
            f"{head}: database {endpoint.database} does not exist",
            fix=f"check the database name in {origin}, or create it: CREATE DATABASE {database};",
        )
    if re.search(r'role ".*" does not exist', text):
        return SourceError(
            f"{head}: role {endpoint.user} does not exist",
            fix=f"check the user name in {origin}, or create the role: CREATE ROLE {user} LOGIN;",
        )
    if "is not permitted to log in" in lowered:
        return SourceError(
            f"{head}: role {endpoint.user} may not log in",
            fix=f"ALTER ROLE {user} LOGIN;",
        )
    if "permission denied for database" in lowered or "connect privilege" in lowered:
        return SourceError(
            f"{head}: role {endpoint.user} may not connect to database {endpoint.database}",
            fix=f"GRANT CONNECT ON DATABASE {database} TO {user};",
        )
    if (
        "could not translate host name" in lowered
        or "failed to resolve host" in lowered
        or "name or service not known" in lowered
    ):
        return SourceError(
            f"{head}: the host name {endpoint.host} does not resolve",
            fix=f"check the host name in {origin}",
        )
    if "no route to host" in lowered or "network is unreachable" in lowered:
        return SourceError(
            f"{head}: {reason}",
            fix=f"check the network path to {endpoint.host} (VPN, routes) and the host in {origin}",
        )
    if "pg_hba.conf" in lowered:
        return SourceError(
            f"{head}: the server does not accept this host, user or database ({reason})",
            fix="ask the database administrator for a pg_hba.conf entry for this client, "
            f"or add sslmode=require to {origin} if the server only accepts SSL",
        )
    if "ssl" in lowered:
        return SourceError(
            f"{head}: {reason}",
            fix=f"set sslmode in {origin} to what the server supports (require, prefer, disable)",
        )
    if "too many clients" in lowered or "too many connections" in lowered:
        return SourceError(
            f"{head}: the server has no free connection slots",
            fix="retry later, or ask the administrator to raise max_connections or add a pooler",
        )
    if "starting up" in lowered or "shutting down" in lowered or "recovery mode" in lowered:
        return SourceError(f"{head}: {reason}", fix="wait for the server to be ready and retry")
    if (
        'missing "="' in lowered
        or "invalid uri" in lowered
        or "invalid connection option" in lowered
    ):
        return SourceError(
            f"source `{source}`: {origin} does not hold a valid PostgreSQL connection URL",
            fix=f"set {origin} to a URL such as postgresql://user@host:5432/dbname",
        )
    return SourceError(
        f"{head}: {reason}",
        fix=f"check {origin} and that the server accepts connections "  # nosec B608
        "(`psql <url> -c 'SELECT 1'` from this machine)",
    )


def primary_message(error: BaseException) -> str:
    """The server's one-line message inside an ADBC, Arrow or psycopg error."""
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if isinstance(primary, str) and primary:
        return scrub(primary)
    for key, value in getattr(error, "details", None) or []:
        if key in (b"PG_DIAG_MESSAGE_PRIMARY", "PG_DIAG_MESSAGE_PRIMARY"):
            raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return scrub(raw)
    text = scrub(str(error)).strip()
    match = re.search(r"(?:ERROR|FATAL):\s+(.+)", text)
    if match:
        return match.group(1).strip()
    return text.splitlines()[0] if text else type(error).__name__


def denied_object(message: str) -> tuple[str, str] | None:
    """``(kind, name)`` of the object a ``permission denied for ...`` message names.

    >>> denied_object("permission denied for table orders")
    ('table', 'orders')
    >>> denied_object("division by zero") is None
    True
    """
    match = _DENIED.search(message.strip())
    if not match:
        return None
    return match.group(1), match.group(2).strip()


def quote_idents(conn: Connection, *names: str) -> list[str]:
    """Each name quoted by the server's ``quote_ident`` (bare unless it must be quoted)."""
    if not names:
        return []
    placeholders = ", ".join(["quote_ident(%s)"] * len(names))
    row = conn.execute(f"SELECT {placeholders}", list(names)).fetchone()
    assert row is not None  # nosec B101
    return [str(value) for value in row]


@dataclass(frozen=True)
class Grant:
    """A missing privilege: the finding rule, the object in words, and the fixing statement."""

    rule: str
    role: str
    what: str
    statement: str


def grant_for_denial(conn: Connection, message: str, role: str | None = None) -> Grant | None:
    """The GRANT that lifts a ``permission denied`` error met by ``role`` (default: ``conn``'s).

    A table named bare in the message is qualified by looking it up among the relations the
    role cannot read (search-path schemas first). Pass ``role`` when the check ran as someone
    else, e.g. the owner of a view the current role reads through.
    """
    found = denied_object(message)
    if found is None:
        return None
    kind, name = found
    row = conn.execute(
        "SELECT coalesce(%s, current_user), quote_ident(coalesce(%s, current_user))", [role, role]
    ).fetchone()
    assert row is not None  # nosec B101
    role_name, role = str(row[0]), str(row[1])
    if kind == "schema":
        (schema,) = quote_idents(conn, name)
        return Grant(
            "access.schema",
            role_name,
            f"schema {schema}",
            f"GRANT USAGE ON SCHEMA {schema} TO {role};",
        )
    if kind == "database":
        (database,) = quote_idents(conn, name)
        return Grant(
            "access.connect",
            role_name,
            f"database {database}",
            f"GRANT CONNECT ON DATABASE {database} TO {role};",
        )
    if kind == "function":
        return Grant(
            "access.function",
            role_name,
            f"function {name}",
            f"GRANT EXECUTE ON FUNCTION {name} TO {role};",
        )
    qualified = conn.execute(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND NOT has_table_privilege(%s, c.oid, 'SELECT')"
        " ORDER BY n.nspname = ANY (current_schemas(false)) DESC, n.nspname LIMIT 1",
        [name, role_name],
    ).fetchone()
    target = str(qualified[0]) if qualified else quote_idents(conn, name)[0]
    noun = "sequence" if kind == "sequence" else "table"
    on = f"SEQUENCE {target}" if kind == "sequence" else target
    return Grant("access.table", role_name, f"{noun} {target}", f"GRANT SELECT ON {on} TO {role};")


def view_owner(conn: Connection, relation: str) -> str | None:
    """The owner of view ``relation`` (SQL name), whose privileges it reads its tables with.

    ``None`` for a table, or a ``security_invoker`` view (which reads as the querying role).
    """
    row = conn.execute(
        "SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
        " WHERE c.oid = to_regclass(%s) AND c.relkind = 'v' AND NOT EXISTS"
        " (SELECT FROM unnest(c.reloptions) o WHERE o ~* '^security_invoker=(true|on|yes|1)$')",
        [relation],
    ).fetchone()
    return str(row[0]) if row else None


def similar_relations(conn: Connection, schema: str | None, name: str) -> list[str]:
    """Up to three existing tables or views whose names are close to ``schema.name``."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
    ).fetchall()
    relations = [(str(r[0]), str(r[1])) for r in rows]
    names = sorted({table for _, table in relations})
    close = set(difflib.get_close_matches(name, names, n=5, cutoff=0.75))
    close |= {table for table in names if table.lower() == name.lower()}
    matches = [
        (spot, table)
        for spot, table in relations
        if table in close and (spot, table) != (schema, name)
    ]
    # the schema the spec named first, then the closest spelling
    matches.sort(
        key=lambda m: (m[0] != schema, -difflib.SequenceMatcher(None, name, m[1]).ratio(), m)
    )
    return [f"{spot}.{table}" for spot, table in matches[:3]]
