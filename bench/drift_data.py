"""bench/drift.py's data: a reference and a current matrix of numeric columns, the same law
column by column except the few columns :data:`SHIFTS` moves in the current one, and the
prediction log that holds the current rows as the service writes them.

Each column draws from one of :data:`LAWS` (in turn), scaled and offset by its index so no two
columns look alike. The current matrix is drawn afresh (another seed) from the same laws, then
the shifted columns are moved. Everything is written once per size to
``bench/.data/drift/<rows>x<columns>/`` as ``.npy`` files (any venv reads them with numpy
alone) and reused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data" / "drift"
SEED = 15
LAWS = ("normal", "lognormal", "exponential", "uniform", "gamma", "poisson")
# column index -> (what happens, parameter): applied to the current data only
SHIFTS: dict[int, tuple[str, float]] = {
    1: ("mean + k sd", 0.5),  # a clear shift
    2: ("sd x k", 1.5),  # same mean, wider
    3: ("mean + k sd", 0.05),  # real but small: detectable at 1M rows, not at 1k
    4: ("x k", 100.0),  # a format break: amounts in cents
}
LOG_MODEL = "bench_drift"
LOG_VERSION = 1


def column_names(columns: int) -> list[str]:
    """``c00``, ``c01``, ..."""
    return [f"c{j:02d}" for j in range(columns)]


def draw(rng: Any, law: str, j: int, rows: int) -> Any:
    """``rows`` values of column ``j`` under ``law``."""
    if law == "normal":
        values = rng.normal(10.0 * j, 1.0 + j, rows)
    elif law == "lognormal":
        values = rng.lognormal(1.0 + 0.1 * j, 0.6, rows)
    elif law == "exponential":
        values = rng.exponential(2.0 + j, rows)
    elif law == "uniform":
        values = rng.uniform(-j, 3.0 * j + 1.0, rows)
    elif law == "gamma":
        values = rng.gamma(2.0, 1.0 + 0.5 * j, rows)
    else:  # counts, as an order count would be
        values = rng.poisson(20.0 + j, rows).astype("float64")
    return values


def shifted(values: Any, how: str, k: float) -> Any:
    """``values`` moved as :data:`SHIFTS` says."""
    if how == "mean + k sd":
        return values + k * float(values.std())
    if how == "sd x k":
        mean = float(values.mean())
        return mean + (values - mean) * k
    if how == "x k":
        return values * k
    raise ValueError(how)


def matrix(rows: int, columns: int, seed: int, shift: bool) -> Any:
    """A ``rows`` x ``columns`` float64 matrix (C order) of the laws, shifted if ``shift``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((rows, columns), dtype=np.float64)
    for j in range(columns):
        values = draw(rng, LAWS[j % len(LAWS)], j, rows)
        if shift and j in SHIFTS:
            values = shifted(values, *SHIFTS[j])
        out[:, j] = values
    return out


def truth(columns: int) -> dict[str, bool]:
    """Which columns really moved."""
    return {name: j in SHIFTS for j, name in enumerate(column_names(columns))}


def folder_of(rows: int, columns: int, seed: int = SEED) -> Path:
    return DATA_DIR / f"{rows}x{columns}-s{seed}"


def ensure_data(rows: int, columns: int, seed: int = SEED) -> Path:
    """The folder with ``reference.npy`` and ``current.npy`` (written on first use)."""
    import numpy as np

    folder = folder_of(rows, columns, seed)
    meta = folder / "meta.json"
    if meta.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "reference.npy", matrix(rows, columns, seed, shift=False))
    np.save(folder / "current.npy", matrix(rows, columns, seed + 1, shift=True))
    about = {
        "rows": rows,
        "columns": column_names(columns),
        "laws": [LAWS[j % len(LAWS)] for j in range(columns)],
        "shifts": {column_names(columns)[j]: list(s) for j, s in SHIFTS.items() if j < columns},
    }
    meta.write_text(json.dumps(about, indent=1))
    return folder


def chunks(rows: int, columns: int, seed: int, chunk: int, shift: bool) -> Iterator[Any]:
    """The current data of a ``rows``-row run, ``chunk`` rows at a time, never all of it in
    memory (each chunk from its own seed: the same laws, so the same verdicts)."""
    done, part = 0, 0
    while done < rows:
        n = min(chunk, rows - done)
        yield matrix(n, columns, seed * 1_000_003 + part, shift)
        done, part = done + n, part + 1


def records(values: Any, names: list[str], start: int) -> Iterator[dict[str, Any]]:
    """Prediction records shaped like the service's (``taxiway.serving.service.record``), one
    per row of ``values``, a second apart from 2026-01-01T00:00:00Z."""
    from datetime import UTC, datetime, timedelta

    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    for i, row in enumerate(values.tolist()):
        n = start + i
        yield {
            "ts": (epoch + timedelta(seconds=n // 100)).isoformat(),
            "request_id": f"r{n:09d}",
            "model": LOG_MODEL,
            "model_version": LOG_VERSION,
            "arm": "production",
            "unit": f"u{n % 100_000}",
            "path": "model",
            "degraded": False,
            "reason": None,
            "prediction": 0.5,
            "latency_ms": 1.234,
            "lookup_ms": 0.4,
            "entities": {"customer": n % 100_000},
            "request": {},
            "features": dict(zip(names, row, strict=True)),
            "out_of_range": [],
        }


def ensure_log(folder: Path) -> Path:
    """The prediction log (JSON lines, written by taxiway's own PredictionLog) of the current
    rows of ``folder``: ``<folder>/log/``, written on first use."""
    import numpy as np

    from taxiway.serving.log import PredictionLog

    log = folder / "log"
    done = log / ".complete"
    if done.exists():
        return log
    shutil.rmtree(log, ignore_errors=True)
    current = np.load(folder / "current.npy", mmap_mode="r")
    names = json.loads((folder / "meta.json").read_text())["columns"]

    class JsonOnly(PredictionLog):
        columns = False  # the benches build (and time) the columnar sidecars themselves

    with JsonOnly(log, worker="bench", sync="never", rotate_bytes=256 * 2**20) as writer:
        for start in range(0, current.shape[0], 50_000):
            block = np.asarray(current[start : start + 50_000])
            for record in records(block, names, start):
                writer.append_sync(record)
    done.touch()
    return log
