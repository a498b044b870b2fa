"""Simulate a shop's product views, carts and purchases with taste structure, as Parquet.

The data feeds ``examples/shop-recs/taxiway.yaml`` (which products to show each customer). It
is built so that a recommender has something real to learn, and so that how well one can
possibly do is known:

* **products** belong to one of 20 categories, with a log-normal price around the category's
  median, a popularity prior (Zipf-like: the r-th most popular is chosen ~1/r^0.9 as often)
  and a latent taste vector (their category's direction plus an item-specific part);
* **customers** have a taste vector, a mixture over one to three categories plus a personal
  part, that drifts slowly towards one more category over the period (so recent behaviour
  says more than old), an activity level (log-normal: a few customers do most of the
  browsing) and a first day (80% are there from the start, the rest arrive over the period);
* **each choice** (a customer looks at a product) picks product i with probability
  proportional to ``exp(taste_u(t) . taste_i / T) * popularity_i ** BETA``, over the products
  AVAILABLE at that moment (launched, in stock, not recalled), mixed with a share of pure
  popularity (``NOISE``: the customer follows the crowd). A product the customer has already
  bought is chosen ``REPEAT`` (5%) as often as otherwise: repeat purchases are rare, so
  filtering what was bought is right. A choice is a ``view``; some go on to ``cart`` and some
  of those to ``purchase`` (with a quantity), minutes later, while still in stock;
* **the catalog changes**: products run out of stock for days to weeks, a few are
  discontinued, a few are launched mid-period (with a higher prior: new products sell);
  ``products.parquet`` is the history, one row per product when it enters the catalog plus a
  row per stock change (``updated_at``), so the catalog as of t is each product's newest row;
* **recalls**: a few products are recalled mid-period; the shop stops showing them, but the
  catalog feed still says ``in_stock``: only ``recalled.parquet`` (the deny list) keeps them
  out of recommendations;
* **dirty rows** (a handful, well under 1%) the contracts catch and quarantine: products from
  the staging catalog (``TEST-...``, unknown to the shop), a null customer, a negative
  quantity (a refund booked into the wrong feed).

``truth.json`` says how far from the ceiling and the floor a model is, on the split taxiway
makes by default: the cutoff is at 90% of the clean interactions' time range, customers
evaluated are those with an interaction before it and one after it, and the relevant items are
the distinct products each one interacted with (any event) after the cutoff. Candidates at the
cutoff are the products in stock then (the catalog's newest row), not recalled, and not
bought by the customer in the 90 days before (the spec's filters); recall@10 is hits / number
of relevant items, ndcg@10 is binary DCG over the ideal DCG of min(10, relevant) hits:

* ``ceiling``: each customer's candidates ranked by their TRUE choice probability at the cutoff
  (the generating model: taste at the cutoff, popularity, noise, repeat damping). No model
  learned from the data can expect to do better (up to the drift and stock changes after the
  cutoff, which nothing can know), so a model near it has nothing left to learn;
* ``popularity``: the candidates ranked by interactions (weighted by quantity) in the 30 days
  before the cutoff, computed directly with numpy: the floor a model must beat.

``max_per_category`` ordering is not applied to either (it costs a little recall by design).

Same arguments, same bytes: everything comes from one ``numpy.random.Generator(seed)``.

    python examples/shop-recs/simulate.py [--out DIR] [--users N] [--items N]
                                          [--interactions N] [--seed S]
                                          [--start 2025-01-01] [--end 2025-12-31]

MovieLens-1M scale: ``--users 6040 --items 3706 --interactions 1000000`` (well under a
minute).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DIRTY", "simulate"]

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DAY = 86_400  # seconds
CATEGORIES = np.array(
    [
        "electronics",
        "home",
        "fashion",
        "beauty",
        "sports",
        "books",
        "toys",
        "garden",
        "grocery",
        "pets",
        "baby",
        "automotive",
        "music",
        "games",
        "office",
        "jewelry",
        "shoes",
        "outdoor",
        "kitchen",
        "health",
    ]
)
CATEGORY_PRICE = np.array(
    [180, 45, 40, 18, 35, 14, 25, 30, 8, 20, 28, 50, 15, 45, 22, 120, 70, 60, 35, 16.0]
)
WEEKDAY = np.array([0.90, 0.92, 0.95, 1.00, 1.05, 1.25, 1.18])  # Monday .. Sunday
HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 9, 8, 7, 7, 8, 9, 11, 12, 12, 10, 6, 3.0])
DIM = 24  # taste dimensions
TEMPERATURE = 0.12  # T: lower means sharper tastes
BETA = 0.5  # weight of the popularity prior in a taste-driven choice
NOISE = 0.1  # share of choices that follow pure popularity
REPEAT = 0.05  # a bought product is chosen this much as often afterwards
CART, BUY = 0.3, 0.45  # P(cart | view), P(purchase | cart)
PERIOD_DAYS = 28  # tastes are evaluated at each period's middle (the drift is slow)
K, LOOKBACK_DAYS, POPULAR_DAYS = (
    10,
    90,
    30,
)  # truth.json: top-k, already-seen and popularity windows
MAX_PER_CATEGORY = 3  # truth.json's ordered ceiling: the example's ordering
# Dirty interaction rows per kind: a share of the rows, at least 3 each.
DIRTY = {"unknown_product": 0.0002, "null_customer": 0.0002, "negative_quantity": 0.0002}


@dataclass(frozen=True)
class World:
    """The hidden state: who likes what, and what is on sale when (seconds since start)."""

    span: int  # seconds in the period
    category: np.ndarray  # (items,) category code
    price: np.ndarray
    prior: np.ndarray  # (items,) popularity prior, sums to 1
    taste: np.ndarray  # (items, DIM)
    user_taste: np.ndarray  # (users, DIM) at the start
    user_drift: np.ndarray  # (users, DIM) added in full by the end
    user_begin: np.ndarray  # (users,) first day
    activity: np.ndarray  # (users,) relative choice rate
    stock_item: np.ndarray  # catalog history, sorted by (item, at)
    stock_at: np.ndarray
    stock_in: np.ndarray  # bool
    recalled: np.ndarray  # item codes
    recalled_at: np.ndarray  # seconds

    def user_taste_at(self, users: np.ndarray, at: float) -> np.ndarray:
        return self.user_taste[users] + (at / self.span) * self.user_drift[users]

    def in_stock(self, items: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Whether the catalog lists each item as in stock at each time (False before launch)."""
        keys = self.stock_item * (1 << 40) + self.stock_at
        row = np.searchsorted(keys, items * (1 << 40) + at, side="right") - 1
        found = (row >= 0) & (self.stock_item[np.maximum(row, 0)] == items)
        return found & self.stock_in[np.maximum(row, 0)]

    def available(self, items: np.ndarray, at: np.ndarray) -> np.ndarray:
        """In stock and not recalled: what the shop shows (and so what can be chosen)."""
        recall = np.full(self.prior.size, np.iinfo(np.int64).max)
        recall[self.recalled] = self.recalled_at
        return self.in_stock(items, at) & (at < recall[items])

    def choice_probabilities(self, users: np.ndarray, at: float) -> np.ndarray:
        """(users, items) true choice probabilities at ``at``, before availability and repeats."""
        taste = self.user_taste_at(users, at).astype(np.float32)
        logits = taste @ (self.taste.T / TEMPERATURE).astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits, out=logits)
        weights *= (self.prior**BETA).astype(np.float32)
        weights *= ((1 - NOISE) / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        weights += (NOISE * self.prior).astype(np.float32)
        return weights


def _world(rng: np.random.Generator, users: int, items: int, days: int) -> World:
    span = days * DAY
    n_cat = CATEGORIES.size
    centroid = rng.normal(size=(n_cat, DIM))
    centroid /= np.linalg.norm(centroid, axis=1, keepdims=True)

    # Products: a category (some bigger than others), a price, a taste, a Zipf-like prior.
    share = rng.dirichlet(np.full(n_cat, 4.0))
    category = rng.choice(n_cat, size=items, p=share)
    price = np.round(CATEGORY_PRICE[category] * rng.lognormal(0, 0.5, items), 2) + 0.99
    own = rng.normal(size=(items, DIM))
    taste = centroid[category] + 0.8 * own / np.linalg.norm(own, axis=1, keepdims=True)
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    launched = rng.random(items) < 0.05  # new products, launched during the period
    rank = rng.permutation(items) + 1.0
    rank[launched] = np.ceil(rank[launched] / 4)  # new products start near the top
    prior = rank**-0.9
    prior /= prior.sum()

    # Customers: one to three favourite categories, a personal part, a drift to one more.
    n_fav = rng.choice([1, 2, 3], size=users, p=[0.35, 0.45, 0.2])
    mix = rng.dirichlet(np.ones(3), size=users) * (np.arange(3) < n_fav[:, None])
    mix /= mix.sum(axis=1, keepdims=True)
    favourite = rng.choice(n_cat, size=(users, 3), p=share)
    personal = rng.normal(size=(users, DIM)) / np.sqrt(DIM)
    user_taste = np.einsum("uk,ukd->ud", mix, centroid[favourite]) + 0.5 * personal
    user_taste /= np.linalg.norm(user_taste, axis=1, keepdims=True)
    user_drift = 0.6 * centroid[rng.choice(n_cat, size=users, p=share)]
    user_begin = np.where(
        rng.random(users) < 0.8, 0, rng.integers(0, max(days - 1, 1), users)
    ).astype(np.int64)
    activity = rng.lognormal(0.0, 1.0, users)

    # Stock: one row when a product enters the catalog, then a row per change of in_stock.
    launch = np.where(launched, rng.integers(DAY, max(span - DAY, DAY + 1), items), 0)
    gone = rng.choice(np.flatnonzero(~launched), size=max(1, items // 40), replace=False)
    gone_at = np.full(items, np.iinfo(np.int64).max)
    gone_at[gone] = rng.integers(span // 4, span, gone.size)  # discontinued for good
    who = np.repeat(np.arange(items), rng.poisson(0.8, items))  # out-of-stock spells
    out = launch[who] + rng.integers(1, span, who.size)
    back = out + np.clip(rng.lognormal(np.log(7 * DAY), 0.8, who.size), 2 * DAY, 42 * DAY)
    stock_item = np.concatenate([np.arange(items), who, who, gone])
    stock_at = np.concatenate([launch, out, back.astype(np.int64), gone_at[gone]])
    n_in = (items, who.size, who.size, gone.size)  # entering, out, back, discontinued
    stock_in = np.repeat([True, False, True, False], n_in)
    keep = (stock_at < span) & (
        (stock_at < gone_at[stock_item]) | ((stock_at == gone_at[stock_item]) & ~stock_in)
    )
    stock_item, stock_at, stock_in = stock_item[keep], stock_at[keep], stock_in[keep]
    order = np.lexsort((stock_at, stock_item))
    stock_item, stock_at, stock_in = stock_item[order], stock_at[order], stock_in[order]
    # Overlapping spells: keep only the rows that change the product's state.
    first = np.r_[True, stock_item[1:] != stock_item[:-1]]
    change = first | np.r_[True, stock_in[1:] != stock_in[:-1]]
    stock_item, stock_at, stock_in = stock_item[change], stock_at[change], stock_in[change]
    # Recalls: a few products among the popular ones, recalled between 40% and 80% of the way.
    popular = np.flatnonzero(~launched)[np.argsort(-prior[~launched])][5:200]
    recalled = np.sort(rng.choice(popular, size=min(8, popular.size), replace=False))
    recalled_at = rng.integers(int(0.4 * span), int(0.8 * span), recalled.size)
    return World(
        span, category, price, prior, taste, user_taste, user_drift, user_begin, activity,
        stock_item, stock_at, stock_in, recalled, recalled_at,
    )  # fmt: skip


def _daily(start: date, days: int) -> np.ndarray:
    """Relative browsing intensity of each day: weekday x a December peak."""
    dates = [start + timedelta(days=i) for i in range(days)]
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    weekday = WEEKDAY[[d.weekday() for d in dates]]
    return weekday * (1.0 + 0.6 * np.exp(-(((doy - 340) / 20) ** 2)))


@dataclass(frozen=True)
class Choices:
    """Each time a customer looks at a product (sorted by ``at``), before the product is drawn."""

    user: np.ndarray
    at: np.ndarray  # seconds since start: the view
    cart_at: np.ndarray  # the cart row's time (meaningful where cart)
    buy_at: np.ndarray  # the purchase row's time (meaningful where buy)
    cart: np.ndarray  # bool
    buy: np.ndarray  # bool (implies cart)


def _choices(rng: np.random.Generator, world: World, n: int, daily: np.ndarray) -> Choices:
    days = daily.size
    begin = world.user_begin
    weight = world.activity * (days - begin) / days
    count = rng.multinomial(n, weight / weight.sum())
    user = np.repeat(np.arange(count.size), count)
    cdf = np.r_[0.0, np.cumsum(daily) / daily.sum()]
    low = cdf[begin[user]]
    day = np.searchsorted(cdf, low + rng.random(user.size) * (1 - low), side="right") - 1
    day = np.clip(day, begin[user], days - 1)
    hour = rng.choice(24, size=user.size, p=HOURS / HOURS.sum())
    at = day * DAY + hour * 3600 + rng.integers(0, 3600, user.size)
    at = np.minimum(at, world.span - 2_200)  # the purchase still falls inside the period
    cart = rng.random(user.size) < CART
    buy = cart & (rng.random(user.size) < BUY)
    cart_at = at + rng.integers(20, 900, user.size)
    buy_at = cart_at + rng.integers(30, 1_200, user.size)
    order = np.lexsort((user, at))
    return Choices(user[order], at[order], cart_at[order], buy_at[order], cart[order], buy[order])


def _first_bought(keys: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, item) keys, sorted, with the earliest purchase time of each."""
    order = np.lexsort((at, keys))
    keys, at = keys[order], at[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    return keys[first], at[first]


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` of ``query`` keys in sorted ``keys``; int64 max where absent."""
    if keys.size == 0:
        return np.full(query.size, np.iinfo(np.int64).max)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return np.where(keys[pos] == query, values[pos], np.iinfo(np.int64).max)


def _pick_items(rng: np.random.Generator, world: World, c: Choices) -> np.ndarray:
    """The product of each choice, drawn from the true model over what is available then.

    Per period (tastes taken at its middle), draws from the choice probabilities restricted
    to products available at some point of the period, then redraws (rejection sampling,
    exact for the restricted distribution) the draws unavailable at the view or at the last
    row's time, and those of a product the customer bought before, unless a ``REPEAT`` coin
    lets them through."""
    items = world.prior.size
    end_at = np.where(c.buy, c.buy_at, np.where(c.cart, c.cart_at, c.at))
    item = np.full(c.user.size, -1, np.int64)
    repeat_ok = rng.random(c.user.size) < REPEAT
    bought_keys = np.empty(0, np.int64)
    bought_at = np.empty(0, np.int64)
    step = PERIOD_DAYS * DAY
    all_items = np.arange(items)
    for lo in range(0, world.span, step):
        hi = min(lo + step, world.span)
        a, b = np.searchsorted(c.at, [lo, hi])
        if a == b:
            continue
        users, local = np.unique(c.user[a:b], return_inverse=True)
        prob = world.choice_probabilities(users, (lo + hi) / 2)
        changes = (world.stock_at >= lo) & (world.stock_at < hi) & world.stock_in
        possible = world.available(all_items, np.full(items, lo)) | np.isin(
            all_items, world.stock_item[changes]
        )
        prob *= possible
        cdf = np.cumsum(prob, axis=1, out=prob)
        cdf /= cdf[:, -1:]
        flat = (cdf + np.arange(users.size, dtype=np.float64)[:, None]).ravel()
        del prob, cdf
        pending = np.arange(a, b)
        for _ in range(200):
            row = local[pending - a]
            x = row + rng.random(pending.size) * (1 - 1e-12)
            drawn = np.clip(np.searchsorted(flat, x, side="right") - row * items, 0, items - 1)
            ok = world.available(drawn, c.at[pending]) & world.available(drawn, end_at[pending])
            item[pending[ok]] = drawn[ok]
            repeat_ok[pending] = rng.random(pending.size) < REPEAT
            # Repeats: a product bought before the view (in an earlier period or this one).
            span = np.arange(a, b)
            done = span[item[span] >= 0]
            key = c.user[done] * items + item[done]
            buys = done[c.buy[done]]
            now_keys, now_at = _first_bought(c.user[buys] * items + item[buys], c.buy_at[buys])
            first = np.minimum(_lookup(bought_keys, bought_at, key), _lookup(now_keys, now_at, key))
            again = done[(c.at[done] > first) & ~repeat_ok[done]]
            item[again] = -1
            pending = np.concatenate([pending[~ok], again])
            if pending.size == 0:
                break
        span = np.arange(a, b)
        buys = span[c.buy[span] & (item[span] >= 0)]
        bought_keys, bought_at = _first_bought(
            np.r_[bought_keys, c.user[buys] * items + item[buys]], np.r_[bought_at, c.buy_at[buys]]
        )
    return item


@dataclass(frozen=True)
class Rows:
    """The interaction rows (clean), sorted by time: one per view, cart and purchase."""

    user: np.ndarray
    item: np.ndarray
    at: np.ndarray  # seconds since start
    event: np.ndarray  # 0 view, 1 cart, 2 purchase
    quantity: np.ndarray


EVENTS = np.array(["view", "cart", "purchase"])


def _rows(rng: np.random.Generator, c: Choices, item: np.ndarray) -> Rows:
    ok = item >= 0
    cart, buy = c.cart & ok, c.buy & ok
    user = np.concatenate([c.user[ok], c.user[cart], c.user[buy]])
    items = np.concatenate([item[ok], item[cart], item[buy]])
    at = np.concatenate([c.at[ok], c.cart_at[cart], c.buy_at[buy]])
    event = np.repeat(np.arange(3, dtype=np.int8), [ok.sum(), cart.sum(), buy.sum()])
    quantity = np.where(event == 2, 1 + rng.poisson(0.2, event.size), 1)
    order = np.lexsort((event, items, user, at))
    return Rows(user[order], items[order], at[order], event[order], quantity[order])


def _i64(values: np.ndarray) -> pa.Array[Any]:
    return pa.array(values.astype(np.int64), pa.int64())


def _ts(epoch: datetime, seconds: np.ndarray) -> pa.Array[Any]:
    base = int((epoch - datetime(1970, 1, 1)).total_seconds())
    return pa.array((seconds.astype(np.int64) + base) * 1_000_000, type=pa.timestamp("us"))


def _product_ids(items: int) -> np.ndarray:
    return np.array([f"P{i:05d}" for i in range(1, items + 1)], dtype=object)


def _tables(
    rng: np.random.Generator, world: World, rows: Rows, epoch: datetime
) -> tuple[dict[str, pa.Table], np.ndarray]:
    """The three tables, with the dirty rows planted; and the mask of clean interaction rows."""
    n = rows.user.size
    counts = {k: min(n // 20, max(3, round(f * n))) for k, f in DIRTY.items()}
    purchases = np.flatnonzero(rows.event == 2)
    negative = rng.choice(
        purchases, size=min(counts["negative_quantity"], purchases.size // 2), replace=False
    )
    others = np.setdiff1d(np.arange(n), negative)
    picks = rng.choice(
        others, size=counts["unknown_product"] + counts["null_customer"], replace=False
    )
    unknown, no_customer = picks[: counts["unknown_product"]], picks[counts["unknown_product"] :]
    product = _product_ids(world.prior.size)[rows.item]
    product[unknown] = [f"TEST-{i:04d}" for i in rng.integers(1, 10_000, unknown.size)]
    quantity = rows.quantity.copy()
    quantity[negative] *= -1
    missing = np.zeros(n, bool)
    missing[no_customer] = True
    clean = np.ones(n, bool)
    clean[np.concatenate([negative, unknown, no_customer])] = False
    interactions = pa.table(
        {
            "customer_id": pa.array(rows.user + 100_001, pa.int64(), mask=missing),
            "product_id": pa.array(product, pa.string()),
            "event": pa.array(EVENTS[rows.event], pa.string()),
            "quantity": _i64(quantity),
            "occurred_at": _ts(epoch, rows.at),
        }
    )
    ids = _product_ids(world.prior.size)
    order = np.lexsort((world.stock_item, world.stock_at))
    s_item = world.stock_item[order]
    products = pa.table(
        {
            "product_id": pa.array(ids[s_item], pa.string()),
            "category": pa.array(CATEGORIES[world.category[s_item]], pa.string()),
            "price": pa.array(world.price[s_item], pa.float64()),
            "in_stock": pa.array(world.stock_in[order], pa.bool_()),
            "updated_at": _ts(epoch, world.stock_at[order]),
        }
    )
    recalled = pa.table(
        {
            "product_id": pa.array(ids[world.recalled], pa.string()),
            "recalled_at": _ts(epoch, world.recalled_at),
            "reason": pa.array(
                rng.choice(["safety", "labelling", "contamination"], world.recalled.size),
                pa.string(),
            ),
        }
    )
    return {"interactions": interactions, "products": products, "recalled": recalled}, clean


@dataclass(frozen=True)
class Split:
    """The default time split of the clean rows, and what may be recommended at the cutoff."""

    cutoff: int  # µs since the start
    users: np.ndarray  # evaluated: rows before and after the cutoff
    relevant: np.ndarray  # (users, items) bool: interacted with after the cutoff
    candidate: np.ndarray  # (users, items) bool: in stock, not recalled, not bought in 90d
    bought: np.ndarray  # (users, items) bool: bought at any time before the cutoff


def _split(world: World, rows: Rows) -> Split:
    items = world.prior.size
    at_us = rows.at * 1_000_000
    first, last = int(at_us.min()), int(at_us.max())
    cutoff = first + int((last - first) * (1.0 - 0.1))  # as taxiway.recommend.split
    train, test = at_us < cutoff, at_us >= cutoff
    users = np.intersect1d(rows.user[train], rows.user[test])
    code = np.full(world.user_taste.shape[0], -1)
    code[users] = np.arange(users.size)
    relevant = np.zeros((users.size, items), bool)
    seen = test & (code[rows.user] >= 0)
    relevant[code[rows.user[seen]], rows.item[seen]] = True
    bought = np.zeros_like(relevant)
    recent = np.zeros_like(relevant)
    buy = train & (rows.event == 2) & (code[rows.user] >= 0)
    bought[code[rows.user[buy]], rows.item[buy]] = True
    buy &= at_us >= cutoff - LOOKBACK_DAYS * DAY * 1_000_000
    recent[code[rows.user[buy]], rows.item[buy]] = True
    shown = world.in_stock(np.arange(items), np.full(items, cutoff // 1_000_000))
    shown[world.recalled] = False
    return Split(cutoff, users, relevant, shown[None, :] & ~recent, bought)


def metrics(scores: np.ndarray, split: Split, k: int = K) -> dict[str, float]:
    """recall@k and ndcg@k of ranking each evaluated user's candidates by ``scores``
    (users x items, the split's users in order): means over users with a relevant item."""
    scores = np.where(split.candidate, scores, -np.inf)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    valid = np.take_along_axis(scores, top, axis=1) > -np.inf
    hits = np.take_along_axis(split.relevant, top, axis=1) & valid
    n_rel = split.relevant.sum(axis=1)
    keep = n_rel > 0
    discount = 1 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    recall = hits.sum(axis=1) / np.maximum(n_rel, 1)
    ndcg = (hits * discount).sum(axis=1) / ideal
    return {f"recall@{k}": float(recall[keep].mean()), f"ndcg@{k}": float(ndcg[keep].mean())}


def ordered(scores: np.ndarray, split: Split, category: np.ndarray, k: int = K) -> np.ndarray:
    """Scores whose top ``k`` is ``scores``' best candidates with at most MAX_PER_CATEGORY per
    category (greedy, best first, as the spec's ``ordering``); the rest -inf."""
    scores = np.where(split.candidate, scores, -np.inf)
    depth = min(scores.shape[1] - 1, 50 * k)  # deep enough for a one-category taste
    top = np.argpartition(-scores, depth, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    cats = category[top]
    seen = np.zeros(top.shape, np.int64)  # same-category items ranked above each one
    for c in np.unique(cats):
        same = cats == c
        seen[same] = (np.cumsum(same, axis=1) - 1)[same]
    keep = (seen < MAX_PER_CATEGORY) & (np.take_along_axis(scores, top, axis=1) > -np.inf)
    first = np.take_along_axis(top, np.argsort(~keep, axis=1, kind="stable")[:, :k], axis=1)
    valid = np.sort(~keep, axis=1, kind="stable")[:, :k] == 0
    out = np.full(scores.shape, -np.inf)
    rows = np.repeat(np.arange(top.shape[0]), k)
    out[rows[valid.ravel()], first.ravel()[valid.ravel()]] = np.tile(
        np.arange(k, 0, -1.0), top.shape[0]
    )[valid.ravel()]
    return out


def popularity_scores(rows: Rows, split: Split, items: int) -> np.ndarray:
    """Interactions (weighted by quantity) per item in the 30 days before the cutoff."""
    at_us = rows.at * 1_000_000
    recent = (at_us < split.cutoff) & (at_us >= split.cutoff - POPULAR_DAYS * DAY * 1_000_000)
    counts = np.bincount(rows.item[recent], rows.quantity[recent], minlength=items)
    return np.broadcast_to(counts.astype(float), split.relevant.shape)


def _truth(world: World, rows: Rows, epoch: datetime) -> dict[str, Any]:
    split = _split(world, rows)
    true = world.choice_probabilities(split.users, split.cutoff / 1e6)
    true = np.where(split.bought, REPEAT * true, true)
    pop = popularity_scores(rows, split, world.prior.size)
    at = epoch + timedelta(microseconds=split.cutoff)
    return {
        "cutoff": at.isoformat(),
        "k": K,
        "users_evaluated": int((split.relevant.sum(axis=1) > 0).sum()),
        "ceiling": {k: round(v, 4) for k, v in metrics(true, split).items()},
        "ceiling_ordered": {
            k: round(v, 4) for k, v in metrics(ordered(true, split, world.category), split).items()
        },
        "max_per_category": MAX_PER_CATEGORY,
        "popularity": {k: round(v, 4) for k, v in metrics(pop, split).items()},
        "meaning": {
            "ceiling": "candidates ranked by the true choice probability at the cutoff: "
            "no model learned from the data can expect to do better",
            "ceiling_ordered": "the same with at most max_per_category products per category "
            "(the example's ordering), the ceiling of a pipeline that orders so",
            "popularity": "candidates ranked by interactions (weighted by quantity) in the "
            f"{POPULAR_DAYS} days before the cutoff: the floor a model must beat",
            "split": "cutoff at 90% of the clean interactions' time range; users with rows "
            "before and after it; relevant: distinct products interacted with after it; "
            f"candidates: in stock at the cutoff, not recalled, not bought in the "
            f"{LOOKBACK_DAYS} days before; recall = hits / relevant",
        },
    }


def simulate(
    out_dir: Path = DEFAULT_OUT,
    users: int = 3_000,
    items: int = 1_500,
    interactions: int = 150_000,
    seed: int = 7,
    start: date = date(2025, 1, 1),
    end: date = date(2025, 12, 31),
) -> dict[str, int]:
    """Write interactions, products and recalled Parquet files and truth.json; return rows
    per table (interactions counts every row written, dirty ones included)."""
    days = (end - start).days + 1
    if days < 28 or min(users, items, interactions) < 100:
        raise ValueError(
            f"need 28+ days and 100+ users, items and interactions, got {start}..{end}, "
            f"{users} users, {items} items, {interactions} interactions"
        )
    rng = np.random.default_rng(seed)
    epoch = datetime(start.year, start.month, start.day)
    world = _world(rng, users, items, days)
    choices = _choices(
        rng, world, round(interactions / (1 + CART + CART * BUY)), _daily(start, days)
    )
    rows = _rows(rng, choices, _pick_items(rng, world, choices))
    tables, clean = _tables(rng, world, rows, epoch)
    kept = Rows(*(getattr(rows, f)[clean] for f in ("user", "item", "at", "event", "quantity")))
    truth = _truth(world, kept, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out_dir / f"{name}.parquet", compression="zstd")
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return {name: table.num_rows for name, table in tables.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--items", type=int, default=1_500)
    parser.add_argument("--interactions", type=int, default=150_000, help="rows, about")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        rows = simulate(
            args.out, args.users, args.items, args.interactions, args.seed, args.start, args.end
        )
    except ValueError as error:
        parser.error(str(error))
    for name, count in rows.items():
        size = (args.out / f"{name}.parquet").stat().st_size
        print(f"{name:>12}: {count:>9,} rows  {size / 1e6:6.2f} MB  {args.out / name}.parquet")
    truth = json.loads((args.out / "truth.json").read_text())
    print(
        f"truth.json: ceiling {truth['ceiling']}, popularity {truth['popularity']} "
        f"({truth['users_evaluated']:,} users after {truth['cutoff']})"
    )
    print(f"done in {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
