"""Create the blocked example's CRM table and a role that may log in but not read it.

Run as an admin against a PostgreSQL database; it is safe to run again. It leaves:

* schema ``crm`` and table ``crm.accounts`` with a few customer accounts;
* role ``ml_reader`` (LOGIN) with USAGE on the schema but no SELECT on the table, exactly as a
  service role looks before anyone has granted it the data.

Then it prints the URL to export as ``BLOCKED_CRM_URL``: the same server and database, as
``ml_reader``. ``taxiway check`` (or ``taxiway sprint``) on examples/blocked/taxiway.yaml then
reports ``GRANT SELECT ON crm.accounts TO ml_reader;``. The role is cluster-wide and stays;
drop the schema and the role by hand when done (``DROP SCHEMA crm CASCADE; DROP ROLE
ml_reader;``).

    python examples/blocked/setup_postgres.py [ADMIN_URL]
    # default ADMIN_URL: postgresql://postgres@127.0.0.1:5432/test (trust auth on loopback)
"""

from __future__ import annotations

import argparse
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = ["DEFAULT_ADMIN_URL", "ROLE", "reader_url", "setup"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROLE = "ml_reader"
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


def setup(admin_url: str = DEFAULT_ADMIN_URL, role: str = ROLE) -> str:
    """Create (or reset) the schema, the table, its rows and the role; return the role's URL."""
    who = sql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True) as admin:
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
        "admin_url", nargs="?", default=DEFAULT_ADMIN_URL, help="an admin's database URL"
    )
    args = parser.parse_args(argv)
    url = setup(args.admin_url)
    print(f"crm.accounts is ready and {ROLE} cannot read it. Now run:")
    print(f"  export BLOCKED_CRM_URL={url}")


if __name__ == "__main__":
    main()
