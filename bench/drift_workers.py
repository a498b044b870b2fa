"""bench/drift.py's workers: each tool in a fresh process, timed and measured there.

Every worker loads the data it is given first (untimed: both tools get the same rows in
memory), notes its resident memory, then times its own work and hands back the seconds, its
peak resident memory (VmHWM) and a verdict per column. Only the standard library is imported at
module level: the Evidently worker runs in Evidently's venv, where taxiway is not installed.

- ``evidently``: ``Report([DataDriftPreset()]).run(current, reference)`` on two pandas frames,
  the verdict of each ``ValueDrift`` by its own method and threshold (a distance at or above
  it, or a p-value at or below it).
- ``taxiway-reference`` (training's job, timed on its own): ``build_reference`` over the
  reference columns, stored as JSON next to the data, as the registry stores it.
- ``taxiway``: what ``taxiway monitor`` does with a window's rows in memory: load the stored
  reference, profile each current column (``empty_like`` + ``update``), its statistic against
  the reference profile (``between``) and the threshold calibrated for that many rows.
- ``taxiway-log``: the same judged from the prediction log on disk: ``WindowStore.update``
  reads the JSON lines (a fresh state folder, so every line is read) into window profiles,
  which are merged (``period``) and judged the same way. Production reads the log: this is the
  headline.
- ``taxiway-bounded``: ``--bounded`` rows generated and profiled in chunks, never all in
  memory: the peak memory stays that of one chunk whatever the rows.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from drift_data import LOG_MODEL, LOG_VERSION, chunks, ensure_log, truth
from toolkit import hand_back, high_water, rss

REFERENCE_FILE = "reference.json"


def _output(values: Any) -> Any:
    """The model output the bench pretends: a logistic of the first column."""
    import numpy as np

    z = (values - values.mean()) / (values.std() or 1.0)
    return 1.0 / (1.0 + np.exp(-z))


def evidently(folder: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    names = json.loads((folder / "meta.json").read_text())["columns"]
    reference = pd.DataFrame(np.load(folder / "reference.npy"), columns=names)
    current = pd.DataFrame(np.load(folder / "current.npy"), columns=names)
    loaded = rss()
    began = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - began
    verdicts: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold, method = float(metric["value"]), config["threshold"], config["method"]
        pvalue = "p_value" in method.lower() or "p-value" in method.lower()
        drift = value <= threshold if pvalue else value >= threshold
        verdicts[config["column"]] = {
            "value": value,
            "threshold": threshold,
            "method": method,
            "drift": drift,
        }
    return {"seconds": seconds, "loaded_rss": loaded, "verdicts": verdicts}


def taxiway_reference(folder: Path, statistic: str) -> dict[str, Any]:
    """Build and store the reference (what training does), timed."""
    import numpy as np

    from taxiway.monitoring.reference import build_reference

    names = json.loads((folder / "meta.json").read_text())["columns"]
    reference = np.load(folder / "reference.npy")
    columns = {name: np.ascontiguousarray(reference[:, j]) for j, name in enumerate(names)}
    output = _output(reference[:, 0])
    loaded = rss()
    began = time.perf_counter()
    stored = build_reference(columns, dict.fromkeys(names, "numeric"), output, statistic=statistic)
    seconds = time.perf_counter() - began
    text = json.dumps(stored)
    (folder / f"{statistic}-{REFERENCE_FILE}").write_text(text)
    return {"seconds": seconds, "loaded_rss": loaded, "bytes": len(text)}


def _judge(reference: Any, profiles: dict[str, Any]) -> dict[str, Any]:
    """Each column's statistic, calibrated threshold and verdict."""
    verdicts = {}
    for name, window in profiles.items():
        statistic = reference.statistic_of(name)
        value = statistic.between(reference.profile(name), window)
        limit = reference.threshold(name, window.known)
        verdicts[name] = {
            "value": value,
            "threshold": limit,
            "method": statistic.name,
            "drift": value > limit,
        }
    return verdicts


def _stored(folder: Path, statistic: str) -> dict[str, Any]:
    path = folder / f"{statistic}-{REFERENCE_FILE}"
    if not path.exists():
        raise SystemExit(f"no stored reference at {path}: run the taxiway-reference worker")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def taxiway_arrays(folder: Path, statistic: str) -> dict[str, Any]:
    import numpy as np

    from taxiway.monitoring.reference import load_reference

    names = json.loads((folder / "meta.json").read_text())["columns"]
    current = np.load(folder / "current.npy")
    text = (folder / f"{statistic}-{REFERENCE_FILE}").read_text()
    loaded = rss()
    began = time.perf_counter()
    reference = load_reference(json.loads(text))
    profiles = {}
    for j, name in enumerate(names):
        window = reference.features[name].empty_like()
        window.update(current[:, j])
        profiles[name] = window
    verdicts = _judge(reference, profiles)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "loaded_rss": loaded, "verdicts": verdicts}


def taxiway_log(folder: Path, statistic: str) -> dict[str, Any]:
    from datetime import timedelta

    from taxiway.monitoring.reference import load_reference
    from taxiway.monitoring.windows import WindowStore, period

    log = ensure_log(folder)
    text = (folder / f"{statistic}-{REFERENCE_FILE}").read_text()
    state = Path(tempfile.mkdtemp(prefix="drift-state-", dir=folder))
    try:
        # warm up on an empty log: every lazy import done before the clock starts, as for
        # Evidently, whose modules are imported before its run
        (state / "empty").mkdir()
        WindowStore(state / "warm").update(
            state / "empty",
            "predictions-*.jsonl",
            load_reference(json.loads(text)),
            window=timedelta(days=1),
            budget_ms=None,
            version=LOG_VERSION,
        )
        loaded = rss()
        began = time.perf_counter()
        reference = load_reference(json.loads(text))
        store = WindowStore(state)
        windows = store.update(
            log,
            "predictions-*.jsonl",
            reference,
            window=timedelta(days=1),
            budget_ms=None,
            version=LOG_VERSION,
        )
        whole = period(windows)
        verdicts = _judge(reference, dict(whole.features))
        seconds = time.perf_counter() - began
        requests = whole.requests
    finally:
        shutil.rmtree(state, ignore_errors=True)
    size = sum(p.stat().st_size for p in log.glob("predictions-*.jsonl"))
    return {
        "seconds": seconds,
        "loaded_rss": loaded,
        "verdicts": verdicts,
        "log_bytes": size,
        "requests": requests,
        "model": LOG_MODEL,
    }


def taxiway_bounded(
    folder: Path, statistic: str, rows: int, columns: int, seed: int, chunk: int
) -> dict[str, Any]:
    """``rows`` current rows made and profiled ``chunk`` at a time; only the profiling and
    judging are timed (making the rows is not the monitor's work)."""
    from taxiway.monitoring.reference import load_reference

    names = json.loads((folder / "meta.json").read_text())["columns"]
    loaded = rss()
    spent = 0.0
    began = time.perf_counter()
    reference = load_reference(_stored(folder, statistic))
    profiles = {name: reference.features[name].empty_like() for name in names}
    spent += time.perf_counter() - began
    for block in chunks(rows, columns, seed, chunk, shift=True):
        began = time.perf_counter()
        for j, name in enumerate(names):
            profiles[name].update(block[:, j])
        spent += time.perf_counter() - began
    began = time.perf_counter()
    verdicts = _judge(reference, profiles)
    spent += time.perf_counter() - began
    return {"seconds": spent, "loaded_rss": loaded, "verdicts": verdicts, "rows": rows}


def run(tool: str, folder: Path, options: dict[str, Any]) -> None:
    """Run ``tool`` on ``folder`` and hand its result back (with its peak memory)."""
    statistic = options["statistic"]
    if tool == "evidently":
        result = evidently(folder)
    elif tool == "taxiway-reference":
        result = taxiway_reference(folder, statistic)
    elif tool == "taxiway":
        result = taxiway_arrays(folder, statistic)
    elif tool == "taxiway-log":
        result = taxiway_log(folder, statistic)
    elif tool == "taxiway-bounded":
        result = taxiway_bounded(
            folder,
            statistic,
            options["rows"],
            options["columns"],
            options["seed"],
            options["chunk"],
        )
    else:
        raise SystemExit(f"unknown tool {tool}")
    result["peak_rss"] = high_water("self")
    result["pid"] = os.getpid()
    if "verdicts" in result:
        result["truth"] = truth(len(result["verdicts"]))
    hand_back(result)
