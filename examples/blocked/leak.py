"""Write the leaking table of the blocked example: each customer's account status as exported.

A CRM closes an account 60 days after the customer's last order and re-opens it at the next
one. What reaches the warehouse is a nightly export of the *current* status, one row per
customer, so every row describes the end of the data:

* ``status`` is ``closed`` for a customer with no order in the last 60 days of the data (the
  very outcome the churn model predicts), ``active`` otherwise;
* ``updated_at`` is when the CRM last set it: the last order, or 60 days after it once closed.

Used as a feature without its ``updated_at``, a training row from March 2024 sees the status of
December 2025: the answer, written after the prediction. ``taxiway sprint`` must block on it.

Reads ``orders.parquet`` and ``customers.parquet`` written by ``examples/retail/simulate.py``;
writes ``account_status.parquet``. Same input, same bytes; it takes well under a second.

    python examples/blocked/leak.py [--retail-data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

__all__ = ["CLOSED_AFTER_DAYS", "write_account_status"]

HERE = Path(__file__).resolve().parent
DEFAULT_RETAIL_DATA = HERE.parent / "retail" / "data"
DEFAULT_OUT = HERE / "data"
CLOSED_AFTER_DAYS = 60


def write_account_status(retail_data: Path, out_dir: Path) -> int:
    """Write ``out_dir/account_status.parquet`` from the retail data; return its row count."""
    orders, customers = retail_data / "orders.parquet", retail_data / "customers.parquet"
    missing = [str(p) for p in (orders, customers) if not p.is_file()]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} not found: run `python examples/retail/simulate.py` first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "account_status.parquet"
    quoted_target = "'" + str(target).replace("'", "''") + "'"
    con = duckdb.connect()
    try:
        con.execute(
            f"""
            COPY (
              WITH last_order AS (
                SELECT customer_id, max(ordered_at) AS at
                FROM read_parquet(?) WHERE customer_id IS NOT NULL GROUP BY customer_id),
              export AS (SELECT max(ordered_at) AS at FROM read_parquet(?)),
              activity AS (
                SELECT c.customer_id, coalesce(o.at, c.signed_up_at) AS last_active
                FROM read_parquet(?) c LEFT JOIN last_order o USING (customer_id))
              SELECT a.customer_id,
                     CASE WHEN a.last_active < e.at - INTERVAL {CLOSED_AFTER_DAYS} DAY
                          THEN 'closed' ELSE 'active' END AS status,
                     CASE WHEN a.last_active < e.at - INTERVAL {CLOSED_AFTER_DAYS} DAY
                          THEN a.last_active + INTERVAL {CLOSED_AFTER_DAYS} DAY
                          ELSE a.last_active END AS updated_at
              FROM activity a CROSS JOIN export e
              ORDER BY a.customer_id
            ) TO {quoted_target} (FORMAT parquet, COMPRESSION zstd)
            """,
            [str(orders), str(orders), str(customers)],
        )
        row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--retail-data", type=Path, default=DEFAULT_RETAIL_DATA, help="the simulator's output"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    rows = write_account_status(args.retail_data, args.out)
    print(f"account_status: {rows:,} rows  {args.out / 'account_status.parquet'}")


if __name__ == "__main__":
    main()
