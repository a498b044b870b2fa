"""The orders table the contract benchmark validates: generated once, deterministically, with
planted failures whose true counts are computed independently of every tool.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


DATA_DIR = HERE / ".data" / "contracts"


SEED = 20260607


CHUNK = 1_000_000


ROW_GROUP = 262_144


RULES = ("not_null", "unique", "non_negative", "in_set", "regex")


STATUSES = ("placed", "shipped", "returned")


EMAIL_PATTERN = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"


# planted violations, as fractions of the rows
NULL_RATE = 0.0005


DUPLICATE_PAIR_RATE = 0.0005


NEGATIVE_RATE = 0.001


BAD_STATUS_RATE = 0.001


BAD_EMAIL_RATE = 0.001


def data_path(rows: int, seed: int) -> Path:
    return DATA_DIR / f"orders-{rows}-seed{seed}.parquet"


def ensure_data(rows: int, seed: int) -> tuple[Path, dict[str, int]]:
    """The Parquet file of ``rows`` rows (generated once) and its true failing counts."""
    path = data_path(rows, seed)
    truth_path = path.with_suffix(".truth.json")
    if path.exists() and truth_path.exists():
        return path, json.loads(truth_path.read_text())
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {rows:,} rows into {path} ...", flush=True)
    started = time.perf_counter()
    truth = dict.fromkeys((*RULES, "unique_members"), 0)
    partial = path.with_suffix(".partial")
    types: dict[str, pa.DataType] = {
        "order_id": pa.int64(),
        "amount": pa.float64(),
        "status": pa.string(),
        "email": pa.string(),
    }
    schema = pa.schema(types)
    with pq.ParquetWriter(partial, schema) as writer:
        for index, offset in enumerate(range(0, rows, CHUNK)):
            size = min(CHUNK, rows - offset)
            rng = np.random.default_rng([seed, index])
            table, counts = _chunk(rng, offset, size, schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
            for key, value in counts.items():
                truth[key] += value
    partial.rename(path)
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    print(f"  done in {time.perf_counter() - started:.1f} s; planted failures {truth}", flush=True)
    return path, truth


def _chunk(
    rng: np.random.Generator, offset: int, size: int, schema: pa.Schema
) -> tuple[pa.Table, dict[str, int]]:
    """One chunk of rows and its failing counts, computed independently of every tool."""
    pairs = int(size * DUPLICATE_PAIR_RATE)
    nulls = int(size * NULL_RATE)
    # order ids: a shuffled range, then some rows copy another row's id, and some are null
    ids = offset + rng.permutation(size)
    picked = rng.choice(size, 2 * pairs + nulls, replace=False)
    ids[picked[pairs : 2 * pairs]] = ids[picked[:pairs]]
    null = np.zeros(size, dtype=bool)
    null[picked[2 * pairs :]] = True
    present = ids[~null]
    _, counts = np.unique(present, return_counts=True)

    amount = np.round(rng.lognormal(3.0, 1.0, size), 2)
    negative = rng.choice(size, int(size * NEGATIVE_RATE), replace=False)
    amount[negative] = -amount[negative] - 0.01

    labels = np.array([*STATUSES, "lost", "Placed"])
    codes = rng.choice(3, size, p=[0.5, 0.3, 0.2])
    bad = rng.choice(size, int(size * BAD_STATUS_RATE), replace=False)
    codes[bad] = rng.choice([3, 4], len(bad))
    status = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(labels))

    domains = pa.array(["example.com", "mail.example.org", "shop.net", "corp.co.uk"])
    local = pc.binary_join_element_wise(
        pa.array(rng.choice(["anna", "bo", "chen", "dara", "eli"], size)),
        pc.cast(pa.array(rng.integers(0, 10_000_000, size)), pa.string()),
        "",
    )
    domain = domains.take(rng.integers(0, len(domains), size))
    good = pc.binary_join_element_wise(local, domain, "@")
    broken = pc.binary_join_element_wise(local, domain, " at ")
    bad_email = np.zeros(size, dtype=bool)
    bad_email[rng.choice(size, int(size * BAD_EMAIL_RATE), replace=False)] = True
    email = pc.if_else(pa.array(bad_email), broken, good)

    pattern = re.compile(EMAIL_PATTERN)
    truth = {
        "not_null": int(null.sum()),
        "unique": int((counts - 1).sum()),
        "unique_members": int(counts[counts > 1].sum()),
        "non_negative": int((amount < 0).sum()),
        "in_set": int((codes >= 3).sum()),
        "regex": sum(pattern.match(value) is None for value in email.to_pylist()),
    }
    table = pa.table(
        [pa.array(ids, mask=null), pa.array(amount), status.cast(pa.string()), email], schema=schema
    )
    return table, truth
