"""Online lookups: Feast's ``get_online_features`` against taxiway's ``lookup``.

The same generated data (``--entities`` keys, default 100,000; six feature views with two
versions of every key, the newer one winning) is materialized by each tool into its online
store, then read ``--calls`` times (default 2,000, after 100 warm-up calls) per case, one
call at a time from one client, with the same random keys for every tool:

- ``one-view``: one view of 10 features, for 1 and for 100 entities per call;
- ``five-views``: five views of 5 features each (25 features), for 1 and 100 entities.

Tools (``--only``): ``feast`` (SQLite online store, after ``materialize``), ``taxiway-sqlite``
(:class:`~taxiway.features.online.SqliteStore`) and ``taxiway-redis``
(:class:`~taxiway.features.online.RedisStore` at ``--redis``, 127.0.0.1 only, under a unique
prefix that is cleared afterwards). ``--src LABEL=PATH`` adds taxiway from another source tree
(e.g. the commit before a change, exported with ``git archive <commit> src | tar -x -C PATH``)
as ``taxiway-sqlite@LABEL`` and ``taxiway-redis@LABEL``, so a before/after comparison runs in
one command, on the same data, interleaved. Each tool runs in a fresh process; ``--rounds N``
runs every tool N times, round robin, and reports the median of the rounds (and the range of
the p99s). A call's time is everything the caller waits for: Feast's
``get_online_features(...).to_dict()``, taxiway's ``lookup(...)`` (values with their status
and age). ``--gc-freeze`` makes every worker (Feast's too) call ``gc.collect()`` and
``gc.freeze()`` once its store is ready, as ``taxiway serve`` does after start-up; without it
the collector walks everything the worker loaded (DuckDB, pyarrow, Feast) now and then, inside
a timed call. ``lookup`` judges every view's status and age but builds its answer's
``FeatureValue``s on first access: ``--consume values`` adds each entity's ``values()`` to the
timed call (what scoring reads), ``--consume features`` every feature's ``FeatureValue``.
The values each tool returns for a sample of keys are compared with the generated data: any
disagreement is printed loudly and the exit status is 1.

Feast pins ``pandas<3``, so it runs in its own venv (see ``bench/features.py``)::

    .venv/bin/python bench/online_lookup.py                      # every tool, 2,000 calls
    .venv/bin/python bench/online_lookup.py --only taxiway-sqlite,taxiway-redis --calls 5000
    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/online_lookup.py --src before=/tmp/before/src --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit import OtherLoad, latency_summary, machine, markdown_table, versions, wait_idle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA_DIR = HERE / ".data" / "online"
FEAST_PYTHON = HERE / ".data" / "feast-venv" / "bin" / "python"
SEED = 20260607
RESULT_MARK = "@@bench-result@@ "
TOOLS = ("feast", "taxiway-sqlite", "taxiway-redis")
WARMUP = 100
SAMPLE_KEYS = 200
# view name -> number of features; "wide" alone is the one-view case, the rest the five-views
VIEWS = {"wide": 10, "a": 5, "b": 5, "c": 5, "d": 5, "e": 5}
CASES = {"one-view": ["wide"], "five-views": ["a", "b", "c", "d", "e"]}
BATCHES = (1, 100)
GOALS_MS = {("five-views", 1): 0.5, ("five-views", 100): 5.0, ("one-view", 100): 5.0}


def feature_names(view: str) -> list[str]:
    return [f"{view}_x{i}" for i in range(VIEWS[view])]


# --------------------------------------------------------------------------- data


def ensure_data(entities: int, seed: int) -> tuple[Path, datetime]:
    """One Parquet file per view (two versions of each key) and the time they are fresh at."""
    folder = DATA_DIR / f"views-{entities}-seed{seed}"
    marker = folder / "as_of.txt"
    if marker.exists():
        return folder, datetime.fromisoformat(marker.read_text().strip())
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # recent enough that neither tool sees the values as stale while the benchmark runs
    as_of = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    base = np.datetime64(as_of - timedelta(days=2), "us")
    for view, width in VIEWS.items():
        keys = np.tile(np.arange(entities, dtype=np.int64), 2)
        offsets = rng.integers(0, 12 * 3600 * 10**6, 2 * entities)
        offsets[entities:] += 24 * 3600 * 10**6  # the second version is always newer
        ts = base + offsets.astype("timedelta64[us]")
        values = rng.standard_normal((width, 2 * entities)).round(6)
        table = pa.table(
            {
                "entity_id": keys,
                "event_timestamp": pa.array(ts, type=pa.timestamp("us")),
                "created": pa.array(ts, type=pa.timestamp("us")),
                **{name: values[i] for i, name in enumerate(feature_names(view))},
            }
        )
        pq.write_table(table, folder / f"{view}.parquet")
    marker.write_text(as_of.isoformat())
    return folder, as_of


def truth(folder: Path, keys: list[int]) -> dict[str, dict[str, float]]:
    """The newest values of ``keys``, feature name → value, straight from the files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = set(keys)
    result: dict[str, dict[str, float]] = {str(k): {} for k in keys}
    for view in VIEWS:
        table = pq.read_table(folder / f"{view}.parquet")
        table = table.filter(pc.is_in(table["entity_id"], value_set=_array(sorted(wanted))))
        newest: dict[int, tuple[Any, dict[str, float]]] = {}
        for row in table.to_pylist():
            key = row["entity_id"]
            if key not in newest or row["event_timestamp"] > newest[key][0]:
                newest[key] = (row["event_timestamp"], {n: row[n] for n in feature_names(view)})
        for key, (_, values) in newest.items():
            result[str(key)].update(values)
    return result


def _array(values: list[int]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.int64())


def call_keys(entities: int, seed: int, calls: int, batch: int) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(seed + batch)
    drawn = rng.integers(0, entities, (calls + WARMUP, batch))
    return [[int(k) for k in row] for row in drawn]


# --------------------------------------------------------------------------- timing


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


# --------------------------------------------------------------------------- workers


def work_feast(folder: Path, as_of: datetime, args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    repo = DATA_DIR / "runs" / "feast"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    config = RepoConfig(
        project="bench_online",
        provider="local",
        registry=str(repo / "registry.db"),
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    views = [
        FeatureView(
            name=view,
            entities=[entity],
            ttl=timedelta(days=30),
            schema=[Field(name=n, dtype=Float64) for n in feature_names(view)],
            source=FileSource(
                path=str(folder / f"{view}.parquet"),
                timestamp_field="event_timestamp",
                created_timestamp_column="created",
            ),
        )
        for view in VIEWS
    ]
    store = FeatureStore(config=config)
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
    print(RESULT_MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- driver


def code_state() -> str:
    """The commit measured, and the files under src/ that differ from it (a shared checkout
    can hold others' uncommitted work)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip()  # not strip(): a porcelain line starts with a space

    changed = git("status", "--porcelain", "--", "src").splitlines()
    dirty = ", ".join(line[3:] for line in changed) or "none"
    return f"commit {git('rev-parse', '--short', 'HEAD')}; uncommitted under src/: {dirty}"


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished children (the workers)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def spawn(tool: str, args: argparse.Namespace, sample: list[int]) -> dict[str, Any]:
    base, _, label = tool.partition("@")
    python = str(args.feast_python) if base == "feast" else sys.executable
    command = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--entities",
        str(args.entities),
        "--calls",
        str(args.calls),
        "--seed",
        str(args.seed),
        "--redis",
        args.redis,
        "--sample",
        json.dumps(sample),
    ]
    if args.gc_freeze:
        command.append("--gc-freeze")
    command += ["--consume", args.consume]
    src = args.sources[label] if label else ROOT / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "FEAST_USAGE": "False"}
    began = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=args.timeout, check=False
    )
    marked = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not marked:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"[:600]}
    result: dict[str, Any] = json.loads(marked[-1][len(RESULT_MARK) :])
    result["wall"] = time.perf_counter() - began
    return result


def compare(values: dict[str, dict[str, Any]], expected: dict[str, dict[str, float]]) -> int:
    wrong = 0
    for key, features in expected.items():
        got = values.get(key, {})
        for name, value in features.items():
            if got.get(name) is None or abs(float(got[name]) - value) > 1e-9:
                wrong += 1
    return wrong


def summary(runs: list[dict[str, Any]], name: str) -> dict[str, float]:
    """The median over rounds of one case's p50 and p99, and the range of the p99s."""
    p50s = [run["latency"][name]["p50"] for run in runs]
    p99s = [run["latency"][name]["p99"] for run in runs]
    return {
        "p50": statistics.median(p50s),
        "p99": statistics.median(p99s),
        "p99_min": min(p99s),
        "p99_max": max(p99s),
    }


def parse_sources(items: list[str], parser: argparse.ArgumentParser) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for item in items:
        label, _, path = item.partition("=")
        folder = Path(path).resolve()
        if not label or not path or "@" in label or not (folder / "taxiway").is_dir():
            parser.error(f"--src {item!r}: give LABEL=PATH, PATH holding the taxiway package")
        sources[label] = folder
    return sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        help=f"comma list of {', '.join(TOOLS)} (and taxiway-*@LABEL for each --src)",
    )
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per tool")
    parser.add_argument("--feast-python", type=Path, default=FEAST_PYTHON)
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run taxiway from this source tree, as taxiway-sqlite@LABEL etc.",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of every tool, round robin")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="collect and freeze the heap in every worker once its store is ready",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each tool, wait up to this many seconds for other work to stop",
    )
    parser.add_argument(
        "--consume",
        choices=("none", "values", "features"),
        default="none",
        help="what each timed taxiway call also reads of lookup's answer: nothing (default), "
        "every entity's values(), or every feature's FeatureValue (its status)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if not args.redis.startswith(("redis://127.0.0.1", "redis://localhost")):
        parser.error("--redis must point at this machine (127.0.0.1)")
    args.sources = parse_sources(args.src, parser)
    known = [*TOOLS, *(f"{t}@{label}" for label in args.sources for t in TOOLS[1:])]
    if args.only:
        tools = [t.strip() for t in args.only.split(",") if t.strip()]
    else:  # each taxiway tool next to its counterparts from the other trees
        suffixes = ["", *(f"@{label}" for label in args.sources)]
        tools = ["feast"] + [f"{t}{suffix}" for t in TOOLS[1:] for suffix in suffixes]
    unknown = sorted(set(tools) - set(known))
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    print(f"# bench/online_lookup.py {' '.join(sys.argv[1:])}\n\nmachine: {machine()}")
    print(f"versions: {versions('orjson', 'redis', 'hiredis', 'duckdb', 'pyarrow')}")
    print(f"code: {code_state()}")
    for label, folder in args.sources.items():
        print(f"@{label}: taxiway from {folder}")
    print(f"gc: {'collected and frozen after set-up' if args.gc_freeze else 'default'}")
    print(f"taxiway calls also read of the answer: {args.consume}")
    folder, _ = ensure_data(args.entities, args.seed)
    import numpy as np

    sample = [int(k) for k in np.random.default_rng(args.seed).choice(args.entities, SAMPLE_KEYS)]
    expected = truth(folder, sample)
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    errors: dict[str, str] = {}
    for round_ in range(args.rounds):
        for tool in tools:
            if tool in errors:
                continue
            idle = wait_idle(args.wait_idle, say=print) if args.wait_idle else None
            print(f"  round {round_ + 1}: {tool} ... {idle or ''}", flush=True)
            load, children = OtherLoad(), children_cpu_seconds()
            result = spawn(tool, args, sample)
            # others: the machine's busy CPU minus the worker's (a Redis run counts the
            # server's work as others')
            result["other_cores"] = load.cores(ours=children_cpu_seconds() - children)
            if "error" in result:
                errors[tool] = result["error"]
                print(f"  {tool} failed: {result['error']}")
                continue
            result["wrong"] = compare(result.pop("values"), expected)
            runs[tool].append(result)
    measured = [tool for tool in tools if runs[tool] and tool not in errors]
    rows = []
    for case in CASES:
        for batch in BATCHES:
            name = f"{case}/{batch}"
            row = [case, str(batch)]
            for tool in measured:
                got = summary(runs[tool], name)
                cell = f"{got['p50']:.3f} / {got['p99']:.3f}"
                if args.rounds > 1:
                    cell += f" ({got['p99_min']:.2f}–{got['p99_max']:.2f})"
                row.append(cell)
            rows.append(row)
    rounds = f"median of {args.rounds} rounds; " if args.rounds > 1 else ""
    print(
        f"\n## latency, ms (p50 / p99 over {args.calls:,} calls; {rounds}{args.entities:,} keys)\n"
    )
    print(markdown_table(["case", "entities per call", *measured], rows))
    if args.rounds > 1:
        print("\n(in brackets: the lowest and highest p99 of the rounds)")
    print()
    ok = not errors
    for tool in measured:
        wrong = sum(run["wrong"] for run in runs[tool])
        ok &= wrong == 0
        materialize = statistics.median(run["materialize_s"] for run in runs[tool])
        others = ", ".join(f"{run['other_cores']:.2f}" for run in runs[tool])
        print(
            f"  {tool}: materialize {materialize:.1f} s, values wrong on {SAMPLE_KEYS} sampled "
            f"keys: {wrong}, other work used {others} cores meanwhile"
        )
    goals = []
    for (case, batch), limit in GOALS_MS.items():
        for tool in measured:
            if tool.startswith("taxiway"):
                p99 = summary(runs[tool], f"{case}/{batch}")["p99"]
                verdict = "MET" if p99 < limit else "MISSED"
                goals.append(
                    f"    {tool} {case} x {batch}: p99 {p99:.3f} ms < {limit} ms {verdict}"
                )
    if "feast" in measured:
        for tool in measured:
            if tool.startswith("taxiway"):
                for name in runs[tool][0]["latency"]:
                    feast = summary(runs["feast"], name)["p99"]
                    mine = summary(runs[tool], name)["p99"]
                    goals.append(f"    {tool} {name}: p99 {feast / mine:.1f}x faster than Feast")
    print("\n  goals:\n" + "\n".join(goals))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with (DATA_DIR / "results.jsonl").open("a") as handle:
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "argv": sys.argv[1:],
            "code": code_state(),
            "sources": {label: str(path) for label, path in args.sources.items()},
            "gc_freeze": args.gc_freeze,
            "consume": args.consume,
            "results": runs,
            "errors": errors,
        }
        handle.write(json.dumps(record) + "\n")
    if not ok:
        print("\nDISAGREEMENT or failure: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
