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

Feast pins ``pandas<3``, so it runs in its own venv, ``bench/.data/feast-venv``, which
``--setup`` creates (pinned; kept when it is already there)::

    .venv/bin/python bench/online_lookup.py --setup
    .venv/bin/python bench/online_lookup.py                      # every tool, 2,000 calls
    .venv/bin/python bench/online_lookup.py --only taxiway-sqlite,taxiway-redis --calls 5000
    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/online_lookup.py --src before=/tmp/before/src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from online_lookup_data import BATCHES, CASES, DATA_DIR, SEED, ensure_data, truth
from online_lookup_workers import worker
from toolkit import (
    FEAST_VENV,
    ROOT,
    OtherLoad,
    append_record,
    children_cpu_seconds,
    code_state,
    handed_back,
    machine,
    markdown_table,
    versions,
    wait_idle,
)

TOOLS = ("feast", "taxiway-sqlite", "taxiway-redis")
SAMPLE_KEYS = 200
GOALS_MS = {("five-views", 1): 0.5, ("five-views", 100): 5.0, ("one-view", 100): 5.0}


# The data and the true values: online_lookup_data.py; each tool's worker (materialize, then
# the timed calls): online_lookup_workers.py. This file runs them and reports.


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
    result = handed_back(done.stdout)
    if result is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"[:600]}
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
    parser.add_argument("--feast-python", type=Path, default=FEAST_VENV.python)
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
    parser.add_argument(
        "--setup", action="store_true", help=f"create Feast's venv ({FEAST_VENV.folder}) and exit"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.setup:
        error = FEAST_VENV.setup(DATA_DIR / "feast-setup.log")
        if error:
            print(f"  feast: SETUP FAILED: {error}")
        return 1 if error else 0
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
    record = {
        "code": code_state(),
        "sources": {label: str(path) for label, path in args.sources.items()},
        "gc_freeze": args.gc_freeze,
        "consume": args.consume,
        "results": runs,
        "errors": errors,
    }
    append_record(DATA_DIR / "results.jsonl", record)
    if not ok:
        print("\nDISAGREEMENT or failure: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
