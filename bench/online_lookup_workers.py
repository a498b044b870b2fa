"""One tool in a fresh process: Feast or taxiway materializes the views into its online store,
then each case's calls are timed, and the values of the sampled keys are read back.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from online_lookup_data import (
    BATCHES,
    CASES,
    DATA_DIR,
    VIEWS,
    WARMUP,
    call_keys,
    ensure_data,
    feature_names,
)
from toolkit import feast_store, feast_view, hand_back, latency_summary


def measure(call: Any, batches: list[list[int]]) -> dict[str, float]:
    """Latency of ``call(keys)`` over ``batches`` (the first WARMUP calls are not counted)."""
    times = []
    for index, keys in enumerate(batches):
        began = time.perf_counter_ns()
        call(keys)
        elapsed = time.perf_counter_ns() - began
        if index >= WARMUP:
            times.append(elapsed / 1e6)
    return latency_summary(times)


def work_feast(folder: Path, as_of: datetime, args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    made = {
        view: feast_view(view, feature_names(view), timedelta(days=30), folder / f"{view}.parquet")
        for view in VIEWS
    }
    store = feast_store(DATA_DIR / "runs" / "feast", "bench_online")
    entity = made["wide"][0]
    views = [view for _, view in made.values()]
    store.apply([entity, *views])
    began = time.perf_counter()
    store.materialize(start_date=as_of - timedelta(days=5), end_date=as_of + timedelta(seconds=1))
    materialize_s = time.perf_counter() - began
    settle(args)

    def reader(case: str) -> Any:
        refs = [f"{view}:{name}" for view in CASES[case] for name in feature_names(view)]

        def call(keys: list[int]) -> dict[str, Any]:
            rows = [{"entity_id": k} for k in keys]
            return store.get_online_features(features=refs, entity_rows=rows).to_dict()

        return call

    latencies = run_cases(reader, args)
    sample = [int(k) for k in args.sample_keys]
    answer = store.get_online_features(
        features=[f"{view}:{name}" for view in VIEWS for name in feature_names(view)],
        entity_rows=[{"entity_id": k} for k in sample],
    ).to_dict()
    values = {
        str(k): {name: answer[name][i] for view in VIEWS for name in feature_names(view)}
        for i, k in enumerate(sample)
    }
    return {"materialize_s": materialize_s, "latency": latencies, "values": values}


def taxiway_spec(folder: Path, case: str | None) -> str:
    views = VIEWS if case is None else {v: VIEWS[v] for v in CASES[case]}
    sources = "\n".join(
        f"  {v}: {{kind: file, path: {folder / f'{v}.parquet'}, timestamp: event_timestamp, "
        f"created: created}}"
        for v in views
    )
    features = "\n".join(
        f"  {v}: {{source: {v}, entity: entity, latest: [{', '.join(feature_names(v))}], ttl: 30d}}"
        for v in views
    )
    return (
        f"name: bench_online\nsources:\n{sources}\nentities: {{entity: entity_id}}\n"
        f"features:\n{features}\n"
    )


def work_taxiway(
    tool: str, folder: Path, as_of: datetime, args: argparse.Namespace
) -> dict[str, Any]:
    from taxiway.features.lookup import lookup
    from taxiway.features.materialize import materialize
    from taxiway.features.online import RedisStore, SqliteStore
    from taxiway.spec import Project, load_spec_text

    runs = DATA_DIR / "runs" / tool.replace("@", "-at-")
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    prefix = f"taxiway-bench-{uuid.uuid4().hex[:12]}"
    stores: list[Any] = []

    def open_store(name: str) -> Any:
        if tool.startswith("taxiway-redis"):
            store = RedisStore(args.redis, f"{prefix}:{name}", 1000.0)
        else:
            store = SqliteStore(runs / f"{name}.sqlite")
        stores.append(store)
        return store

    def project(case: str | None) -> Project:
        name = case or "all"
        folder_case = runs / name
        folder_case.mkdir()
        spec_file = folder_case / "taxiway.yaml"
        text = taxiway_spec(folder, case)
        spec_file.write_text(text)
        spec = load_spec_text(text, str(spec_file), base_dir=folder_case)
        return Project(spec, spec_file, folder_case / ".state")

    try:
        opened: dict[str, tuple[Any, Any]] = {}
        materialize_s = 0.0
        for case in CASES:
            proj = project(case)
            store = open_store(case)
            began = time.perf_counter()
            materialize(proj, store, as_of=as_of.replace(tzinfo=UTC))
            materialize_s += time.perf_counter() - began
            opened[case] = (proj.spec, store)
        settle(args)

        def reader(case: str) -> Any:
            spec, store = opened[case]

            def call(keys: list[int]) -> Any:
                found = lookup(spec, store, "entity", [str(k) for k in keys])
                if args.consume == "values":
                    for entity in found:
                        entity.values()
                elif args.consume == "features":
                    for entity in found:
                        for value in entity.features.values():
                            value.status  # noqa: B018 - what a caller reads of each value
                return found

            return call

        latencies = run_cases(reader, args)
        sample = [str(k) for k in args.sample_keys]
        values: dict[str, dict[str, Any]] = {k: {} for k in sample}
        for spec, store in opened.values():
            for found in lookup(spec, store, "entity", sample):
                for name, value in found.features.items():
                    feature = name.partition("__")[2]
                    values[found.key][feature] = value.value
        return {"materialize_s": materialize_s, "latency": latencies, "values": values}
    finally:
        for store in stores:
            if tool.startswith("taxiway-redis"):
                store.clear()
            store.close()


def settle(args: argparse.Namespace) -> None:
    """With ``--gc-freeze``: what `taxiway serve` does once loaded (collect, then freeze)."""
    if args.gc_freeze:
        gc.collect()
        gc.freeze()


def run_cases(reader: Any, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    latencies = {}
    for case in CASES:
        call = reader(case)
        for batch in BATCHES:
            keys = call_keys(args.entities, args.seed, args.calls, batch)
            latencies[f"{case}/{batch}"] = measure(call, keys)
    return latencies


def worker(args: argparse.Namespace) -> None:
    folder, as_of = ensure_data(args.entities, args.seed)
    args.sample_keys = json.loads(args.sample)
    if args.worker == "feast":
        result = work_feast(folder, as_of, args)
    else:
        result = work_taxiway(args.worker, folder, as_of, args)
    hand_back(result)
