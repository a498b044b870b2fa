"""Access checks: can the role read what a PostgreSQL source needs; if not, which GRANT fixes it.

Each problem is a ``block`` finding that names the role, the object and the exact statement an
owner runs to fix it (``GRANT SELECT ON public.orders TO ml_reader;``). Nothing is raised: a
failed connection is one ``access.connect`` finding too, so a readiness report can list it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import psycopg

from taxiway.data.findings import Finding
from taxiway.data.sources._pg_errors import (
    connect_error,
    grant_for_denial,
    primary_message,
    quote_idents,
    similar_relations,
    view_owner,
)
from taxiway.data.sources.postgres import PostgresReader
from taxiway.errors import SourceError

__all__ = ["check_access"]

Connection = psycopg.Connection[tuple[Any, ...]]

_PATH_ITEM = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^,]+?))\s*(?:,|$)')


def check_access(reader: PostgresReader, columns: Sequence[str]) -> list[Finding]:
    """The access findings for ``reader`` when it must read ``columns`` (empty: every column).

    Connects as the configured role and asks the server's privilege functions, which count
    privileges held through role membership. A table-level SELECT covers every column.
    """
    try:
        parts = reader.table_parts()
    except SourceError as error:
        return [_finding(reader, "access.table", error.message, error.fix)]
    try:
        conn = reader.connect_psycopg()
    except SourceError as error:
        return [_finding(reader, "access.connect", error.message, error.fix)]
    try:
        conn.read_only = True
        if parts is None:
            assert reader.spec.query is not None  # nosec B101
            return _check_query(conn, reader, reader.spec.query)
        return _check_table(conn, reader, parts, list(dict.fromkeys(columns)))
    except psycopg.OperationalError as error:
        failure = connect_error(
            error,
            source=reader.name,
            endpoint=reader.endpoint(),
            names=reader.spec.url.names,
            timeout_s=reader.spec.connect_timeout_s,
        )
        return [_finding(reader, "access.connect", failure.message, failure.fix)]
    finally:
        with suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def _finding(reader: PostgresReader, rule: str, message: str, fix: str | None) -> Finding:
    return Finding(reader.name, rule, "block", message, fix=fix)


def _role(conn: Connection) -> tuple[str, str]:
    """The current role's name and its quoted form for statements."""
    row = conn.execute("SELECT current_user, quote_ident(current_user)").fetchone()
    assert row is not None  # nosec B101
    return str(row[0]), str(row[1])


def _search_path(conn: Connection, role: str) -> list[str]:
    """The schemas an unqualified name is looked up in, including ones the role cannot use."""
    row = conn.execute("SELECT current_setting('search_path')").fetchone()
    setting = str(row[0]) if row else ""
    schemas: list[str] = []
    for quoted, bare in _PATH_ITEM.findall(setting):
        name = quoted.replace('""', '"') if quoted else bare.strip().lower()
        if name == "$user":
            name = role
        if name:
            schemas.append(name)
    return schemas


def _check_table(
    conn: Connection,
    reader: PostgresReader,
    parts: tuple[str | None, str],
    columns: list[str],
) -> list[Finding]:
    role_name, role = _role(conn)
    schema, table = parts
    candidates = [schema] if schema is not None else _search_path(conn, role_name)
    located = None
    for name in candidates:
        located = conn.execute(
            "SELECT n.oid, c.oid, quote_ident(n.nspname), quote_ident(c.relname)"
            " FROM pg_catalog.pg_namespace n LEFT JOIN pg_catalog.pg_class c"
            " ON c.relnamespace = n.oid AND c.relname = %s"
            " AND c.relkind IN ('r', 'v', 'm', 'p', 'f')"
            " WHERE n.nspname = %s",
            [table, name],
        ).fetchone()
        if located is not None and located[1] is not None:
            break
    written = f"{schema}.{table}" if schema is not None else table
    if located is None or located[1] is None:
        similar = similar_relations(conn, schema, table)
        hint = f"; did you mean {' or '.join(similar)}?" if similar else ""
        where = (
            f"schema {schema} does not exist"
            if schema is not None and located is None
            else f"no such table in schema {', '.join(candidates) or '(empty search_path)'}"
        )
        database = reader.endpoint().database
        return [
            _finding(
                reader,
                "access.table",
                f"table {written} does not exist in database {database} ({where})",
                f"check `table:` in the spec{hint}",
            )
        ]
    schema_oid, table_oid, quoted_schema, quoted_table = located
    qualified = f"{quoted_schema}.{quoted_table}"
    findings: list[Finding] = []
    usage = conn.execute(
        "SELECT has_schema_privilege(current_user, %s::oid, 'USAGE')", [schema_oid]
    ).fetchone()
    if not (usage and usage[0]):
        findings.append(
            _finding(
                reader,
                "access.schema",
                f"role {role_name} has no USAGE on schema {quoted_schema}, so it cannot reach "
                f"{qualified}",
                f"GRANT USAGE ON SCHEMA {quoted_schema} TO {role};",
            )
        )
    rows = conn.execute(
        "SELECT attname, has_column_privilege(current_user, attrelid, attnum, 'SELECT')"
        " FROM pg_catalog.pg_attribute"
        " WHERE attrelid = %s::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table_oid],
    ).fetchall()
    readable = {str(name): bool(ok) for name, ok in rows}
    # columns the table lacks are the contract's business; access is about what exists
    needed = [c for c in columns if c in readable] if columns else list(readable)
    findings.extend(
        _check_columns(conn, reader, role_name, role, table_oid, qualified, readable, needed)
    )
    if not findings and needed:
        selected = ", ".join(quote_idents(conn, *needed))
        # a view reads its tables with its owner's privileges (unless security_invoker)
        owner = view_owner(conn, qualified)
        via = (owner, f"view {qualified}") if owner is not None else None
        findings.extend(_check_query(conn, reader, f"SELECT {selected} FROM {qualified}", via))  # nosec B608
    return findings


def _check_columns(
    conn: Connection,
    reader: PostgresReader,
    role_name: str,
    role: str,
    table_oid: int,
    qualified: str,
    readable: dict[str, bool],
    needed: list[str],
) -> list[Finding]:
    """SELECT on the table, or else on each needed column; one statement for what is missing."""
    whole = conn.execute(
        "SELECT has_table_privilege(current_user, %s::oid, 'SELECT')", [table_oid]
    ).fetchone()
    if whole and whole[0]:
        return []
    missing = [c for c in needed if not readable[c]]
    if not missing:
        return []
    quoted = ", ".join(quote_idents(conn, *missing))
    column_grant = f"GRANT SELECT ({quoted}) ON {qualified} TO {role};"
    if len(missing) == len(needed):
        partial = len(needed) < len(readable)
        only = f" (or only the columns taxiway reads: {column_grant})" if partial else ""
        return [
            _finding(
                reader,
                "access.table",
                f"role {role_name} has no SELECT on table {qualified}{only}",
                f"GRANT SELECT ON {qualified} TO {role};",
            )
        ]
    return [
        _finding(
            reader,
            "access.column",
            f"role {role_name} cannot read column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} of {qualified}",
            column_grant,
        )
    ]


def _check_query(
    conn: Connection,
    reader: PostgresReader,
    query: str,
    via: tuple[str, str] | None = None,
) -> list[Finding]:
    """``SELECT * FROM (query) q LIMIT 0`` as the role; a denial becomes its GRANT.

    ``via`` is ``(owner, "view x")`` when the query reads a view, whose tables are read with
    its owner's privileges: a denial on another table is then the owner's to fix.
    """
    query = query.strip().rstrip(";")
    try:
        conn.execute(f"SELECT * FROM ({query}) q LIMIT 0")  # nosec B608
        return []
    except psycopg.errors.InsufficientPrivilege as error:
        message = primary_message(error)
        conn.rollback()
        owner, view = via if via is not None else (None, "")
        grant = grant_for_denial(conn, message, owner)
        if grant is None:
            role_name, _ = _role(conn)
            return [
                _finding(
                    reader,
                    "access.query",
                    f"role {role_name} may not run the query of {reader.target()}: {message}",
                    "ask the owner of the object to GRANT the privilege to the role",
                )
            ]
        who = f"role {grant.role}" + (f", owner of {view}," if owner is not None else "")
        return [
            _finding(
                reader, grant.rule, f"{who} may not read {grant.what} ({message})", grant.statement
            )
        ]
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as error:
        message = primary_message(error)
        return [
            _finding(
                reader,
                "access.table",
                f"the query of source `{reader.name}` reads a table that does not exist: {message}",
                "check the table names in `query:` (schema.table)",
            )
        ]
    except psycopg.OperationalError:
        raise
    except psycopg.Error as error:
        message = primary_message(error)
        return [
            _finding(
                reader,
                "access.query",
                f"the query of source `{reader.name}` fails: {message}",
                "run the query in psql as the same role and correct it",
            )
        ]
