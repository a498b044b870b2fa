"""The PostgreSQL reader: real rows and types out of a real server, and failures that say what to do."""

from __future__ import annotations

import gc
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from taxiway.data.sources import open_source
from taxiway.data.sources._pg_errors import Endpoint, connect_error, denied_object, scrub
from taxiway.data.sources.base import Source
from taxiway.data.sources.postgres import PostgresReader, split_table
from taxiway.engines.duckdb import connect
from taxiway.errors import SourceError
from taxiway.spec.models import PostgresSource

pytestmark = pytest.mark.postgres

SCHEMA = "tw_read"
ORDERS = 1000


def with_user(url: str, user: str) -> str:
    """``url`` connecting as ``user`` instead of postgres."""
    return url.replace("postgres@", f"{user}@", 1)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    return url.rsplit("/", 1)[0] + "/" + database


def make_reader(
    monkeypatch: pytest.MonkeyPatch, url: str, name: str = "orders", **fields: Any
) -> PostgresReader:
    """A reader whose URL comes, as in production, from an environment variable."""
    monkeypatch.setenv("TW_ORDERS_DB_URL", url)
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_ORDERS_DB_URL}", **fields}
    )
    return PostgresReader(name, spec)


@pytest.fixture(scope="module")
def db(postgres_url: str) -> Iterator[str]:
    """The session database holding ``tw_read.orders`` (1000 rows of every common type)."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        admin.execute(f"CREATE SCHEMA {SCHEMA}")
        admin.execute(
            f"""CREATE TABLE {SCHEMA}.orders (
                order_id bigint PRIMARY KEY, customer_id integer, qty smallint,
                amount numeric(12, 2), ratio numeric, price double precision, weight real,
                status text, code varchar(8), paid boolean, ordered_on date,
                ordered_at timestamptz, local_at timestamp)"""
        )
        admin.execute(
            f"""INSERT INTO {SCHEMA}.orders
            SELECT g, g % 37, (g % 5)::smallint, g * 1.25, g / 8.0, g * 0.5, g * 0.25,
                   CASE WHEN g % 2 = 0 THEN 'placed' ELSE 'shipped' END, 'C' || g % 100,
                   g % 3 = 0, DATE '2025-01-01' + g % 365,
                   TIMESTAMPTZ '2025-01-01 00:00:00+00' + g * INTERVAL '1 hour',
                   TIMESTAMP '2025-01-01 00:00:00' + g * INTERVAL '1 minute'
            FROM generate_series(1, {ORDERS}) g"""
        )
        yield postgres_url
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@pytest.fixture
def orders(db: str, monkeypatch: pytest.MonkeyPatch) -> PostgresReader:
    return make_reader(monkeypatch, db, table=f"{SCHEMA}.orders")


def test_the_reader_is_a_source_and_open_source_builds_it(orders: PostgresReader) -> None:
    source = open_source("orders", orders.spec)
    assert isinstance(source, PostgresReader)
    assert isinstance(source, Source)


def test_describe_names_host_database_and_table_but_no_secret(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_DB_PASSWORD", "s3cret-pw")
    url = db.replace("postgres@", "postgres:${TW_DB_PASSWORD}@")
    spec = PostgresSource.model_validate({"kind": "postgres", "url": url, "table": "public.t"})
    text = PostgresReader("orders", spec).describe()
    assert text == f"postgres 127.0.0.1/{db.rsplit('/', 1)[1]} (table public.t)"
    assert "s3cret" not in text


def test_describe_works_without_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_UNSET_URL", raising=False)
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_UNSET_URL}", "query": "SELECT 1"}
    )
    assert PostgresReader("x", spec).describe() == "postgres ${TW_UNSET_URL} (query)"


def test_schema_maps_postgres_types_to_sensible_arrow_types(orders: PostgresReader) -> None:
    schema = orders.schema()
    assert dict(zip(schema.names, schema.types, strict=True)) == {
        "order_id": pa.int64(),
        "customer_id": pa.int32(),
        "qty": pa.int16(),
        "amount": pa.decimal128(12, 2),
        "ratio": pa.float64(),  # unconstrained numeric has no fixed scale
        "price": pa.float64(),
        "weight": pa.float32(),
        "status": pa.string(),
        "code": pa.string(),
        "paid": pa.bool_(),
        "ordered_on": pa.date32(),
        "ordered_at": pa.timestamp("us", tz="UTC"),
        "local_at": pa.timestamp("us"),
    }
    assert all(field.metadata is None for field in schema)


def test_batches_returns_every_row_with_its_values(orders: PostgresReader) -> None:
    table = orders.batches().read_all()
    assert table.num_rows == ORDERS
    assert table.schema.equals(orders.schema())
    first = table.sort_by("order_id").slice(0, 1).to_pylist()[0]
    assert first == {
        "order_id": 1,
        "customer_id": 1,
        "qty": 1,
        "amount": Decimal("1.25"),
        "ratio": 0.125,
        "price": 0.5,
        "weight": 0.25,
        "status": "shipped",
        "code": "C1",
        "paid": False,
        "ordered_on": date(2025, 1, 2),
        "ordered_at": datetime(2025, 1, 1, 1, tzinfo=UTC),
        "local_at": datetime(2025, 1, 1, 0, 1),
    }


def test_batches_stream_in_batches_of_batch_rows(orders: PostgresReader) -> None:
    sizes = [batch.num_rows for batch in orders.batches(batch_rows=64)]
    assert sizes == [64] * 15 + [40]


def test_the_spec_batch_rows_is_the_default(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(monkeypatch, db, table=f"{SCHEMA}.orders", batch_rows=300)
    assert [b.num_rows for b in reader.batches()] == [300, 300, 300, 100]


def test_batches_regroup_rows_across_driver_batches(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~16 MB per driver batch: 300k wide rows arrive in several pieces of uneven size
    query = "SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS pad FROM generate_series(1, 300000) g"
    reader = make_reader(monkeypatch, db, query=query)
    batches = list(reader.batches(batch_rows=70_000))
    assert [b.num_rows for b in batches] == [70_000] * 4 + [20_000]
    ids = pa.Table.from_batches(batches).column("id").to_pylist()
    assert ids == list(range(1, 300_001))


def test_batches_read_only_the_columns_asked_for(orders: PostgresReader) -> None:
    table = orders.batches(columns=["order_id", "amount"]).read_all()
    assert table.column_names == ["order_id", "amount"]
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    assert table.num_rows == ORDERS


def test_an_unknown_column_is_a_clear_error(orders: PostgresReader) -> None:
    with pytest.raises(SourceError, match=r'column "amout" does not exist') as caught:
        orders.batches(columns=["amout"])
    assert caught.value.fix is not None


def test_register_stages_parquet_and_duckdb_queries_it(
    orders: PostgresReader, tmp_path: Path
) -> None:
    con = connect()
    orders.register(con, "orders", tmp_path)
    staged = list((tmp_path / "orders").iterdir())
    assert len(staged) == 1
    assert staged[0].suffix == ".parquet"
    [(count, total, shipped)] = con.sql(
        "SELECT count(*), sum(amount), count(*) FILTER (status = 'shipped') FROM orders"
    ).fetchall()
    assert count == ORDERS
    assert total == Decimal("1.25") * sum(range(1, ORDERS + 1))
    assert shipped == ORDERS // 2
    types = {row[0]: row[1] for row in con.sql("DESCRIBE orders").fetchall()}
    assert types["amount"] == "DECIMAL(12,2)"
    assert types["ordered_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["ordered_on"] == "DATE"
    assert types["paid"] == "BOOLEAN"
    # a view over the file: it can be scanned again and again
    assert con.sql("SELECT count(*) FROM orders").fetchall() == [(ORDERS,)]


def test_a_query_source_reads_its_result(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(
        monkeypatch,
        db,
        query=f"SELECT order_id, amount FROM {SCHEMA}.orders WHERE order_id <= 10;",
    )
    table = reader.batches().read_all()
    assert table.num_rows == 10
    assert reader.schema().names == ["order_id", "amount"]
    assert reader.describe().endswith("(query)")


def test_unqualified_and_quoted_table_names(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS public.tw_plain (id int)")
        admin.execute("INSERT INTO public.tw_plain VALUES (1), (2)")
        admin.execute('CREATE SCHEMA IF NOT EXISTS "Odd.Schema"')
        admin.execute('CREATE TABLE IF NOT EXISTS "Odd.Schema"."Order Lines" ("Line Id" int)')
        admin.execute('INSERT INTO "Odd.Schema"."Order Lines" VALUES (7)')
    plain = make_reader(monkeypatch, db, table="tw_plain")
    assert plain.batches().read_all().num_rows == 2
    odd = make_reader(monkeypatch, db, table='"Odd.Schema"."Order Lines"')
    assert odd.batches().read_all().to_pylist() == [{"Line Id": 7}]


def test_split_table() -> None:
    assert split_table("sales.orders") == ("sales", "orders")
    assert split_table('"my ""x"""') == (None, 'my "x"')
    for bad in ("a.b.c", "a.", ".b", '"a"b'):
        with pytest.raises(ValueError, match=r"schema\.table"):
            split_table(bad)


def test_odd_types_come_through(db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    query = """
        SELECT 1 AS id, 'infinity'::timestamptz AS valid_to, '-infinity'::date AS since,
               '1 mon 2 days 00:00:03.5'::interval AS every, '10.0.0.1'::inet AS ip,
               ARRAY[1.5, 2.5]::numeric[] AS prices, 'NaN'::numeric AS ratio,
               1230::numeric(3, -1) AS rounded, 0.001::numeric(3, 5) AS tiny,
               12345678901234567890123456789012345678901234567.5::numeric(50, 1) AS huge,
               gen_random_uuid() AS uid, '{"a": 1}'::jsonb AS doc
    """
    reader = make_reader(monkeypatch, db, query=query)
    schema = reader.schema()
    assert schema.field("valid_to").type == pa.timestamp("us", tz="UTC")
    assert schema.field("every").type == pa.month_day_nano_interval()
    assert schema.field("ip").type == pa.string()
    assert schema.field("prices").type == pa.list_(pa.float64())
    assert schema.field("rounded").type == pa.decimal128(4, 0)
    assert schema.field("tiny").type == pa.decimal128(5, 5)
    assert schema.field("huge").type == pa.decimal256(50, 1)
    table = reader.batches().read_all()
    row = table.drop_columns(["valid_to", "since", "uid", "doc"]).to_pylist()[0]
    assert row["ip"] == "10.0.0.1/32"  # PostgreSQL's own inet::text
    assert row["prices"] == [1.5, 2.5]
    assert row["ratio"] != row["ratio"]  # NaN survives as a float NaN
    assert row["rounded"] == Decimal("1230")
    assert row["tiny"] == Decimal("0.00100")
    assert row["huge"] == Decimal("12345678901234567890123456789012345678901234567.5")
    con = connect()
    reader.register(con, "odd", tmp_path)
    assert con.sql(
        "SELECT valid_to::VARCHAR, since::VARCHAR, every::VARCHAR, ip FROM odd"
    ).fetchall() == [("infinity", "-infinity", "1 month 2 days 00:00:03.5", "10.0.0.1/32")]


def test_nan_in_a_decimal_column_is_a_clear_error(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(monkeypatch, db, query="SELECT 'NaN'::numeric(5, 2) AS amount")
    with pytest.raises(SourceError, match="column amount of the query holds NaN") as caught:
        reader.batches().read_all()
    assert "NULLIF" in (caught.value.fix or "")


def test_an_error_midway_through_the_stream_is_a_source_error(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "SELECT 1 / (250000 - g) AS x FROM generate_series(1, 300000) g"
    reader = make_reader(monkeypatch, db, query=query)
    with pytest.raises(SourceError, match="division by zero"):
        reader.batches(batch_rows=1000).read_all()


def _taxiway_sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'taxiway' AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_dropped_stream_closes_its_connection(orders: PostgresReader, db: str) -> None:
    before = _taxiway_sessions(db)
    untouched = orders.batches()
    half_read = orders.batches(batch_rows=10)
    half_read.read_next_batch()
    assert _taxiway_sessions(db) == before + 2
    del untouched, half_read
    gc.collect()
    assert _taxiway_sessions(db) == before


def test_a_bad_table_name_says_so_and_suggests_the_near_one(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = make_reader(monkeypatch, db, table=f"{SCHEMA}.ordres")
    with pytest.raises(SourceError, match=r"table tw_read\.ordres does not exist") as caught:
        reader.schema()
    assert f"{SCHEMA}.orders" in (caught.value.fix or "")


def test_a_closed_port_is_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(monkeypatch, "postgresql://postgres@127.0.0.1:1/db", table="t")
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:1: connection refused") as caught:
        reader.batches()
    assert caught.value.fix is not None
    assert "start the PostgreSQL server" in caught.value.fix
    assert "TW_ORDERS_DB_URL" in caught.value.fix
    assert "Traceback" not in str(caught.value)


def test_an_unknown_database_names_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_DB_PASSWORD", "s3cret-pw")
    url = with_database(db, "tw_no_such_db").replace("postgres@", "postgres:${TW_DB_PASSWORD}@")
    spec = PostgresSource.model_validate({"kind": "postgres", "url": url, "table": "t"})
    with pytest.raises(SourceError, match="database tw_no_such_db does not exist") as caught:
        PostgresReader("orders", spec).schema()
    assert "CREATE DATABASE tw_no_such_db;" in (caught.value.fix or "")
    assert "TW_DB_PASSWORD" in (caught.value.fix or "")
    assert "s3cret" not in str(caught.value)


def test_an_unknown_role_names_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(monkeypatch, with_user(db, "tw_nobody"), table="t")
    with pytest.raises(SourceError, match="role tw_nobody does not exist") as caught:
        reader.schema()
    assert "CREATE ROLE tw_nobody LOGIN;" in (caught.value.fix or "")


def test_a_missing_env_var_is_a_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_UNSET_URL", raising=False)
    spec = PostgresSource.model_validate(
        {"kind": "postgres", "url": "${TW_UNSET_URL}", "table": "t"}
    )
    with pytest.raises(SourceError, match="TW_UNSET_URL is not set") as caught:
        PostgresReader("orders", spec).batches()
    assert caught.value.message.startswith("source `orders`")
    assert "export TW_UNSET_URL=" in (caught.value.fix or "")


def test_a_url_that_is_not_postgres_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = make_reader(monkeypatch, "mysql://reader@db/prod", table="t")
    with pytest.raises(SourceError, match="does not hold a PostgreSQL connection URL"):
        reader.schema()


def test_a_silent_server_times_out_after_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:  # accepts TCP but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        reader = make_reader(
            monkeypatch,
            f"postgresql://postgres@127.0.0.1:{port}/db",
            table="t",
            connect_timeout_s=1,
        )
        with pytest.raises(SourceError, match=rf"127.0.0.1:{port}: no answer within 2 s") as caught:
            reader.schema()
    assert "connect_timeout_s" in (caught.value.fix or "")


@pytest.fixture
def reader_role(db: str) -> Iterator[str]:
    """A login role with no privileges on tw_read, dropped afterwards."""
    role = f"tw_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        yield role
    finally:
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_permission_denied_gives_the_grant_that_fixes_it(
    db: str, reader_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = make_reader(monkeypatch, with_user(db, reader_role), table=f"{SCHEMA}.orders")
    with pytest.raises(SourceError, match=f"role {reader_role} may not read schema") as caught:
        reader.schema()
    assert caught.value.fix == f"GRANT USAGE ON SCHEMA {SCHEMA} TO {reader_role};"
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(caught.value.fix)
    with pytest.raises(SourceError, match=f"may not read table {SCHEMA}.orders") as caught:
        reader.schema()
    assert caught.value.fix == f"GRANT SELECT ON {SCHEMA}.orders TO {reader_role};"
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(caught.value.fix)
    assert reader.batches().read_all().num_rows == ORDERS


# ---------------------------------------------------------------- messages without a server

POINT = Endpoint(host="db.internal", port="5432", database="prod", user="ml_reader")


@pytest.mark.parametrize(
    ("libpq", "message", "fix"),
    [
        (
            'connection to server at "db.internal" (10.0.0.5), port 5432 failed: FATAL:  '
            'password authentication failed for user "ml_reader"',
            "rejected the login of role ml_reader",
            "check the user name and password in the environment variable ORDERS_DB_URL",
        ),
        (
            'connection to server at "db.internal", port 5432 failed: FATAL:  no pg_hba.conf '
            'entry for host "10.0.0.9", user "ml_reader", database "prod", no encryption',
            "does not accept this host",
            "pg_hba.conf",
        ),
        (
            'connection to server at "db.internal", port 5432 failed: FATAL:  permission denied '
            'for database "prod"\nDETAIL:  User does not have CONNECT privilege.',
            "may not connect to database prod",
            "GRANT CONNECT ON DATABASE prod TO ml_reader;",
        ),
        (
            'connection to server at "db.internal", port 5432 failed: FATAL:  role "ml_reader" '
            "is not permitted to log in",
            "may not log in",
            "ALTER ROLE ml_reader LOGIN;",
        ),
        (
            'could not translate host name "db.internal" to address: Name or service not known',
            "the host name db.internal does not resolve",
            "check the host name",
        ),
        (
            "connection failed: FATAL:  sorry, too many clients already",
            "no free connection slots",
            "max_connections",
        ),
    ],
)
def test_connection_failures_are_explained(libpq: str, message: str, fix: str) -> None:
    error = connect_error(
        libpq, source="orders", endpoint=POINT, names=["ORDERS_DB_URL"], timeout_s=10
    )
    assert message in error.message
    assert error.message.startswith(
        "source `orders`: cannot connect to PostgreSQL at db.internal:5432"
    )
    assert fix in (error.fix or "")


def test_scrub_hides_passwords() -> None:
    assert scrub("bad: postgresql://u:pw@h/db and password=pw2 x") == (
        "bad: postgresql://u:***@h/db and password=*** x"
    )


def test_denied_object_reads_the_kind_and_name() -> None:
    assert denied_object("permission denied for schema sales") == ("schema", "sales")
    assert denied_object("permission denied for materialized view mv") == (
        "materialized view",
        "mv",
    )


def test_a_denial_through_a_view_names_the_views_owner(
    db: str, reader_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = f"tw_owner_{uuid.uuid4().hex[:8]}"
    view = f"{SCHEMA}.view_{owner}"
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner}")
        admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {owner}")
        admin.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {reader_role}")
        admin.execute(f"SET ROLE {owner}")
        admin.execute(f"CREATE VIEW {view} AS SELECT order_id FROM {SCHEMA}.orders")
        admin.execute(f"GRANT SELECT ON {view} TO {reader_role}")
        admin.execute("RESET ROLE")
    try:
        reader = make_reader(monkeypatch, with_user(db, reader_role), table=view)
        with pytest.raises(SourceError, match=f"role {owner}, owner of view {view},") as caught:
            reader.schema()
        assert caught.value.fix == f"GRANT SELECT ON {SCHEMA}.orders TO {owner};"
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(caught.value.fix)
        assert reader.batches().read_all().num_rows == ORDERS
    finally:
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {owner}")
            admin.execute(f"DROP ROLE {owner}")
