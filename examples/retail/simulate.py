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
                                       [--trouble-from DATE [--drift COLUMN=FACTOR ...]
                                        [--format-break amount] [--concept-change]]
    python examples/retail/simulate.py --stream [--out DIR] [--rate 20] [--duration S]
                                       [--nats URL] [--subject retail.orders]
                                       [--stream-name RETAIL_ORDERS] [--backfill]

``--stream`` publishes orders to a NATS JetStream subject as they happen (the feed of
``examples/retail/taxiway-stream.yaml``), each a JSON object with the columns of
``orders.parquet`` and its ``order_id`` as ``Nats-Msg-Id``, so a repeat is stored once. With
``--backfill`` it first publishes every order of ``DIR/orders.parquet`` at full speed, with
its own times (the history the stream's model trains on; a redelivered order is dropped as a
duplicate). Then, ``--rate`` times a second, a new order: a past order's customer, product,
quantity and amount, placed now (``ordered_at`` = ``ingested_at`` = the moment it is sent),
numbered after the file's last order. It runs ``--duration`` seconds, or until Ctrl-C. The
live orders draw from their own generator (``seed`` and 18).

Trouble, for the monitoring demo and its tests: from ``--trouble-from`` on (rows whose event
time, ``ordered_at`` or ``started_at``, is on or after that date; every row before it is
exactly the row written without trouble):

* ``--drift COLUMN=FACTOR`` multiplies a column (``amount``, ``quantity`` or ``pages``):
  amounts are rounded to cents, counts to whole numbers and kept at 1 or more (``pages=0.3``:
  customers see a third of the pages, ``amount=3``: baskets triple); repeatable;
* ``--format-break amount``: the order feed starts writing amounts in cents (x100, whole
  numbers), as when a vendor changes its export format and nothing fails;
* ``--concept-change``: churn no longer follows activity. On the date, the customers of the
  day trade futures at random: each one's purchase rate and stop from then on are another
  one's, so a customer's past no longer tells their future (their segment neither). And where
  orders and browsing used to fade in the ~45 days before a customer stops (what the model
  learns), customers now stop abruptly, at full activity, and the same fade shows up instead
  as a dip two to six months earlier, from which they recover. The customers of the day keep
  the same rates, stops and fades between them, so orders, amounts and sessions per customer
  follow the same distribution: only the relation between recent activity and churning
  changes (the model's quality drops, its inputs do not drift).

Trouble draws from its own generator (``seed`` and 15), never from the main one.

Time advancing, for the retraining loop's demo (``examples/retail/loop.py``):
:func:`known_by` writes the extract a warehouse would hold at a moment: the orders ingested
before it, the sessions started before it, the customers signed up before it (and every
product). The loop simulates the whole history once, then moves the moment forward, so each
cycle's extract holds its predecessor's rows and the weeks since.

    python examples/retail/simulate.py --end 2026-06-30 --out FULL [trouble ...]
    python examples/retail/simulate.py --known-by 2025-09-01 --from FULL --out DIR

A slow online store is a serving fault, not data: the demo runs the service with
``TAXIWAY_FAULTS=online_store=slow taxiway serve ...`` (:mod:`taxiway.serving.faults`), where
every store read hangs until its deadline, so answers fall back and latency climbs to the
budget; the monitor sees the latency and fallback rates move while the inputs stay put.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "DIRTY_FRACTIONS",
    "DRIFTABLE",
    "Published",
    "Trouble",
    "known_by",
    "simulate",
    "stream_orders",
]

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
# Columns --drift can multiply: table, event-time column, whole numbers (kept >= 1)?
DRIFTABLE = {
    "amount": ("orders", "ordered_at", False),
    "quantity": ("orders", "ordered_at", True),
    "pages": ("sessions", "started_at", True),
}
FORMAT_BREAKS = {"amount": 100.0}  # column -> factor of the broken format (cents)
FADE_DAYS = 45.0  # activity fades over this many days before a customer stops
DIP_GAP_DAYS = (60.0, 180.0)  # --concept-change: the fade ends this long before the stop


@dataclass(frozen=True)
class Trouble:
    """What goes wrong from ``start`` on (see the module's docstring).

    >>> Trouble(date(2025, 10, 1), drift={"amount": 3.0}).active
    True
    >>> Trouble(date(2025, 10, 1)).active
    False
    """

    start: date
    drift: dict[str, float] = field(default_factory=dict)
    format_break: tuple[str, ...] = ()
    concept_change: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.drift) - set(DRIFTABLE))
        unknown += sorted(set(self.format_break) - set(FORMAT_BREAKS))
        if unknown:
            raise ValueError(
                f"cannot trouble {', '.join(unknown)}: --drift takes {', '.join(DRIFTABLE)}, "
                f"--format-break takes {', '.join(FORMAT_BREAKS)}"
            )
        bad = [f"{k}={v}" for k, v in self.drift.items() if not (v > 0 and np.isfinite(v))]
        if bad:
            raise ValueError(f"drift factors must be positive numbers, got {', '.join(bad)}")

    @property
    def active(self) -> bool:
        return bool(self.drift or self.format_break or self.concept_change)


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
    dip: tuple[float, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-homogeneous Poisson events per customer by thinning: (customer index, seconds).

    ``dip`` (--concept-change): from day ``dip[0]`` on, the fade ends at ``dip[1]`` (per
    customer) and activity recovers after it, instead of fading into ``churn``."""
    span = np.clip(end - begin, 0, None)
    top = daily.max()
    n = rng.poisson(rate * top * span)
    who = np.repeat(np.arange(rate.size), n)
    t = begin[who] + rng.random(who.size) * span[who]
    fade = np.clip((churn[who] - t) / FADE_DAYS, 0.1, 1.0)  # purchases fade before churning
    if dip is not None:
        late = t >= dip[0]
        left = dip[1][who[late]] - t[late]
        fade[late] = np.where(left >= 0, np.clip(left / FADE_DAYS, 0.1, 1.0), 1.0)
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
    trouble: Trouble | None = None,
) -> dict[str, int]:
    """Write customers, products, sessions and orders Parquet files; return rows per table.

    ``trouble``: what goes wrong from its date on (None or nothing active: the usual shop)."""
    days = (end - start).days + 1
    if days < 1 or customers < 1:
        raise ValueError(f"need end >= start and customers >= 1, got {start}..{end}, {customers}")
    tables = _tables(customers, seed, start, days, None)
    if trouble is not None and trouble.active:
        tables = _with_trouble(tables, trouble, customers, seed, start, days)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out_dir / f"{name}.parquet", compression="zstd")
    return {name: table.num_rows for name, table in tables.items()}


# The column that says when each table's row became known (None: every row, always).
KNOWN_AT = {
    "orders": "ingested_at",
    "sessions": "started_at",
    "customers": "signed_up_at",
    "products": None,
}


def known_by(full: Path, out_dir: Path, moment: datetime) -> dict[str, int]:
    """Write to ``out_dir`` the rows of ``full``'s tables known before ``moment`` (see
    :data:`KNOWN_AT`; naive UTC); return rows per table. The same inputs, the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cut = pa.scalar(moment.replace(tzinfo=None), pa.timestamp("us"))
    rows = {}
    for name, column in KNOWN_AT.items():
        table = pq.read_table(full / f"{name}.parquet")
        if column is not None:
            table = table.filter(pc.less(table[column], cut))
        scratch = out_dir / f".{name}.parquet"
        pq.write_table(table, scratch, compression="zstd")
        scratch.replace(out_dir / f"{name}.parquet")  # a reader sees one extract or the next
        rows[name] = table.num_rows
    return rows


def _tables(
    customers: int, seed: int, start: date, days: int, concept: float | None
) -> dict[str, pa.Table]:
    """The shop's tables; ``concept``: the day (since ``start``) a concept change begins."""
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
    dip = b_dip = None
    if concept is not None:  # from its own draws: the main generator's stream stays the same
        changes = np.random.default_rng([seed, 15])
        # the customers of the day trade futures (purchase rate and stop) among themselves
        alive = np.flatnonzero((signup < concept) & (churn > concept))
        traded = changes.permutation(alive)
        rate, churn = rate.copy(), churn.copy()
        rate[alive], churn[alive] = rate[traded], churn[traded]
        # the fade ends DIP_GAP_DAYS before the stop, and activity recovers after it
        gap = changes.uniform(*DIP_GAP_DAYS, customers)
        dip, b_dip = (concept, churn - gap), (concept, churn - gap + 20)
    stop = np.minimum(churn, days)
    who, at = _events(rng, rate, begin, stop, churn, daily, dip)
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
    b_stop = np.minimum(churn + 20, days)
    b_who, b_at = _events(rng, rate * 2.0, begin, b_stop, churn + 20, daily, b_dip)
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

    data = (customers_t, products_t, sessions_t, orders_t)
    return dict(zip(("customers", "products", "sessions", "orders"), data, strict=True))


def _with_trouble(
    tables: dict[str, pa.Table], trouble: Trouble, customers: int, seed: int, start: date, days: int
) -> dict[str, pa.Table]:
    """``tables`` with ``trouble`` from its date on; the rows before it are left as they are."""
    since = pa.scalar(datetime.combine(trouble.start, datetime.min.time()), pa.timestamp("us"))
    if trouble.concept_change:
        changed = _tables(customers, seed, start, days, float((trouble.start - start).days))
        for name, at, key, order in (
            ("orders", "ordered_at", "order_id", ("ingested_at", "order_id")),
            ("sessions", "started_at", "session_id", ("started_at", "customer_id")),
        ):
            tables[name] = _splice(tables[name], changed[name], at, key, since, order)
    for column, factor in trouble.drift.items():
        name, at, count = DRIFTABLE[column]
        tables[name] = _scaled(tables[name], column, at, since, factor, "count" if count else 2)
    for column in trouble.format_break:
        name, at, _ = DRIFTABLE[column]
        tables[name] = _scaled(tables[name], column, at, since, FORMAT_BREAKS[column], 0)
    return tables


def _splice(
    before: pa.Table, after: pa.Table, at: str, key: str, since: Any, order: tuple[str, str]
) -> pa.Table:
    """``before``'s rows whose ``at`` < ``since`` and ``after``'s from ``since`` on, the later
    ones' ``key`` renumbered to follow the earlier ones' (keys are ranks in time order)."""
    early = before.filter(pc.less(before[at], since))
    late = after.filter(pc.greater_equal(after[at], since))
    if late.num_rows:
        last = int(pc.max(early[key]).as_py()) if early.num_rows else 0
        offset = last + 1 - int(pc.min(late[key]).as_py())
        keys = pc.add(late[key], pa.scalar(offset, pa.int64()))
        late = late.set_column(late.schema.get_field_index(key), key, keys)
    both = pa.concat_tables([early, late])
    return both.sort_by([(name, "ascending") for name in order])


def _scaled(
    table: pa.Table, column: str, at: str, since: Any, factor: float, rounding: int | str
) -> pa.Table:
    """``table`` with ``column`` times ``factor`` on the rows from ``since`` on, rounded to
    ``rounding`` decimals, or (``"count"``) to whole numbers kept at 1 or more; nulls stay
    null."""
    values = table[column].to_numpy(zero_copy_only=False).astype(np.float64)
    late = pc.greater_equal(table[at], since).to_numpy(zero_copy_only=False)
    if rounding == "count":
        scaled = np.maximum(np.round(values * factor), 1.0)
    else:
        scaled = np.round(values * factor, int(rounding))
    new = np.where(late, scaled, values)
    kind = table.schema.field(column).type
    mask = table[column].is_null().to_numpy(zero_copy_only=False)
    array = pa.array(new.astype(np.int64) if pa.types.is_integer(kind) else new, kind, mask=mask)
    return table.set_column(table.schema.get_field_index(column), column, array)


@dataclass
class Published:
    """What :func:`stream_orders` sent: backfilled and live orders, and the live ones' send
    times (``order_id`` -> ``time.time()`` just before it was published)."""

    backfilled: int = 0
    live: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)


def _event(row: dict[str, Any]) -> bytes:
    """One order as the stream carries it: JSON, times in ISO 8601 with their zone (UTC)."""
    out = {
        k: (v.replace(tzinfo=UTC).isoformat() if isinstance(v, datetime) else v)
        for k, v in row.items()
    }
    return json.dumps(out).encode()


async def stream_orders(
    orders: Path,
    *,
    url: str = "nats://127.0.0.1:4222",
    subject: str = "retail.orders",
    stream: str = "RETAIL_ORDERS",
    rate: float = 20.0,
    duration: float | None = None,
    backfill: bool = False,
    seed: int = 7,
    stop: asyncio.Event | None = None,
) -> Published:
    """Publish the shop's orders to ``subject`` (the module's docstring, ``--stream``); the
    stream is created when missing. Needs nats-py (``pip install 'taxiway[stream]'``)."""
    import nats  # the stream extra: only this mode needs it
    import nats.js.errors

    if rate <= 0:
        raise ValueError(f"--rate must be above 0 orders a second, got {rate}")
    past = pq.read_table(orders)

    async def quiet(error: Exception) -> None:  # nats-py prints a traceback per attempt
        pass

    try:
        # nats-py retries a refused first connect forever: bound it
        client = await asyncio.wait_for(
            nats.connect(url, connect_timeout=5, allow_reconnect=False, error_cb=quiet), 6
        )
    except Exception as error:  # nats-py raises its own errors (NoServersError...) or OSError
        why = str(error) or type(error).__name__
        raise ConnectionError(f"cannot reach NATS at {url} ({why})") from error
    done = Published()
    try:
        js = client.jetstream()
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=stream, subjects=[subject])
        if backfill:
            for i, row in enumerate(past.to_pylist()):
                # core publish: JetStream stores it (and drops a repeated id) without a
                # round trip per order; the flushes bound what is in flight
                await client.publish(
                    subject, _event(row), headers={"Nats-Msg-Id": str(row["order_id"])}
                )
                if i % 5_000 == 4_999:
                    await client.flush(timeout=30)
            await client.flush(timeout=30)
            done.backfilled = past.num_rows
        clean = past.filter(
            pc.and_(pc.is_valid(past["customer_id"]), pc.greater(past["amount"], 0))
        )
        if clean.num_rows == 0:
            raise ValueError(f"{orders} holds no valid order to draw live orders from")
        draws = np.random.default_rng([seed, 18])
        columns = {
            c: clean[c].to_pylist() for c in ("customer_id", "product_id", "amount", "quantity")
        }
        next_id = int(pc.max(past["order_id"]).as_py()) + 1
        began = time.monotonic()
        while stop is None or not stop.is_set():
            due = began + done.live / rate
            if duration is not None and due - began >= duration:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pick = int(draws.integers(clean.num_rows))
            now = datetime.now(UTC).replace(tzinfo=None)
            order = {
                "order_id": next_id,
                **{c: values[pick] for c, values in columns.items()},
                "ordered_at": now,
                "ingested_at": now,
                "status": "placed",
            }
            done.sent_at[next_id] = time.time()
            await js.publish(subject, _event(order), headers={"Nats-Msg-Id": str(next_id)})
            done.live += 1
            next_id += 1
    finally:
        await client.close()
    return done


def _trouble(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Trouble | None:
    drift: dict[str, float] = {}
    for item in args.drift:
        column, _, factor = item.partition("=")
        try:
            drift[column.strip()] = float(factor)
        except ValueError:
            parser.error(f"--drift {item!r}: give COLUMN=FACTOR, e.g. amount=3")
    asked = bool(drift or args.format_break or args.concept_change)
    if args.trouble_from is None:
        if asked:
            parser.error("--drift, --format-break and --concept-change need --trouble-from DATE")
        return None
    try:
        return Trouble(args.trouble_from, drift, tuple(args.format_break), args.concept_change)
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    parser.add_argument(
        "--known-by",
        type=datetime.fromisoformat,
        help="write only the rows of --from's tables known before this moment (see known_by)",
    )
    parser.add_argument("--from", dest="full", type=Path, help="the full history (--known-by)")
    group = parser.add_argument_group("trouble (see the module's docstring)")
    group.add_argument(
        "--trouble-from", type=date.fromisoformat, help="the first day of the trouble below"
    )
    group.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="COLUMN=FACTOR",
        help=f"multiply a column ({', '.join(DRIFTABLE)}), e.g. amount=3 or pages=0.3",
    )
    group.add_argument(
        "--format-break",
        action="append",
        default=[],
        choices=sorted(FORMAT_BREAKS),
        help="the feed writes this column in another unit (amount: cents)",
    )
    group.add_argument(
        "--concept-change",
        action="store_true",
        help="churn stops following activity (inputs unchanged, labels change)",
    )
    live = parser.add_argument_group("streaming (--stream; see the module's docstring)")
    live.add_argument("--stream", action="store_true", help="publish orders to NATS")
    live.add_argument("--rate", type=float, default=20.0, help="new orders a second")
    live.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    live.add_argument("--nats", default="nats://127.0.0.1:4222", help="the NATS server")
    live.add_argument("--subject", default="retail.orders")
    live.add_argument("--stream-name", default="RETAIL_ORDERS", help="the JetStream stream")
    live.add_argument(
        "--backfill", action="store_true", help="first publish every order of DIR/orders.parquet"
    )
    args = parser.parse_args(argv)
    if args.stream:
        _stream(args, parser)
        return
    if args.known_by is not None:
        if args.full is None:
            parser.error("--known-by needs --from DIR, the full history simulate.py wrote")
        for name, count in known_by(args.full, args.out, args.known_by).items():
            print(f"{name:>10}: {count:>9,} rows known by {args.known_by}")
        return
    trouble = _trouble(args, parser)
    began = time.perf_counter()
    rows = simulate(args.out, args.customers, args.seed, args.start, args.end, trouble)
    for name, count in rows.items():
        size = (args.out / f"{name}.parquet").stat().st_size
        print(f"{name:>10}: {count:>9,} rows  {size / 1e6:6.2f} MB  {args.out / name}.parquet")
    print(f"done in {time.perf_counter() - began:.1f}s")


def _stream(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    orders = args.out / "orders.parquet"
    if not orders.exists():
        parser.error(f"--stream draws from {orders}: run simulate.py without --stream first")
    stop = asyncio.Event()

    async def run() -> Published:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(2, stop.set)  # SIGINT: finish the order in hand
        return await stream_orders(
            orders, url=args.nats, subject=args.subject, stream=args.stream_name,
            rate=args.rate, duration=args.duration, backfill=args.backfill, seed=args.seed,
            stop=stop,
        )  # fmt: skip

    print(f"publishing to {args.subject} ({args.stream_name}) at {args.nats}; Ctrl-C stops")
    try:
        done = asyncio.run(run())
    except ImportError:
        parser.error("--stream needs nats-py: pip install 'taxiway[stream]'")
    except (OSError, TimeoutError) as error:
        parser.error(f"{error}: start nats-server -js, or give --nats URL")
    print(f"published {done.backfilled:,} past orders and {done.live:,} live ones")


if __name__ == "__main__":
    main()
