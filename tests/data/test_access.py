"""Access checks: each missing privilege is one finding whose GRANT, once run, makes it go away."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import psycopg
import pytest

from taxiway.data.access import check_access
from taxiway.data.findings import Finding
from taxiway.data.sources.postgres import PostgresReader
from taxiway.spec.models import PostgresSource

pytestmark = pytest.mark.postgres

COLUMNS = ["customer_id", "amount", "ordered_at"]


@pytest.fixture(scope="module")
def sales(postgres_url: str) -> Iterator[str]:
    """A schema (unique name) holding ``orders``, owned by postgres, granted to no one."""
    schema = f"sales_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(
            f"CREATE TABLE {schema}.orders (customer_id int, amount numeric(10, 2),"
            " ordered_at timestamptz, note text)"
        )
        admin.execute(
            f"INSERT INTO {schema}.orders VALUES (1, 9.50, '2025-01-01 10:00+00', 'first')"
        )
        admin.execute(f"CREATE VIEW {schema}.big_orders AS SELECT * FROM {schema}.orders")
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


RoleFactory = Callable[..., str]


@pytest.fixture
def new_role(postgres_url: str) -> Iterator[RoleFactory]:
    """Create login roles (trust auth: no password) and drop them, and what they own, after."""
    made: list[str] = []

    def make(name: str | None = None) -> str:
        role = name or f"tw_reader_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(role))
            )
        made.append(role)
        return role

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for role in made:
            ident = psycopg.sql.Identifier(role)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
            )
            admin.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident))
            admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(ident))


def reader_for(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, role: str, **fields: str
) -> PostgresReader:
    """A reader that connects as ``role``, its URL in ``TW_ACCESS_DB_URL``."""
    url = postgres_url.replace("postgres@", f"{quote(role, safe='')}@", 1)
    monkeypatch.setenv("TW_ACCESS_DB_URL", url)
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_ACCESS_DB_URL}", **fields}
    )
    return PostgresReader("orders", spec)


def apply(postgres_url: str, finding: Finding) -> None:
    """Run a finding's fix as the owner, the way a DBA would paste it."""
    assert finding.fix is not None
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(finding.fix.encode())


def by_rule(findings: list[Finding]) -> dict[str, Finding]:
    rules = [f.rule for f in findings]
    assert len(rules) == len(set(rules)), findings
    return {f.rule: f for f in findings}


def test_each_missing_grant_is_found_and_its_fix_clears_it(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = new_role()
    reader = reader_for(monkeypatch, postgres_url, role, table=f"{sales}.orders")

    found = by_rule(check_access(reader, COLUMNS))
    assert set(found) == {"access.schema", "access.table"}
    assert all(f.severity == "block" and f.source == "orders" for f in found.values())
    assert found["access.schema"].fix == f"GRANT USAGE ON SCHEMA {sales} TO {role};"
    assert role in found["access.schema"].message
    assert found["access.table"].fix == f"GRANT SELECT ON {sales}.orders TO {role};"
    assert (
        f"GRANT SELECT (customer_id, amount, ordered_at) ON {sales}.orders TO {role};"
        in found["access.table"].message
    )

    apply(postgres_url, found["access.schema"])
    assert set(by_rule(check_access(reader, COLUMNS))) == {"access.table"}

    # a column-level grant on some columns: the finding now asks only for the rest
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"GRANT SELECT (customer_id) ON {sales}.orders TO {role}")
    [column] = check_access(reader, COLUMNS)
    assert column.rule == "access.column"
    assert column.fix == f"GRANT SELECT (amount, ordered_at) ON {sales}.orders TO {role};"
    assert "amount, ordered_at" in column.message

    apply(postgres_url, column)
    assert check_access(reader, COLUMNS) == []
    assert reader.batches(columns=COLUMNS).read_all().num_rows == 1

    # asked for every column, the one still missing is named
    [rest] = check_access(reader, [])
    assert rest.fix == f"GRANT SELECT (note) ON {sales}.orders TO {role};"
    apply(postgres_url, rest)
    assert check_access(reader, []) == []
    assert reader.batches().read_all().num_rows == 1


def test_a_table_grant_covers_every_column(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = new_role()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"GRANT USAGE ON SCHEMA {sales} TO {role}")
        admin.execute(f"GRANT SELECT ON {sales}.orders TO {role}")
    reader = reader_for(monkeypatch, postgres_url, role, table=f"{sales}.orders")
    assert check_access(reader, COLUMNS) == []
    assert check_access(reader, []) == []


def test_privileges_held_through_a_group_role_count(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    group, role = new_role(), new_role()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"GRANT USAGE ON SCHEMA {sales} TO {group}")
        admin.execute(f"GRANT SELECT ON {sales}.orders TO {group}")
        admin.execute(f"GRANT {group} TO {role}")
    reader = reader_for(monkeypatch, postgres_url, role, table=f"{sales}.orders")
    assert check_access(reader, COLUMNS) == []


def test_odd_names_are_quoted_in_the_grants(
    postgres_url: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:6]
    schema, table = f"Sales Dept {suffix}", "Order Lines"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(
            f'CREATE TABLE "{schema}"."{table}" (id int, "Net Amount" numeric, "user" int)'
        )
    role = new_role(f"ML Reader {suffix}")
    reader = reader_for(monkeypatch, postgres_url, role, table=f'"{schema}"."{table}"')
    try:
        found = by_rule(check_access(reader, ["id", "Net Amount", "user"]))
        assert found["access.schema"].fix == f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}";'
        apply(postgres_url, found["access.schema"])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'GRANT SELECT (id) ON "{schema}"."{table}" TO "{role}"')
        [column] = check_access(reader, ["id", "Net Amount", "user"])
        assert column.fix == (
            f'GRANT SELECT ("Net Amount", "user") ON "{schema}"."{table}" TO "{role}";'
        )
        apply(postgres_url, column)
        assert check_access(reader, ["id", "Net Amount", "user"]) == []
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_an_unqualified_table_is_looked_up_on_the_search_path(
    postgres_url: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"tw_events_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{table} (id int)")
    role = new_role()
    reader = reader_for(monkeypatch, postgres_url, role, table=table)
    try:
        [finding] = check_access(reader, [])
        assert finding.fix == f"GRANT SELECT ON public.{table} TO {role};"
        apply(postgres_url, finding)
        assert check_access(reader, []) == []
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP TABLE public.{table}")


def test_a_missing_table_is_its_own_finding(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = new_role()
    reader = reader_for(monkeypatch, postgres_url, role, table=f"{sales}.ordrs")
    [finding] = check_access(reader, COLUMNS)
    assert finding.rule == "access.table"
    assert finding.blocks
    assert finding.message.startswith(f"table {sales}.ordrs does not exist")
    assert f"did you mean {sales}.orders" in (finding.fix or "")


def test_a_missing_schema_is_a_missing_table(
    postgres_url: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = reader_for(monkeypatch, postgres_url, new_role(), table="tw_no_schema.orders")
    [finding] = check_access(reader, [])
    assert finding.rule == "access.table"
    assert "schema tw_no_schema does not exist" in finding.message


def test_a_query_source_is_checked_by_running_it_with_limit_0(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = new_role()
    query = f"SELECT customer_id, amount FROM {sales}.orders WHERE amount > 0"
    reader = reader_for(monkeypatch, postgres_url, role, query=query)

    [schema] = check_access(reader, [])
    assert schema.rule == "access.schema"
    assert schema.fix == f"GRANT USAGE ON SCHEMA {sales} TO {role};"
    apply(postgres_url, schema)

    [table] = check_access(reader, [])
    assert table.rule == "access.table"
    assert table.fix == f"GRANT SELECT ON {sales}.orders TO {role};"
    assert "permission denied for table orders" in table.message
    apply(postgres_url, table)

    assert check_access(reader, []) == []


def test_a_view_whose_owner_cannot_read_its_table_is_caught(
    postgres_url: str, sales: str, new_role: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, role = new_role(), new_role()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {sales} TO {owner}")
        admin.execute(f"GRANT USAGE ON SCHEMA {sales} TO {role}")
        admin.execute(f"SET ROLE {owner}")
        view = f"view_{owner}"
        admin.execute(f"CREATE VIEW {sales}.{view} AS SELECT customer_id FROM {sales}.orders")
        admin.execute(f"GRANT SELECT ON {sales}.{view} TO {role}")
        admin.execute("RESET ROLE")
    reader = reader_for(monkeypatch, postgres_url, role, table=f"{sales}.{view}")
    [finding] = check_access(reader, [])
    assert finding.rule == "access.table"
    assert "permission denied for table orders" in finding.message
    # a view reads its tables as its owner: the grant goes to the owner, not the reader
    assert f"role {owner}, owner of view {sales}.{view}," in finding.message
    assert finding.fix == f"GRANT SELECT ON {sales}.orders TO {owner};"
    apply(postgres_url, finding)
    assert check_access(reader, []) == []
    assert reader.batches().read_all().num_rows == 1


def test_a_failed_connection_is_one_finding_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TW_ACCESS_DB_URL", "postgresql://ml_reader@127.0.0.1:1/prod")
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_ACCESS_DB_URL}", "table": "public.orders"}
    )
    [finding] = check_access(PostgresReader("orders", spec), COLUMNS)
    assert finding.rule == "access.connect"
    assert finding.blocks
    assert "connection refused" in finding.message
    assert "TW_ACCESS_DB_URL" in (finding.fix or "")


def test_a_missing_env_var_is_a_connect_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_ACCESS_UNSET", raising=False)
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_ACCESS_UNSET}", "table": "public.orders"}
    )
    [finding] = check_access(PostgresReader("orders", spec), COLUMNS)
    assert finding.rule == "access.connect"
    assert "TW_ACCESS_UNSET is not set" in finding.message


def test_a_malformed_table_name_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_ACCESS_DB_URL", "postgresql://ml_reader@127.0.0.1:1/prod")
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_ACCESS_DB_URL}", "table": "a.b.c"}
    )
    [finding] = check_access(PostgresReader("orders", spec), [])
    assert finding.rule == "access.table"
    assert "schema.table" in (finding.fix or "")
