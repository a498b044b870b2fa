"""Point-in-time training sets: taxiway against Feast's offline stores and a hand-written floor.

One generated source (``--sizes``: 1M or 10M rows; 100,000 entities with 10 or 100 versions
each, 10 float columns, half of the entities with a *correction*: a second row at the same
timestamp with a later ``created``) and one event spine (``--spine``: 100k or 1M rows of
``(spine_id, entity_id, event_timestamp)``, with rows planted exactly on a source timestamp,
exactly at the ttl boundary and 1 µs past it, and 2% of entities that never occur) are
joined by every tool with the same semantics: for spine row (k, t) the source row of k with
the greatest ``event_timestamp <= t`` (ties: the newest ``created``), its values null when
``event_timestamp < t - 7d``. Tools (``--only``):

- ``taxiway``: ``build_training_set`` over a spec with a ``latest`` view (``ttl: 7d``) and an
  event spine; the label is ``kind: column, expr: spine_id`` so rows join back;
- ``taxiway-baseline``: the same, from another checkout's ``src/`` (``--baseline-src``), for
  before/after figures in one run;
- ``floor``: one hand-written DuckDB query, COPY to Parquet: an ASOF LEFT JOIN on the key
  ``{timestamp, created}`` (so ties are broken inside the join, with no dedup pass) and a
  ttl ``CASE``;
  it writes taxiway's columns (key, time, values, row id) in time order, as taxiway does;
- ``floor-lean``: the floor as it was before 2026-12-06: only the row id and the values, in no
  order (less output work than taxiway);
- ``floor-qualify``: the textbook form of the same: dedup the source with ``QUALIFY
  row_number() OVER (PARTITION BY entity, timestamp ORDER BY created DESC) = 1``, then ASOF;
- ``feast-dask``: Feast's ``get_historical_features`` with the ``file`` (dask) offline store;
- ``feast-duckdb``: the same with the ``duckdb`` (ibis) offline store.

Each run is a fresh process (this script with ``--worker``); its peak RSS comes from
``/proc/<pid>/status`` (``VmHWM``, polled, and read by the worker at its end; ``ru_maxrss``
would include the forking parent's own peak). A run is killed past ``--timeout`` seconds or
``--rss-limit`` GiB. The time reported is the call that turns the
Parquet files into a training set on disk (spec or registry set-up and imports excluded,
shown apart). Outputs are then compared row by row on ``spine_id`` against the floor, and
the floor itself against a brute-force range join on a sample of spine rows. A separate
taxiway-only figure builds window aggregates (count/sum/avg of ``f0`` over 7d and 30d),
checked against a brute-force join on a sample.

Feast pins ``pandas<3``, so it lives in its own venv (``--feast-python``, default
``bench/.data/feast-venv/bin/python``, which ``bench/online_lookup.py --setup`` creates)::

    .venv/bin/python bench/online_lookup.py --setup

    .venv/bin/python bench/features.py --wait-idle 600 --windows   # everything (~20 min)
    .venv/bin/python bench/features.py --sizes 10m --spine 1m --only taxiway,floor
    .venv/bin/python bench/features.py --windows-only --sizes 1m,10m
    .venv/bin/python bench/features.py --profile --sizes 10m      # taxiway's SQL vs rewrites

Every run appends its raw figures to ``bench/.data/features/results.jsonl``; the exit status
is 1 when any tool's rows differ from the floor's (Feast's dask store always does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from features_checks import check, check_floor, check_windows, diagnose
from features_data import (
    DATA_DIR,
    FEAST_TOOLS,
    SEED,
    TOOLS,
    WINDOW_FUNCTIONS,
    WINDOWS,
    ensure_source,
    ensure_spine,
    label,
    parse_size,
)
from features_profile import work_profile
from features_runs import MB, best, mb_text, record, run_tool, s_text
from features_workers import (
    FLOOR_LEAN_SQL,
    FLOOR_QUALIFY_SQL,
    FLOOR_SQL,
    work_feast,
    work_floor,
    work_taxiway,
)
from toolkit import FEAST_VENV, hand_back, high_water, machine, markdown_table, versions

WINDOW_SAMPLE = 20_000
FLOOR_SAMPLE = 20_000


# The data: features_data.py; each tool's worker: features_workers.py; running a worker and
# recording a case: features_runs.py; checking rows: features_checks.py; --profile's SQL:
# features_profile.py. This file dispatches a worker, runs the cases and reports.


# --------------------------------------------------------------------------- workers


def worker(args: argparse.Namespace) -> None:
    tool, source, spine, out = args.worker, Path(args.source), Path(args.spine_file), Path(args.out)
    out.unlink(missing_ok=True)
    if tool in ("taxiway", "taxiway-baseline"):  # the baseline: another checkout's src/
        result = work_taxiway(source, spine, out, args.mode, args.memory_limit)
    elif tool == "floor":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_SQL)
    elif tool == "profile":
        result = work_profile(source, spine, out)
    elif tool == "floor-lean":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_LEAN_SQL)
    elif tool == "floor-qualify":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_QUALIFY_SQL)
    else:
        result = work_feast(tool, source, spine, out)
    result["vmhwm"] = high_water()
    hand_back(result)


# --------------------------------------------------------------------------- report


def run_latest(args: argparse.Namespace, tools: list[str]) -> bool:
    ok = True
    summary: list[list[str]] = []
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            case = f"{label(rows)} x {label(spine_rows)}"
            print(f"\n## latest value, ttl 7d: {case} (source rows x spine rows)\n", flush=True)
            order = ["floor"] + [t for t in tools if t != "floor"]
            # interleaved (floor, taxiway, ..., floor, taxiway, ...) so a change of load hits
            # every tool alike; a tool that failed once is not run again
            runs_of: dict[str, list[dict[str, Any]]] = {tool: [] for tool in order}
            for attempt in range(args.repeat):
                for tool in order:
                    runs = runs_of[tool]
                    if any("error" in r for r in runs) or (tool == "feast-dask" and runs):
                        continue
                    out = DATA_DIR / "out" / f"{tool}-{rows}-{spine_rows}.parquet"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    runs.append(run_tool(args, tool, source, spine, out, "latest", attempt))
            results = {tool: best(runs) for tool, runs in runs_of.items()}
            floor = results["floor"]
            if "error" in floor:
                print(f"  the floor failed: {floor['error']}")
                return False
            verdicts: dict[str, dict[str, Any]] = {}
            if args.floor_sample:
                verdicts["floor-reference"] = check_floor(floor, source, spine, args.floor_sample)
                print(f"  floor vs brute force on a sample: {verdicts['floor-reference']}")
                ok &= verdicts["floor-reference"]["wrong"] == 0
            table_rows = []
            for tool in order:
                run = results[tool]
                if "error" in run:
                    table_rows.append([tool, run["error"], "–", mb_text(run["peak_rss"]), "–", "–"])
                    summary.append([case, tool, run["error"], "–", mb_text(run["peak_rss"]), "–"])
                    continue
                diff = check(run, floor, spine) if tool != "floor" else None
                if diff:
                    verdicts[tool] = diff
                    ok &= diff["bad"] == 0
                    if diff["bad"]:
                        diff["causes"] = diagnose(run, floor, source, spine)
                ratio = run["seconds"] / floor["seconds"]
                bad = "0" if not diff else f"{diff['bad']:,}"
                detail = (
                    "–"
                    if not diff
                    else (
                        f"missing {diff['missing']:,}, duplicated {diff['duplicated']:,}, "
                        f"wrong {diff['wrong']:,} (null for value {diff['null_not_value']:,}, "
                        f"value for null {diff['value_not_null']:,}, other value "
                        f"{diff['other_value']:,})"
                    )
                )
                table_rows.append(
                    [
                        tool,
                        s_text(run["seconds"]),
                        f"{ratio:.2f}x",
                        mb_text(run["peak_rss"]),
                        bad,
                        detail,
                    ]
                )
                summary.append(
                    [
                        case,
                        tool,
                        s_text(run["seconds"]),
                        f"{ratio:.2f}x",
                        mb_text(run["peak_rss"]),
                        bad,
                    ]
                )
            print()
            print(
                markdown_table(
                    ["tool", "time", "vs floor", "peak RSS", "wrong rows", "disagreements"],
                    table_rows,
                )
            )
            extras = []
            for tool in order:
                run = results[tool]
                if "error" in run:
                    continue
                note = (
                    f"  {tool}: runs {run['runs']}, process wall {run['wall']:.2f} s, "
                    f"other load up to {run['others_max']:.2f} cores"
                )
                if run.get("cpu_runs"):
                    note += f", CPU s of the timed part {run['cpu_runs']}"
                if "phases" in run:
                    note += f", phases {run['phases']}"
                if "setup_seconds" in run:
                    note += (
                        f", imports+apply {run['setup_seconds']:.2f} s, "
                        f"to_arrow {run['fetch_seconds']:.2f} s"
                    )
                extras.append(note)
            print("\n".join(extras))
            for tool, verdict in verdicts.items():
                for cause in verdict.get("causes", []):
                    print(f"  {tool}: {cause}")
            _goals(case, results, verdicts, rows, spine_rows)
            record("latest", case, results, verdicts)
    if len(summary) > 1:
        print("\n## summary\n")
        print(
            markdown_table(["case", "tool", "time", "vs floor", "peak RSS", "wrong rows"], summary)
        )
    return ok


def _goals(
    case: str,
    results: dict[str, dict[str, Any]],
    verdicts: dict[str, dict[str, Any]],
    rows: int,
    spine_rows: int,
) -> None:
    taxiway = results.get("taxiway")
    if not taxiway or "error" in taxiway:
        return
    feast = [r["seconds"] for t, r in results.items() if t in FEAST_TOOLS and "error" not in r]
    floor = results["floor"]["seconds"]
    lines = [f"\n  goals ({case}):"]
    if rows == 10_000_000 and spine_rows == 1_000_000:
        lines.append(
            f"    time <= 15 s: {taxiway['seconds']:.2f} s "
            f"{'MET' if taxiway['seconds'] <= 15 else 'MISSED'}"
        )
        lines.append(
            f"    peak RSS <= 2 GB: {mb_text(taxiway['peak_rss'])} "
            f"{'MET' if taxiway['peak_rss'] <= 2 * 1024 * MB else 'MISSED'}"
        )
    if feast:
        speedup = min(feast) / taxiway["seconds"]
        lines.append(
            f"    >= 2x faster than Feast's fastest store: {speedup:.1f}x "
            f"{'MET' if speedup >= 2 else 'MISSED'}"
        )
    ratio = taxiway["seconds"] / floor
    lines.append(
        f"    within 1.3x of the floor: {ratio:.2f}x {'MET' if ratio <= 1.3 else 'MISSED'}"
    )
    wrong = verdicts.get("taxiway", {}).get("bad")
    if wrong is not None:
        lines.append(f"    zero wrong rows: {wrong} {'MET' if wrong == 0 else 'MISSED'}")
    print("\n".join(lines))


def run_windows(args: argparse.Namespace) -> bool:
    ok = True
    table_rows = []
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            case = f"{label(rows)} x {label(spine_rows)}"
            runs = []
            for _ in range(args.repeat):
                out = DATA_DIR / "out" / f"taxiway-windows-{rows}-{spine_rows}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                run = run_tool(args, "taxiway", source, spine, out, "windows", len(runs))
                runs.append(run)
                if "error" in run:
                    break
            run = best(runs)
            if "error" in run:
                table_rows.append([case, run["error"], mb_text(run["peak_rss"]), "–", "–"])
                ok = False
                continue
            verdict = check_windows(
                Path(run["out"]), source, spine, args.floor_sample or WINDOW_SAMPLE
            )
            ok &= verdict["wrong"] == 0
            table_rows.append(
                [
                    case,
                    s_text(run["seconds"]),
                    mb_text(run["peak_rss"]),
                    f"{verdict['wrong']} of {verdict['sampled']:,}",
                    json.dumps(run["phases"]),
                ]
            )
            print(f"  windows {case}: {s_text(run['seconds'])}, runs {run['runs']}", flush=True)
            record("windows", case, {"taxiway": run}, {"sample": verdict})
    print(
        f"\n## window aggregates ({', '.join(WINDOW_FUNCTIONS.values())} x {', '.join(WINDOWS)}),"
        " taxiway only (Feast has no offline window aggregates)\n"
    )
    print(
        markdown_table(
            ["source x spine", "time", "peak RSS", "wrong (sample vs brute force)", "phases"],
            table_rows,
        )
    )
    return ok


# --------------------------------------------------------------------------- profile


def run_profile(args: argparse.Namespace) -> None:
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            out = DATA_DIR / "out" / f"profile-{rows}-{spine_rows}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            run = run_tool(args, "profile", source, spine, out, "latest", 0)
            case = f"{label(rows)} x {label(spine_rows)}"
            print(f"\n## the latest view's SQL and rewrites: {case} (best of 2)\n")
            if "error" in run:
                print(run["error"])
                continue
            print(
                markdown_table(
                    ["formulation", "time", "rows differing from taxiway's"],
                    [
                        [name, s_text(t), str(run["differs"].get(name, "–"))]
                        for name, t in run["timings"].items()
                    ],
                )
            )
            record("profile", case, {"profile": run}, {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1m,10m", help="source rows, e.g. 1m,10m")
    parser.add_argument("--spine", default="100k,1m", help="spine rows, e.g. 100k,1m")
    parser.add_argument(
        "--only",
        default=",".join(t for t in TOOLS if t != "taxiway-baseline"),
        help=f"any of {','.join(TOOLS)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool but feast-dask (run once)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument(
        "--rss-limit", type=float, default=12, help="GiB of RSS at which a run is killed"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each run, wait up to this many seconds for other work to stop",
    )
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 2GB")
    parser.add_argument("--feast-python", type=Path, default=FEAST_VENV.python)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="src/ of another taxiway checkout, run as tool taxiway-baseline (before/after: "
        "git worktree add /tmp/before <commit>; --baseline-src /tmp/before/src)",
    )
    parser.add_argument(
        "--floor-sample",
        type=int,
        default=FLOOR_SAMPLE,
        help="spine rows checked by brute force (0: skip)",
    )
    parser.add_argument("--windows", action="store_true", help="also run the window figure")
    parser.add_argument("--windows-only", action="store_true", help="only the window figure")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="time taxiway's latest-view SQL against rewrites, on its own staged inputs",
    )
    parser.add_argument("--worker", choices=(*TOOLS, "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--spine-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="latest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.spine = [parse_size(s) for s in args.spine.split(",") if s.strip()]
    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    if "taxiway-baseline" in tools and not args.baseline_src:
        parser.error("--only taxiway-baseline needs --baseline-src")
    if any(t in FEAST_TOOLS for t in tools) and not Path(args.feast_python).exists():
        parser.error(f"no Feast interpreter at {args.feast_python} (see the module docstring)")
    print(
        f"# bench/features.py {' '.join(sys.argv[1:])}\n\nmachine: {machine()}, {versions('duckdb')}"
    )
    ok = True
    if args.profile:
        run_profile(args)
        return 0
    if not args.windows_only:
        ok &= run_latest(args, tools)
    if args.windows or args.windows_only:
        ok &= run_windows(args)
    if not ok:
        print("\nDISAGREEMENT: some tool's rows differ from the floor (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
