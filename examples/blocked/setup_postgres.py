"""Create the blocked example's CRM table and a role that may log in but not read it.

Run as an admin against a PostgreSQL database; it is safe to run again. It leaves:

* schema ``crm`` and table ``crm.accounts`` with a few customer accounts;
* role ``ml_reader`` (LOGIN) with USAGE on the schema but no SELECT on the table, exactly as a
  service role looks before anyone has granted it the data.

Then it prints the URL to export as ``BLOCKED_CRM_URL``: the same server and database, as
``ml_reader``. ``taxiway check`` (or ``taxiway sprint``) on examples/blocked/taxiway.yaml then
reports ``GRANT SELECT ON crm.accounts TO ml_reader;``. The role is cluster-wide and stays;
drop the schema and the role by hand when done (``DROP SCHEMA crm CASCADE; DROP ROLE
ml_reader;``). ``make demo-blocked`` (``demo.py``) does all this itself through
:func:`prepare_crm`.

    python examples/blocked/setup_postgres.py [ADMIN_URL]
    # default ADMIN_URL: $BLOCKED_ADMIN_URL, else postgresql://postgres@127.0.0.1:5432/test
    # (trust auth on loopback). A password comes from that variable or PGPASSWORD, never
    # from the command line, and is never printed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = [
    "ADMIN_URL_ENV",
    "CRM_URL_ENV",
    "DEFAULT_ADMIN_URL",
    "ROLE",
    "location",
    "prepare_crm",
    "reader_url",
    "setup",
]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_URL_ENV = "BLOCKED_ADMIN_URL"  # an admin's URL, when not the default
CRM_URL_ENV = "BLOCKED_CRM_URL"  # what taxiway.yaml reads: url: ${BLOCKED_CRM_URL}
ROLE = "ml_reader"
CONNECT_TIMEOUT_S = 5
ACCOUNTS = [
    (1, "marta", "basic", "2023-04-02 09:00:00"),
    (2, "marta", "plus", "2023-05-17 14:30:00"),
    (3, "jonas", "premium", "2023-06-01 10:15:00"),
    (4, "jonas", "basic", "2024-01-09 16:45:00"),
    (5, "lea", "plus", "2024-02-20 11:00:00"),
]


def reader_url(admin_url: str, role: str = ROLE) -> str:
    """``admin_url`` with the user replaced by ``role`` and no password (trust auth).

    >>> reader_url("postgresql://postgres:secret@127.0.0.1:5432/test")
    'postgresql://ml_reader@127.0.0.1:5432/test'
    """
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def location(url: str) -> str:
    """Where ``url`` points, without its user or password.

    >>> location("postgresql://postgres:secret@127.0.0.1:5432/test")
    '127.0.0.1:5432/test'
    """
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path or '/'}"


def prepare_crm(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The ``BLOCKED_CRM_URL`` the demo runs with, and a note saying which case it shows.

    * ``BLOCKED_CRM_URL`` already set: it is kept (it may hold a password, so it is not shown);
    * else the server at ``BLOCKED_ADMIN_URL`` (default :data:`DEFAULT_ADMIN_URL`) is set up
      with :func:`setup` and the URL is ``ml_reader``'s: the debrief's fix is the GRANT;
    * no server there, or the setup refused: the URL is still ``ml_reader``'s on that server,
      so the blocker is the failed connection, and the note says how to get the GRANT case.

    >>> url, note = prepare_crm({CRM_URL_ENV: "postgresql://me:secret@db/crm"})
    >>> url, "secret" in note
    ('postgresql://me:secret@db/crm', False)
    """
    given = environ.get(CRM_URL_ENV)
    if given:
        return given, f"crm: {CRM_URL_ENV} is set, so the sprint reads the server it names"
    admin_url = environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL
    where = location(admin_url)
    try:
        url = setup(admin_url)
    except psycopg.Error as error:
        reason = _redacted(str(error).strip().splitlines()[0], admin_url)
        return reader_url(admin_url), (
            f"crm: no PostgreSQL to set up at {where} ({reason}); the data-access blocker "
            "will be the failed connection, not the missing GRANT. For the GRANT case, start "
            f"PostgreSQL there (or set {ADMIN_URL_ENV} to an admin's URL) and run it again."
        )
    return url, (
        f"crm: on PostgreSQL at {where}, the role {ROLE} may log in but not read "
        f"crm.accounts; {CRM_URL_ENV}={url}"
    )


def _redacted(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (a driver may quote what it was given)."""
    secret = urlsplit(url).password
    return text.replace(secret, "***") if secret else text


def setup(admin_url: str = DEFAULT_ADMIN_URL, role: str = ROLE) -> str:
    """Create (or reset) the schema, the table, its rows and the role; return the role's URL."""
    who = sql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        _create_role(admin, role)
        with admin.transaction():
            admin.execute("CREATE SCHEMA IF NOT EXISTS crm")
            admin.execute(
                "CREATE TABLE IF NOT EXISTS crm.accounts ("
                " customer_id bigint PRIMARY KEY,"
                " account_manager text,"
                " plan text,"
                " opened_at timestamp NOT NULL)"
            )
            admin.cursor().executemany(
                "INSERT INTO crm.accounts VALUES (%s, %s, %s, %s::timestamp)"
                " ON CONFLICT (customer_id) DO NOTHING",
                ACCOUNTS,
            )
            # reaching the schema is allowed; reading the table is the grant nobody made
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA crm TO {}").format(who))
            admin.execute(sql.SQL("REVOKE ALL ON crm.accounts FROM PUBLIC, {}").format(who))
    return reader_url(admin_url, role)


def _create_role(admin: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    """CREATE ROLE ... LOGIN unless it exists (a concurrent run may create it first)."""
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if exists is None:
        with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "admin_url",
        nargs="?",
        default=os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL,
        help=f"an admin's database URL (default: ${ADMIN_URL_ENV}, else {DEFAULT_ADMIN_URL})",
    )
    args = parser.parse_args(argv)
    url = setup(args.admin_url)
    print(f"crm.accounts is ready and {ROLE} cannot read it. Now run:")
    print(f"  export BLOCKED_CRM_URL={url}")


if __name__ == "__main__":
    main()
