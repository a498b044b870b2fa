"""The model every serving target answers with: a LightGBM Booster trained once on generated
data, the rows requests carry, its own predictions for them, and the stand-in's online store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

PEERS = HERE / "serving_peers"

DATA = HERE / ".data" / "serving"

HOST = "127.0.0.1"

SEED = 20260607

FEATURES = 20

TREES = 100

TRAIN_ROWS = 50_000

REQUEST_ROWS = 256  # distinct request bodies, cycled by wrk

STORE_KEYS = 100_000  # keys in the stand-in's online store


@dataclass(frozen=True)
class Model:
    path: Path
    rows: np.ndarray  # REQUEST_ROWS x FEATURES, the rows requests carry
    expected: np.ndarray  # Booster.predict(rows)
    store: Path  # the stand-in's online store: rows[i] is under key KEYS[i]
    keys: list[str]


def ensure_model() -> Model:
    """Train (once) the served model, the request rows and the stand-in's online store."""
    import lightgbm

    folder = DATA / "model"
    path, rows_file, store = folder / "model.txt", folder / "rows.npy", folder / "store.sqlite"
    rng = np.random.default_rng(SEED)
    keys = [str(k) for k in rng.choice(STORE_KEYS, REQUEST_ROWS, replace=False)]
    if not (path.exists() and rows_file.exists() and store.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        X = rng.standard_normal((TRAIN_ROWS + REQUEST_ROWS, FEATURES))
        signal_ = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 4] + np.sin(3 * X[:, 5])
        y = (signal_ + rng.standard_normal(len(X)) > 0.3).astype(int)
        params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05,
                  "verbosity": -1, "seed": SEED, "num_threads": 2}  # fmt: skip
        train = lightgbm.Dataset(X[:TRAIN_ROWS], y[:TRAIN_ROWS])
        booster = lightgbm.train(params, train, num_boost_round=TREES)
        booster.save_model(str(path))
        rows = X[TRAIN_ROWS:]
        np.save(rows_file, rows)
        write_store(store, rows, keys, rng)
    booster = lightgbm.Booster(model_file=str(path))
    rows = np.load(rows_file)
    return Model(path, rows, booster.predict(rows, num_threads=1), store, keys)


def write_store(path: Path, rows: np.ndarray, keys: list[str], rng: np.random.Generator) -> None:
    """The stand-in's online store: STORE_KEYS keys, each with its 20 values as a JSON array."""
    import sqlite3

    import orjson

    path.unlink(missing_ok=True)
    filler = rng.standard_normal((STORE_KEYS, FEATURES))
    for key, row in zip(keys, rows, strict=True):
        filler[int(key)] = row
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE features (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        db.executemany(
            "INSERT INTO features VALUES (?, ?)",
            ((str(k), orjson.dumps(filler[k].tolist())) for k in range(STORE_KEYS)),
        )
    db.close()
