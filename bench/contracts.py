"""Contract validation benchmark: taxiway against pandera and Great Expectations.

The same table (``--rows``, default 10M, generated deterministically with numpy) is checked
with the same five rules by every tool:

1. ``order_id`` is not null;
2. ``order_id`` is unique (nulls are not duplicates);
3. ``amount >= 0``;
4. ``status`` is one of placed, shipped, returned;
5. ``email`` matches a regular expression.

Each tool runs in a fresh process (this script re-run with a hidden ``--worker TOOL`` flag)
that reads the table from one Parquet file in ``bench/.data/contracts/`` into the same frame
(``pd.read_parquet``), then validates it ``--repeat`` times. The worker reports the best
validation time and the peak resident memory of validation above the resident memory after
the frame was loaded. ``taxiway-parquet`` validates the Parquet file straight from disk,
with no frame at all. Every tool must find the failures the generator planted; a
disagreement is printed loudly and the run exits with status 1.

    .venv/bin/python bench/contracts.py                      # 10M rows, best of 3
    .venv/bin/python bench/contracts.py --rows 1000000 --only taxiway,pandera
    .venv/bin/python bench/contracts.py --memory-scaling     # taxiway from Parquet, 1M..30M
    .venv/bin/python bench/contracts.py --profile            # where taxiway's time goes
    .venv/bin/python bench/contracts.py --rounds 3 --wait-idle 300   # on a shared machine

The machine's other load (CPU used by other processes while a worker ran) is reported beside
every figure: on a shared machine, ``--wait-idle`` waits for quiet and ``--rounds`` repeats
the workers round robin so a burst of other work does not decide the result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts_data import DATA_DIR, RULES, SEED, ensure_data
from contracts_profile import profile
from contracts_tools import PEERS, TAXIWAY, TOOLS, expected_counts
from contracts_worker import worker
from toolkit import OtherLoad, hand_back, handed_back, machine, markdown_table, versions, wait_idle

MB = 1024 * 1024
VERSIONED = ("taxiway", "duckdb", "pandas", "pyarrow", "numpy", "pandera", "great_expectations")

# The table and its planted failures: contracts_data.py; each tool's rules: contracts_tools.py;
# one tool's run in a fresh process: contracts_worker.py; --profile: contracts_profile.py.


# --------------------------------------------------------------------------- workers


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds: all the times, the largest memory, the busiest machine."""
    if len(runs) == 1:
        return runs[0]
    for run in runs[1:]:
        if run["counts"] != runs[0]["counts"]:
            print(f"!!! {run['tool']} found different counts in different rounds")
    merged = max(runs, key=validate_peak).copy()
    merged["times"] = [t for run in runs for t in run["times"]]
    merged["cpu_times"] = [t for run in runs for t in run["cpu_times"]]
    merged["load_s"] = min(run["load_s"] for run in runs)
    merged["maxrss_child"] = max(run["maxrss_child"] for run in runs)
    merged["other_load"] = max(run["other_load"] for run in runs)
    return merged


def spawn(tool: str, path: Path, repeat: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter; add its peak RSS as the parent sees it."""
    import tempfile

    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool]
    command += ["--data", str(path), "--repeat", str(repeat)]
    environment = {**os.environ, "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    load = OtherLoad()
    with tempfile.TemporaryFile("w+") as errors:
        # in bench/.data, so DuckDB's spill folder (.tmp, when memory_limit is hit) stays ignored
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=environment,
            cwd=DATA_DIR,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    result = handed_back(output)
    if process.returncode != 0 or result is None:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"worker {tool} failed with exit status {process.returncode}")
    result["maxrss_child"] = usage.ru_maxrss * 1024  # RUSAGE of this one child, via wait4
    result["other_load"] = load.cores(ours=usage.ru_utime + usage.ru_stime)
    if result["network_attempts"]:
        print(f"!!! {tool} tried to open network connections: {result['network_attempts']}")
    return result


# --------------------------------------------------------------------------- report


def _mb(n: float) -> str:
    return f"{n / MB:,.0f}"


def validate_peak(result: dict[str, Any]) -> int:
    """Peak RSS during validation above the RSS once the frame was loaded and the tool set up."""
    return max(0, int(result["peak_rss"]) - int(result["rss_ready"]))


def compare(results: dict[str, dict[str, Any]], truth: dict[str, int]) -> bool:
    """Print the time, memory, failing-count and ratio tables; True when every count agrees."""
    rows = []
    for tool, result in results.items():
        times = result["times"]
        rows.append(
            [
                tool,
                f"{min(times):.2f}",
                f"{statistics.median(times):.2f}",
                f"{min(result['cpu_times']):.2f}",
                "—" if tool == "taxiway-parquet" else f"{result['load_s']:.2f}",
                f"{result['setup_s']:.2f}",
                _mb(result["rss_loaded"] - result["rss_start"]),
                _mb(validate_peak(result)),
                _mb(result["maxrss_child"]),
                f"{result['other_load']:.2f}",
            ]
        )
    print(f"\n### Time and memory (best of {len(next(iter(results.values()))['times'])})\n")
    print(
        markdown_table(
            [
                "tool",
                "validate s (best)",
                "validate s (median)",
                "validate CPU s (best)",
                "load frame s",
                "setup s",
                "frame MB",
                "validate peak MB",
                "process peak MB",
                "other load (cores)",
            ],
            rows,
        )
    )
    method = {r["peak_method"] for r in results.values()}
    print(
        "\nvalidate CPU s: CPU time of all the worker's threads during one validation (less "
        "sensitive to other load than wall time; DuckDB uses both cores, pandas one). "
        "frame MB: RSS growth from pd.read_parquet. validate peak MB: peak RSS while validating "
        "minus RSS before validating (frame loaded, schema/suite built), measured by "
        f"{'/'.join(sorted(method))}. process peak MB: the worker's whole-life peak RSS "
        "(wait4 rusage). other load: cores used on average by processes other than the "
        "benchmark while the worker ran; above ~0.1 the machine was shared and times are noisy."
    )

    agree = True
    count_rows = []
    for rule in RULES:
        row = [rule, f"{truth[rule]:,}"]
        for tool, result in results.items():
            got = result["counts"].get(rule)
            want = expected_counts(tool, truth)[rule]
            shown = f"{got:,}" if got is not None else "—"
            if tool == "gx" and rule == "unique":
                shown += " ¹"
            if got != want:
                agree = False
                shown += f" ≠ {want:,} !!!"
            row.append(shown)
        count_rows.append(row)
    print("\n### Failing rows found per rule\n")
    print(markdown_table(["rule", "planted", *results], count_rows))
    if "gx" in results:
        print(
            f"\n¹ GX counts every row of a duplicated group ({truth['unique_members']:,} rows in "
            f"{truth['unique']:,} groups); taxiway and pandera count the surplus rows "
            f"({truth['unique']:,}). Both are checked against the generator's truth."
        )
    if agree:
        print("\nAll tools agree with the planted failures, rule by rule.")
    else:
        print("\n" + "!" * 78)
        print("!!! DISAGREEMENT: some tool's failing counts differ from the planted ones (≠ above)")
        print("!" * 78)

    ratio_rows = []
    for ours in (t for t in TAXIWAY if t in results):
        mine = results[ours]
        for peer in (t for t in PEERS if t in results):
            theirs = results[peer]
            speed = min(theirs["times"]) / min(mine["times"])
            memory = validate_peak(theirs) / max(validate_peak(mine), 1)
            total = theirs["maxrss_child"] / max(mine["maxrss_child"], 1)
            ratio_rows.append([ours, peer, f"{speed:.1f}×", f"{memory:.2f}×", f"{total:.2f}×"])
    if ratio_rows:
        print("\n### Ratios (peer ÷ taxiway: above 1 means taxiway is faster / leaner)\n")
        print(
            markdown_table(
                ["taxiway run", "peer", "validate time", "validate peak", "process peak"],
                ratio_rows,
            )
        )
        _goals(results)
    return agree


def _goals(results: dict[str, dict[str, Any]]) -> None:
    if "taxiway" not in results:
        return
    ours = min(results["taxiway"]["times"])
    print()
    if "pandera" in results:
        theirs = min(results["pandera"]["times"])
        verdict = "met" if ours < theirs else "MISSED"
        print(f"goal: faster than pandera on the same frame: {verdict} ({theirs / ours:.1f}×)")
    if "gx" in results:
        theirs = min(results["gx"]["times"])
        verdict = "met" if theirs >= 10 * ours else "MISSED"
        print(
            f"goal: at least 10× faster than GX on the same frame: {verdict} ({theirs / ours:.1f}×)"
        )


def memory_scaling(
    sizes: list[int],
    seed: int,
    repeat: int,
    env: dict[str, str],
    tools: list[str],
    idle_limit: float = 0,
) -> None:
    rows = []
    for size in sizes:
        path, truth = ensure_data(size, seed)
        for tool in tools:
            if idle_limit:
                wait_idle(idle_limit, say=print)
            print(f"running {tool} on {size:,} rows ...", flush=True)
            result = spawn(tool, path, repeat, env)
            if result["counts"] != expected_counts(tool, truth):
                print(f"!!! DISAGREEMENT at {size:,} rows: {result['counts']} vs {truth}")
            best = min(result["times"])
            rows.append(
                [
                    f"{size:,}",
                    tool,
                    _mb(path.stat().st_size),
                    f"{best:.2f}",
                    f"{min(result['cpu_times']):.2f}",
                    f"{size / best / 1e6:.1f}",
                    "—"
                    if tool == "taxiway-parquet"
                    else _mb(result["rss_loaded"] - result["rss_start"]),
                    _mb(validate_peak(result)),
                    _mb(result["maxrss_child"]),
                    f"{result['other_load']:.2f}",
                ]
            )
    limit = env.get("TAXIWAY_DUCKDB_MEMORY", "DuckDB default (80% of RAM)")
    print(f"\n### Memory scaling (best of {repeat}; DuckDB memory_limit: {limit})\n")
    print(
        markdown_table(
            [
                "rows",
                "tool",
                "Parquet MB",
                "validate s",
                "CPU s",
                "M rows/s",
                "frame MB",
                "validate peak MB",
                "process peak MB",
                "other load (cores)",
            ],
            rows,
        )
    )


# --------------------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs (default 3)")
    parser.add_argument(
        "--only", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every tool's worker this many times, round robin (noisy machines)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each worker, wait up to SECONDS for other CPU work on the machine to stop",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--memory-scaling",
        action="store_true",
        help="instead: taxiway from Parquet at growing sizes (see --scaling-rows)",
    )
    parser.add_argument("--scaling-rows", default="1000000,10000000,30000000")
    parser.add_argument(
        "--scaling-tools", default="taxiway-parquet", help="tools for --memory-scaling"
    )
    parser.add_argument(
        "--memory-limit", help="DuckDB memory_limit for taxiway workers (TAXIWAY_DUCKDB_MEMORY)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="instead: where taxiway's time goes, step by step"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args.worker, args.data, args.repeat)
        hand_back(result)
        return 0

    env = {"TAXIWAY_DUCKDB_MEMORY": args.memory_limit} if args.memory_limit else {}
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print("versions: " + versions(*VERSIONED, missing=True))
    if args.memory_scaling:
        tools = [t.strip() for t in args.scaling_tools.split(",") if t.strip()]
        memory_scaling(
            _sizes(args.scaling_rows), args.seed, args.repeat, env, tools, args.wait_idle
        )
        return 0
    path, truth = ensure_data(args.rows, args.seed)
    if args.profile:
        if args.wait_idle:
            wait_idle(args.wait_idle, say=print)
        load = OtherLoad()
        profile(path, args.repeat)
        print(f"\nother load during the profile: {load.cores():.2f} cores")
        return 0

    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    for tool in tools:
        if tool not in TOOLS:
            parser.error(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    print(f"\n## Contract validation: {args.rows:,} rows, 5 rules\n")
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for round_ in range(args.rounds):
        for tool in tools:
            if args.wait_idle:
                wait_idle(args.wait_idle, say=print)
            print(f"running {tool} (round {round_ + 1} of {args.rounds}) ...", flush=True)
            run = spawn(tool, path, args.repeat, env if tool in TAXIWAY else None)
            runs[tool].append(run)
            times = ", ".join(f"{t:.2f}" for t in run["times"])
            print(f"  {times} s; other load {run['other_load']:.2f} cores", flush=True)
    results = {tool: merge(tool_runs) for tool, tool_runs in runs.items()}
    return 0 if compare(results, truth) else 1


if __name__ == "__main__":
    sys.exit(main())
