"""Simulate an online shop: customers, products, browsing sessions and orders, as Parquet.

The data feeds ``examples/retail/taxiway.yaml`` (will a customer stop buying?). It is built to
look like a production extract, mess included, and to be learnable:

* customers sign up over time (a growing base), each with their own purchase rate (gamma
  distributed, tied to a segment: vip, regular, occasional) and a churn time after which they
  stop ordering; in the ~45 days before churning their purchase rate fades, so recent order
  counts and spend predict churn;
* orders follow a weekly cycle (weekend peak), a yearly one (summer dip, Nov/Dec peak with a
  Black Friday spike), an hour-of-day profile and an upward trend;
* orders reach the warehouse ``ingested_at`` minutes to about an hour after ``ordered_at``;
* a few deterministic dirty rows (well under 1%): null customer_id, null amount, negative
  amounts, order ids delivered twice, late arrivals (ingested days later), malformed emails.

Same arguments, same bytes: everything comes from one ``numpy.random.Generator(seed)``.

    python examples/retail/simulate.py [--out DIR] [--customers N] [--seed S]
                                       [--start 2024-01-01] [--end 2025-12-31]
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DIRTY_FRACTIONS", "simulate"]

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DAY = 86_400  # seconds
SEGMENTS = np.array(["occasional", "regular", "vip"])
COUNTRIES = np.array(["DE", "FR", "NL", "ES", "IT", "BE", "AT", "PL"])
COUNTRY_P = np.array([0.30, 0.20, 0.12, 0.12, 0.10, 0.06, 0.05, 0.05])
DEVICES = np.array(["mobile", "desktop", "tablet"])
CATEGORIES = np.array(["electronics", "home", "fashion", "beauty", "sports", "books", "toys"])
CATEGORY_PRICE = np.array([180.0, 45.0, 40.0, 18.0, 35.0, 14.0, 25.0])  # median price per category
FIRST = np.array(["anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jan"])
LAST = np.array(["muller", "martin", "jansen", "garcia", "rossi", "peeters", "novak", "weber"])
DOMAINS = np.array(["example.com", "mail.example.org", "shop.example.net"])
BAD_EMAILS = ["anna.muller@", "ben at example.com", "chloe@@example.com", "david.example.com"]
WEEKDAY = np.array([0.90, 0.92, 0.95, 1.00, 1.05, 1.25, 1.18])  # Monday .. Sunday
HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 9, 8, 7, 7, 8, 9, 11, 12, 12, 10, 6, 3.0])
# Share of order rows made dirty, per kind (at least 2 of each kind given 40+ orders).
DIRTY_FRACTIONS = {
    "null_customer": 0.0002,
    "null_amount": 0.0003,
    "negative_amount": 0.0002,
    "duplicate": 0.0005,
    "late": 0.0010,
}


def _seasonality(start: date, days: int) -> np.ndarray:
    """Relative order intensity of each day: weekday x yearly season x trend."""
    d = np.arange(days)
    dates = np.array([start + timedelta(days=int(i)) for i in d])
    doy = np.array([x.timetuple().tm_yday for x in dates], dtype=float)
    weekday = WEEKDAY[[x.weekday() for x in dates]]
    black_friday = np.array(
        [x.month == 11 and x.weekday() == 4 and 23 <= x.day <= 29 for x in dates]
    )
    yearly = (
        1.0
        + 0.9 * np.exp(-(((doy - 345) / 22) ** 2))  # December shopping
        + 0.5 * np.exp(-(((doy - 325) / 12) ** 2))  # late November
        + 1.5 * black_friday
        - 0.2 * np.exp(-(((doy - 205) / 30) ** 2))  # summer dip
    )
    trend = 1.0 + 0.2 * d / 365.0
    return weekday * yearly * trend


def _events(
    rng: np.random.Generator,
    rate: np.ndarray,  # events per day per customer at intensity 1
    begin: np.ndarray,  # active interval [begin, end) in days since start
    end: np.ndarray,
    churn: np.ndarray,
    daily: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-homogeneous Poisson events per customer by thinning: (customer index, seconds)."""
    span = np.clip(end - begin, 0, None)
    top = daily.max()
    n = rng.poisson(rate * top * span)
    who = np.repeat(np.arange(rate.size), n)
    t = begin[who] + rng.random(who.size) * span[who]
    fade = np.clip((churn[who] - t) / 45.0, 0.1, 1.0)  # purchases fade before churning
    keep = rng.random(who.size) < daily[t.astype(np.int64)] * fade / top
    who, day = who[keep], t[keep].astype(np.int64)
    hour = rng.choice(24, size=who.size, p=HOURS / HOURS.sum())
    seconds = day * DAY + hour * 3600 + rng.integers(0, 3600, size=who.size)
    order = np.lexsort((who, seconds))
    return who[order], seconds[order]


def _i64(values: np.ndarray) -> pa.Array[Any]:
    return pa.array(values.astype(np.int64), pa.int64())


def _ts(epoch: datetime, seconds: np.ndarray) -> pa.Array[Any]:
    base = int((epoch - datetime(1970, 1, 1)).total_seconds())
    return pa.array((seconds.astype(np.int64) + base) * 1_000_000, type=pa.timestamp("us"))


def simulate(
    out_dir: Path = DEFAULT_OUT,
    customers: int = 5_000,
    seed: int = 7,
    start: date = date(2024, 1, 1),
    end: date = date(2025, 12, 31),
) -> dict[str, int]:
    """Write customers, products, sessions and orders Parquet files; return rows per table."""
    days = (end - start).days + 1
    if days < 1 or customers < 1:
        raise ValueError(f"need end >= start and customers >= 1, got {start}..{end}, {customers}")
    rng = np.random.default_rng(seed)
    epoch = datetime(start.year, start.month, start.day)
    daily = _seasonality(start, days)

    # Customers: 40% existed before `start`, the rest sign up at a growing pace.
    old = rng.random(customers) < 0.4
    signup = np.where(old, -rng.random(customers) * 365, rng.random(customers) ** 0.8 * days)
    rate = rng.gamma(1.3, 1 / 1.3, customers) * 0.055  # orders per day, mean ~1.7/month
    segment = np.digitize(rate, [0.035, 0.11])
    lifetime = rng.exponential(np.array([260.0, 520.0, 900.0])[segment])
    churn = signup + 14 + lifetime
    cust_ids = np.arange(100_001, 100_001 + customers, dtype=np.int64)
    names = rng.integers(0, [FIRST.size, LAST.size, DOMAINS.size], size=(customers, 3))
    emails = [
        f"{FIRST[a]}.{LAST[b]}{i % 1000}@{DOMAINS[c]}"
        for i, (a, b, c) in zip(cust_ids, names, strict=True)
    ]
    for k, i in enumerate(
        rng.choice(customers, size=min(len(BAD_EMAILS), customers), replace=False)
    ):
        emails[i] = BAD_EMAILS[k]
    signup_s = np.floor(signup * DAY).astype(np.int64)
    customers_t = pa.table(
        {
            "customer_id": _i64(cust_ids),
            "email": pa.array(emails, pa.string()),
            "country": pa.array(rng.choice(COUNTRIES, size=customers, p=COUNTRY_P), pa.string()),
            "segment": pa.array(SEGMENTS[segment], pa.string()),
            "signed_up_at": _ts(epoch, signup_s),
        }
    )

    # Products: a long tail of popularity, prices log-normal around each category's median.
    n_products = 300
    category = rng.integers(0, CATEGORIES.size, n_products)
    price = np.round(CATEGORY_PRICE[category] * rng.lognormal(0, 0.5, n_products), 2) + 0.99
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.9
    products_t = pa.table(
        {
            "product_id": _i64(np.arange(1, n_products + 1)),
            "category": pa.array(CATEGORIES[category], pa.string()),
            "price": pa.array(price, pa.float64()),
        }
    )

    # Orders.
    begin = np.clip(signup, 0, None)
    stop = np.minimum(churn, days)
    who, at = _events(rng, rate, begin, stop, churn, daily)
    n = who.size
    product = rng.choice(n_products, size=n, p=popularity / popularity.sum())
    quantity = 1 + rng.poisson(0.25, n)
    amount = np.round(
        price[product] * quantity * rng.choice([1.0, 0.9, 0.8], n, p=[0.8, 0.15, 0.05]), 2
    )
    lag = np.minimum(rng.exponential(600, n), 3500).astype(np.int64) + 30  # ~10 min, < 1h
    age = days * DAY - at
    status = np.where(
        age < 3 * DAY, "placed", np.where(rng.random(n) < 0.06, "returned", "shipped")
    )
    # Dirty rows, on disjoint random rows.
    counts = {k: min(n // 20, max(2, round(f * n))) for k, f in DIRTY_FRACTIONS.items()}
    picks = rng.choice(n, size=sum(counts.values()), replace=False)
    cuts = np.cumsum(list(counts.values()))[:-1]
    dirty = dict(zip(counts, np.split(picks, cuts), strict=True))
    no_customer, no_amount = np.zeros(n, bool), np.zeros(n, bool)
    no_customer[dirty["null_customer"]] = True
    no_amount[dirty["null_amount"]] = True
    amount[dirty["negative_amount"]] *= -1
    lag[dirty["late"]] = rng.integers(DAY, 10 * DAY, size=counts["late"])
    # A re-delivered order is an exact copy of the row, ingested again a little later.
    rows = np.concatenate([np.arange(n), np.sort(dirty["duplicate"])])
    again = np.concatenate([np.zeros(n, np.int64), rng.integers(60, 6 * 3600, counts["duplicate"])])
    ingested = at[rows] + lag[rows] + again
    arrival = np.lexsort((rows, ingested))  # files hold rows in the order they arrived
    rows, ingested = rows[arrival], ingested[arrival]
    orders_t = pa.table(
        {
            "order_id": _i64(rows + 1),
            "customer_id": pa.array(cust_ids[who[rows]], mask=no_customer[rows]),
            "product_id": _i64(product[rows] + 1),
            "ordered_at": _ts(epoch, at[rows]),
            "ingested_at": _ts(epoch, ingested),
            "amount": pa.array(amount[rows], mask=no_amount[rows]),
            "quantity": _i64(quantity[rows]),
            "status": pa.array(status[rows], pa.string()),
        }
    )

    # Sessions: one just before each order, plus browsing that also stops at churn.
    b_who, b_at = _events(rng, rate * 2.0, begin, np.minimum(churn + 20, days), churn + 20, daily)
    s_who = np.concatenate([who, b_who])
    s_at = np.concatenate([np.maximum(at - rng.integers(60, 1800, n), 0), b_at])
    pages = np.concatenate([3 + rng.poisson(5, n), 1 + rng.poisson(2.5, b_who.size)])
    order = np.lexsort((s_who, s_at))
    sessions_t = pa.table(
        {
            "session_id": _i64(np.arange(1, s_who.size + 1)),
            "customer_id": _i64(cust_ids[s_who[order]]),
            "started_at": _ts(epoch, s_at[order]),
            "device": pa.array(
                rng.choice(DEVICES, size=s_who.size, p=[0.62, 0.3, 0.08]), pa.string()
            ),
            "pages": _i64(pages[order]),
        }
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    data = (customers_t, products_t, sessions_t, orders_t)
    tables = dict(zip(("customers", "products", "sessions", "orders"), data, strict=True))
    for name, table in tables.items():
        pq.write_table(table, out_dir / f"{name}.parquet", compression="zstd")
    return {name: table.num_rows for name, table in tables.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows = simulate(args.out, args.customers, args.seed, args.start, args.end)
    for name, count in rows.items():
        size = (args.out / f"{name}.parquet").stat().st_size
        print(f"{name:>10}: {count:>9,} rows  {size / 1e6:6.2f} MB  {args.out / name}.parquet")
    print(f"done in {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
