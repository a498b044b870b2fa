"""Monitoring: NannyML's CBPE against taxiway's quality estimate, and whether the monitor keeps
up with a growing prediction log.

``estimate`` (``monitor_estimate.py``): one LightGBM model, one reference and ``--chunks``
chunks of ``--chunk-rows`` scores, half of them under a growing covariate shift; NannyML's
``CBPE`` (its own venv, ``bench/.data/nannyml-venv``) and taxiway's ``quality_reference`` +
``estimated`` estimate each chunk's ROC AUC from its scores alone. Printed per chunk: the
realised ROC AUC (from the labels), each estimate and its absolute error; then each tool's
mean and largest error, its fit time (training's job) and its estimate time, and the ratio.

``follow`` (``monitor_follow.py``): a writer process appends ``--rate`` predictions/s (default
5,000) for ``--seconds`` (60) to a log through taxiway's ``PredictionLog`` while a monitor
process reruns ``WindowStore.update`` every ``--every`` seconds (5). Printed: the records
written and counted, the lag from a record's write to its presence in a window (p50, p99,
max), each run's duration, and the CPU share of the monitor and of the writer.

``fromlog``: ``bench/drift.py``'s "taxiway (from the log)" over ``--log-rows`` x 25 columns
(the same data, reference and worker), twice in fresh processes: over the JSON lines alone,
then after the log's columnar sidecars are written the way the service writes them as its
files rotate (in a process of their own, timed apart: the service's background cost, CPU
seconds per 1M records). The log's last file is the one the writer had open when it closed:
the service compacts only rotated files, so that one is read as JSON in both runs.

Each part runs in fresh processes; results are appended to ``bench/.data/monitor/results.jsonl``::

    .venv/bin/python bench/monitor.py --setup          # NannyML's venv
    .venv/bin/python bench/monitor.py                  # both parts, default sizes (~2 min)
    .venv/bin/python bench/monitor.py --only estimate --chunks 10 --chunk-rows 2000
    .venv/bin/python bench/monitor.py --only follow --rate 5000 --seconds 60 --every 5
    .venv/bin/python bench/monitor.py --only fromlog --log-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from toolkit import (
    NANNYML_VENV,
    ROOT,
    OtherLoad,
    append_record,
    children_cpu_seconds,
    code_state,
    command_line,
    hand_back,
    handed_back,
    machine,
    markdown_table,
    versions,
)

DATA_DIR = Path(__file__).resolve().parent / ".data" / "monitor"
PARTS = ("estimate", "follow", "fromlog")
BENCH = Path(__file__).resolve().parent
SEED = 15


def spawn(role: str, args: argparse.Namespace, python: str | None = None) -> subprocess.Popen[str]:
    command = [python or sys.executable, str(Path(__file__).resolve()), "--worker", role]
    command += ["--options", json.dumps(vars(args), default=str)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **NANNYML_VENV.env}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def collect(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    result = handed_back(out)
    if result is None:
        tail = (err or out).strip().splitlines()[-6:]
        return {"error": f"exit {process.returncode}: {' | '.join(tail)}"[:900]}
    return result


def worker(role: str, options: dict[str, Any]) -> None:
    folder = DATA_DIR
    if role in ("taxiway", "nannyml"):
        import monitor_estimate

        path = Path(options["estimate_path"])
        hand_back(getattr(monitor_estimate, role)(path))
    elif role == "writer":
        import monitor_follow

        result = monitor_follow.writer(
            folder / "follow", options["rate"], options["seconds"], options["seed"]
        )
        hand_back(result)
    elif role == "follow":
        import monitor_follow

        hand_back(monitor_follow.monitor(folder / "follow", options["every"], options["seconds"]))
    else:
        raise SystemExit(f"unknown worker {role}")


def run_estimate(args: argparse.Namespace) -> dict[str, Any]:
    import monitor_estimate

    name = f"estimate-{args.train}-{args.reference}-{args.chunks}x{args.chunk_rows}-s{args.seed}"
    path = DATA_DIR / f"{name}.npz"
    print(f"\n  estimate: model and scores ({path.name}) ...", flush=True)
    monitor_estimate.make(path, args.train, args.reference, args.chunks, args.chunk_rows, args.seed)
    args.estimate_path = str(path)
    realised = monitor_estimate.realised(path)
    import numpy as np

    shifts = np.load(path)["shifts"].tolist()
    results: dict[str, dict[str, Any]] = {}
    for tool in ("taxiway", "nannyml"):
        if tool not in args.tools:
            continue
        print(f"  {tool} ...", flush=True)
        python = str(NANNYML_VENV.python) if tool == "nannyml" else None
        load = OtherLoad()
        results[tool] = collect(spawn(tool, args, python), args.timeout)
        results[tool]["other_cores"] = load.cores()
        if "error" in results[tool]:
            print(f"  {tool} FAILED: {results[tool]['error']}")
    tools = [t for t in results if "error" not in results[t]]
    rows = []
    errors: dict[str, list[float]] = {t: [] for t in tools}
    for i, truth in enumerate(realised):
        row = [str(i), f"{shifts[i]:.1f}", f"{truth:.4f}"]
        for tool in tools:
            value = results[tool]["estimates"][i]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                row.append("-")
                continue
            errors[tool].append(abs(value - truth))
            row.append(f"{value:.4f} ({abs(value - truth):.4f})")
        rows.append(row)
    print(f"\n## estimated ROC AUC per chunk ({args.chunks} x {args.chunk_rows:,} rows)\n")
    header = ["chunk", "shift", "realised", *(f"{t} (abs error)" for t in tools)]
    print(markdown_table(header, rows))
    print()
    summary: dict[str, Any] = {"realised": realised, "shifts": shifts, "results": results}
    for tool in tools:
        r, e = results[tool], errors[tool]
        summary[f"{tool}_mae"] = sum(e) / len(e) if e else None
        note = f" (trusted: {r['trusted']})" if "trusted" in r else f" (nannyml {r.get('version')})"
        print(
            f"  {tool}{note}: mean abs error {summary[f'{tool}_mae']:.4f}, largest {max(e):.4f}; "
            f"fit {r['fit_s']:.3f} s, estimate {r['seconds']:.3f} s, other work "
            f"{r['other_cores']:.2f} cores"
        )
    if len(tools) == 2:
        ratio = results["nannyml"]["seconds"] / max(results["taxiway"]["seconds"], 1e-9)
        fit = results["nannyml"]["fit_s"] / max(results["taxiway"]["fit_s"], 1e-9)
        summary["ratio_estimate"], summary["ratio_fit"] = ratio, fit
        print(f"  nannyml / taxiway: estimate {ratio:.1f}x the time, fit {fit:.1f}x")
    return summary


def run_follow(args: argparse.Namespace) -> dict[str, Any]:
    import monitor_follow

    folder = DATA_DIR / "follow"
    for stale in ("log", "windows"):  # before either process starts: the monitor waits for a log
        shutil.rmtree(folder / stale, ignore_errors=True)
    (folder / monitor_follow.DONE).unlink(missing_ok=True)
    (folder / monitor_follow.READY).unlink(missing_ok=True)
    print("\n  follow: reference profile ...", flush=True)
    monitor_follow.build_reference(folder, args.seed)
    print(f"  follow: {args.rate:,}/s for {args.seconds:.0f} s, monitor every {args.every:g} s")
    load = OtherLoad()
    writer = spawn("writer", args)
    time.sleep(0.2)
    follower = spawn("follow", args)
    written = collect(writer, args.seconds + 300)
    followed = collect(follower, args.seconds + 300)
    others = load.cores(ours=written.get("cpu_s", 0.0) + followed.get("cpu_s", 0.0))
    for name, result in (("writer", written), ("monitor", followed)):
        if "error" in result:
            print(f"  {name} FAILED: {result['error']}")
            return {"error": result["error"]}
    runs = followed["runs"]
    lag = monitor_follow.lags(written["timeline"], runs)
    durations = [run["end"] - run["start"] for run in runs]
    final = runs[-1]["counted"] if runs else 0
    monitor_share = followed["cpu_s"] / followed["wall"]
    writer_share = written["cpu_s"] / written["wall"]
    print(f"\n## keeping up: {args.rate:,} predictions/s for {args.seconds:.0f} s\n")
    print(
        markdown_table(
            ["what", "value"],
            [
                ["records written", f"{written['written']:,} ({written['written'] / written['wall']:,.0f}/s, {written['files']} files, {written['log_bytes'] / 2**20:,.0f} MiB)"],
                ["records in the windows at the end", f"{final:,}"],
                ["lag p50 / p99 / max (s)", f"{lag.get('p50', math.nan):.2f} / {lag.get('p99', math.nan):.2f} / {lag.get('max', math.nan):.2f}"],
                ["monitor runs", f"{len(runs)} every {args.every:g} s"],
                ["run duration p50 / max (s)", f"{sorted(durations)[len(durations) // 2]:.3f} / {max(durations):.3f}" if durations else "-"],
                ["monitor CPU share (cores)", f"{monitor_share:.3f}"],
                ["writer CPU share (cores)", f"{writer_share:.3f}"],
                ["monitor peak RSS (MiB)", f"{followed['peak_rss'] / 2**20:,.0f}"],
                ["other work meanwhile (cores)", f"{others:.2f}"],
            ],
        )
    )  # fmt: skip
    first, before, shown = runs[0]["start"] if runs else 0.0, 0, []
    for run in runs:
        shown.append(
            f"t+{run['start'] - first:.0f}s +{run['counted'] - before:,.0f} in "
            f"{run['end'] - run['start']:.2f}s (cpu {run['cpu_s']:.2f}s)"
        )
        before = run["counted"]
    print("\n  runs: " + "; ".join(shown))
    kept_up = final == written["written"] and lag.get("never_counted", 1) == 0
    print(f"\n  every record counted: {'yes' if kept_up else 'NO'}")
    written.pop("timeline")
    return {
        "writer": written,
        "monitor": followed,
        "lag": lag,
        "monitor_cpu_share": monitor_share,
        "writer_cpu_share": writer_share,
        "kept_up": kept_up,
    }


COMPACT = """
import json, sys, time
from pathlib import Path
from taxiway.monitoring.columnar import compact_folder
from taxiway.serving.log import log_files
folder = Path(sys.argv[1])
last = log_files(folder)[-1]  # open when the writer closed: the service never compacts it
began, cpu = time.perf_counter(), time.process_time()
written = [str(p) for p in compact_folder(folder, exclude=[last])]
print(json.dumps({"seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu,
                  "written": written}))
"""
ENSURE = """
import sys
sys.path.insert(0, sys.argv[1])
from drift_data import ensure_data, ensure_log
print(ensure_log(ensure_data(int(sys.argv[2]), 25)))
"""


def _drift_worker(tool: str, folder: Path, timeout: float) -> dict[str, Any]:
    """One of bench/drift.py's workers in a fresh process: its handed-back result."""
    command = [sys.executable, str(BENCH / "drift.py"), "--worker", tool, "--folder", str(folder)]
    command += ["--options", json.dumps({"statistic": "psi"})]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    result = handed_back(done.stdout)
    if result is None:
        return {"error": (done.stderr or done.stdout).strip()[-900:]}
    return result


def run_fromlog(args: argparse.Namespace) -> dict[str, Any]:
    """The monitor from the log over JSON lines, then over the columnar sidecars."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    made = subprocess.run(
        [sys.executable, "-c", ENSURE, str(BENCH), str(args.log_rows)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    log = Path(made.stdout.strip().splitlines()[-1])
    folder = log.parent
    reference = _drift_worker("taxiway-reference", folder, args.timeout)
    if "error" in reference:
        return reference
    columns = log / "columns"
    shutil.rmtree(columns, ignore_errors=True)  # the writer's own, if it wrote some

    def timed(run: Any) -> tuple[Any, float]:
        load, children = OtherLoad(), children_cpu_seconds()
        result = run()
        return result, load.cores(children_cpu_seconds() - children)  # the worker's is ours

    plain, plain_others = timed(lambda: _drift_worker("taxiway-log", folder, args.timeout))
    command = [sys.executable, "-c", COMPACT, str(log)]
    built, build_others = timed(
        lambda: subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    )
    background = json.loads(built.stdout.strip().splitlines()[-1])
    sidecars, sidecar_others = timed(lambda: _drift_worker("taxiway-log", folder, args.timeout))
    if "error" in plain or "error" in sidecars:
        return {"error": plain.get("error") or sidecars.get("error")}
    rows = args.log_rows
    json_bytes = sum(p.stat().st_size for p in log.glob("predictions-*.jsonl"))
    arrow_bytes = sum(Path(p).stat().st_size for p in background["written"])
    same = plain["verdicts"] == sidecars["verdicts"]
    print(f"\n## The monitor from the log: {rows:,} x 25, {json_bytes / 2**20:,.0f} MiB of JSON\n")
    table = [
        ["JSON lines only", f"{plain['seconds']:.2f} s",
         f"{plain['peak_rss'] / 2**20:,.0f} MiB", f"{plain_others:.2f}"],
        [f"columnar sidecars ({len(background['written'])} rotated files)",
         f"{sidecars['seconds']:.2f} s", f"{sidecars['peak_rss'] / 2**20:,.0f} MiB",
         f"{sidecar_others:.2f}"],
    ]  # fmt: skip
    print(markdown_table(["run", "time", "peak RSS", "others (cores)"], table))
    print(
        f"\nthe service's background cost (sidecars of the rotated files, "
        f"{arrow_bytes / 2**20:,.0f} MiB): {background['seconds']:.1f} s, CPU "
        f"{background['cpu']:.1f} s (others {build_others:.2f} cores); same verdicts: {same}"
    )
    return {
        "rows": rows,
        "json": plain,
        "sidecars": sidecars,
        "background": background,
        "arrow_bytes": arrow_bytes,
        "json_bytes": json_bytes,
        "same_verdicts": same,
        "others": [plain_others, build_others, sidecar_others],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--no-nannyml", action="store_true", help="taxiway's estimate alone")
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=5_000, help="predictions per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="monitor reruns (seconds)")
    parser.add_argument("--log-rows", type=int, default=1_000_000, help="fromlog: rows x 25")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    parser.add_argument("--setup", action="store_true", help="create NannyML's venv and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.options))
        return 0
    if args.setup:
        error = NANNYML_VENV.setup(DATA_DIR / "nannyml-setup.log")
        print(f"  nannyml: {'SETUP FAILED: ' + error if error else 'ready'}")
        print(f"  {NANNYML_VENV.versions('nannyml', 'pandas', 'numpy', 'scikit-learn')}")
        return 1 if error else 0
    parts = [p.strip() for p in (args.only or ",".join(PARTS)).split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.tools = ["taxiway"] if args.no_nannyml else ["taxiway", "nannyml"]
    if "estimate" in parts and not args.no_nannyml and (why := NANNYML_VENV.missing()):
        parser.error(f"nannyml cannot run: {why} (or pass --no-nannyml)")
    print(f"# {command_line()}\n\nmachine: {machine()}")
    print(f"versions: {versions('numpy', 'lightgbm', 'datasketches', 'pyarrow', 'orjson')}")
    if "nannyml" in args.tools and "estimate" in parts:
        print(f"nannyml venv: {NANNYML_VENV.versions('nannyml', 'pandas', 'scikit-learn')}")
    print(f"code: {code_state()}")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"code": code_state()}
    ok = True
    if "estimate" in parts:
        record["estimate"] = run_estimate(args)
        ok &= all("error" not in r for r in record["estimate"]["results"].values())
    if "follow" in parts:
        record["follow"] = run_follow(args)
        ok &= bool(record["follow"].get("kept_up"))
    if "fromlog" in parts:
        record["fromlog"] = run_fromlog(args)
        ok &= "error" not in record["fromlog"]
    append_record(DATA_DIR / "results.jsonl", record)
    print(f"\nrecorded in {DATA_DIR / 'results.jsonl'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
