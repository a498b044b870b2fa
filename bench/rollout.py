"""The gradual rollout (issue 16): what its statistics cost in units, and what they save.

Statistics part (``--part statistics``), on simulated conversions, vectorised over rollouts:

- **sample**: the fixed-horizon units per arm to detect 10% -> 10.5% conversion at alpha 0.05
  (two-sided) and 80% power (``power.fixed_horizon_units``), beside the sequential test's
  measured sample to decision on ``--runs`` simulated rollouts with that true lift, even split,
  looked at after every ``--batch`` units per arm up to ``--cap`` times the fixed horizon: the
  confidence sequence (``sequences``, tuned to the fixed-horizon sample) decides at its first
  look outside 0, after the floor of 100 units and 10 events per arm. Reported: the share
  decided each way, the mean and median units per arm to decision, and the 80th percentile
  (the sample by which 80% of rollouts were promoted: the sequential test's "80% power").
- **A/A**: ``--aa-runs`` rollouts with no true difference, looked at ``--looks`` times up to the
  fixed-horizon sample, even split and a 1-5-10-25-50% ramp: the share the sequential test
  promotes (interval above 0 at some look) against a naive z-test repeated at every look.

Check part (``--part check``, :mod:`rollout_check`): the real ``Controller.check`` over
``--answers`` logged answers and ``--outcomes`` outcomes (generated once under
``bench/.data/rollout/``), in a fresh process: the first check when they are the history
before the rollout, the first check over the rollout's own answers, a check with nothing
new, a check after ``--tail-answers``/``--tail-outcomes`` more, the analysis and verdict
alone, and the worker's peak RSS. Before it, the logs' columnar sidecars are written the way
the service writes them as its files rotate, in a process of their own, and timed apart as the
service's background cost (``--columns none`` removes them: the check parses the JSON lines).

SRM part (``--part srm``): the sample-ratio-mismatch halt under continuous looking, through the
analysis's own :func:`~taxiway.rollout.analysis.split_check`: ``--srm-runs`` simulated
rollouts over the steps 1, 5, 10, 25, 50%, ``--srm-looks`` checks per step, each after a batch
of ``--srm-batch`` new units assigned at the step's share (A/A: the assignment is right), the
units first answered at each step counted per arm as the analysis counts them. Reported: the
share of rollouts halted at some check by the chi-square at p < 0.001 (the rule before) and
by the sequential test (the rule now), and, with an assignment bug sending a fifth fewer units
to the candidate than promised, the share caught and the check that caught it.

Assignment part (``--part assignment``, :mod:`rollout_assign`): CPU time per answer of
``Service.answer`` in paired blocks with the rollout's arms off and on, an A/A control (off
and off), and ``arm_for``, ``Assigner.arm`` and ``Arms.arm_of`` per call, on the retail shop
(built once under ``bench/.data/rollout/shop/``, trained twice).

Interleaving part (``--part interleaving``, :mod:`rollout_interleave`): users needed to find
a better ranking (``--lift`` on click-through per impression) by team-draft interleaving against
the A/B test on CTR per impression, the same simulated users in the same run, and both on A/A.

Results are printed and appended to ``bench/.data/rollout/results.jsonl``::

    .venv/bin/python bench/rollout.py --part statistics
    .venv/bin/python bench/rollout.py --part statistics --runs 500 --aa-runs 500   # a quick look
    .venv/bin/python bench/rollout.py --part check --answers 10000000 --outcomes 1000000
    .venv/bin/python bench/rollout.py --part assignment --pairs 80 --block 1000
    .venv/bin/python bench/rollout.py --part srm --srm-runs 500 --srm-looks 40
    .venv/bin/python bench/rollout.py --part interleaving --il-runs 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rollout_assign import SHOP, build_shop, measure
from rollout_check import generate
from rollout_interleave import add_arguments, run_interleaving
from toolkit import (
    OtherLoad,
    append_record,
    children_cpu_seconds,
    code_state,
    command_line,
    handed_back,
    machine,
    markdown_table,
)

from taxiway.rollout.analysis import split_check
from taxiway.rollout.statistics import fixed_horizon_units, half_width
from taxiway.rollout.statistics.tails import normal_quantile

Floats = npt.NDArray[np.float64]
RESULTS = Path(__file__).resolve().parent / ".data" / "rollout" / "results.jsonl"
P0, P1 = 0.10, 0.105  # the conversion lift
ALPHA, POWER = 0.05, 0.80
MIN_UNITS, MIN_EVENTS = 100, 10  # the floor before any decision
RAMP = (0.01, 0.05, 0.10, 0.25, 0.50)


@dataclass(frozen=True)
class Looks:
    """Cumulative numbers per rollout (rows) and look (columns)."""

    n_control: Floats
    n_candidate: Floats
    diff: Floats
    var: Floats  # the library's: the larger arm variance times (1/n_c + 1/n_t)
    var_own: Floats  # each arm's own variance: what a textbook z-test uses
    decidable: npt.NDArray[np.bool_]


def simulate(
    rng: np.random.Generator, runs: int, control: Floats, candidate: Floats, p0: float, p1: float
) -> Looks:
    """Conversions of ``runs`` rollouts; ``control``/``candidate``: units added at each look."""
    looks = control.size
    n_c = np.broadcast_to(np.cumsum(control), (runs, looks)).astype(np.float64)
    n_t = np.broadcast_to(np.cumsum(candidate), (runs, looks)).astype(np.float64)
    events_c = rng.binomial(control.astype(np.int64), p0, (runs, looks)).cumsum(axis=1)
    events_t = rng.binomial(candidate.astype(np.int64), p1, (runs, looks)).cumsum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c, mean_t = events_c / n_c, events_t / n_t
        var_c = mean_c * (1 - mean_c) * n_c / (n_c - 1)
        var_t = mean_t * (1 - mean_t) * n_t / (n_t - 1)
        var = np.maximum(var_c, var_t) * (1 / n_c + 1 / n_t)
        var_own = var_c / n_c + var_t / n_t
    decidable = (np.minimum(n_c, n_t) >= MIN_UNITS) & (np.minimum(events_c, events_t) >= MIN_EVENTS)
    return Looks(n_c, n_t, mean_t - mean_c, var, var_own, decidable)


def sequential(looks: Looks, planned_n: int) -> tuple[Floats, Floats]:
    """The confidence sequence at every look (``sequences.half_width``, two-sided)."""
    width = half_width(looks.var, looks.n_control + looks.n_candidate, ALPHA, 2.0 * planned_n)
    return looks.diff - width, looks.diff + width


def naive(looks: Looks) -> tuple[Floats, Floats]:
    """A fixed-horizon 95% z-interval, recomputed at every look."""
    width = normal_quantile(1 - ALPHA / 2) * np.sqrt(looks.var_own)
    return looks.diff - width, looks.diff + width


def first(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """The first look where ``mask`` holds in each row, -1 where it never does."""
    hit = mask.any(axis=1)
    return np.where(hit, mask.argmax(axis=1), -1).astype(np.int64)


def sample_to_decision(args: argparse.Namespace, fixed: int) -> dict[str, Any]:
    """The sequential test's units per arm to decision with the true lift P0 -> P1."""
    rng = np.random.default_rng(args.seed)
    looks = int(np.ceil(args.cap * fixed / args.batch))
    batch = np.full(looks, args.batch, dtype=np.float64)
    sim = simulate(rng, args.runs, batch, batch, P0, P1)
    low, high = sequential(sim, fixed)
    better = first((low > 0) & sim.decidable)
    worse = first((high < 0) & sim.decidable)
    decided_better = (better >= 0) & ((worse < 0) | (better < worse))
    decided_worse = (worse >= 0) & ~decided_better
    stop = np.where(decided_better, better, np.where(decided_worse, worse, looks - 1))
    units = sim.n_control[np.arange(args.runs), stop]
    promoted = np.sort(np.where(decided_better, units, np.inf))
    p80 = promoted[int(np.ceil(0.8 * args.runs)) - 1]
    decided = decided_better | decided_worse
    return {
        "runs": args.runs,
        "batch": args.batch,
        "cap_units": int(looks * args.batch),
        "better": float(decided_better.mean()),
        "worse": float(decided_worse.mean()),
        "undecided": float(1 - decided.mean()),
        "mean_decided": float(units[decided].mean()) if decided.any() else None,
        "median_decided": float(np.median(units[decided])) if decided.any() else None,
        "mean_capped": float(units.mean()),
        "p80_promoted": float(p80) if np.isfinite(p80) else None,
        "promoted_by_fixed": float(np.mean(decided_better & (units <= fixed))),
    }


def false_promotions(args: argparse.Namespace, fixed: int) -> list[dict[str, Any]]:
    """A/A: the share of rollouts each procedure promotes (or declares either way)."""
    rng = np.random.default_rng(args.seed + 1)
    per_look = fixed / args.looks  # units per arm per look when the split is even
    allocations: dict[str, tuple[Floats, Floats]] = {
        "even split": (np.full(args.looks, per_look), np.full(args.looks, per_look))
    }
    shares = np.repeat(RAMP, int(np.ceil(args.looks / len(RAMP))))[: args.looks]
    total = 2 * per_look
    allocations["1-50% ramp"] = (np.round(total * (1 - shares)), np.round(total * shares))
    rows = []
    for name, (control, candidate) in allocations.items():
        sim = simulate(rng, args.aa_runs, control, candidate, P0, P0)
        for procedure, (low, high) in (
            ("sequential", sequential(sim, fixed)),
            ("naive z-test", naive(sim)),
        ):
            promoted = np.any((low > 0) & sim.decidable, axis=1)
            declared = np.any(((low > 0) | (high < 0)) & sim.decidable, axis=1)
            rows.append(
                {
                    "allocation": name,
                    "procedure": procedure,
                    "promoted": float(promoted.mean()),
                    "declared": float(declared.mean()),
                }
            )
    return rows


def run_statistics(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    fixed = fixed_horizon_units(P0, P1, ALPHA, POWER)
    sample = sample_to_decision(args, fixed)
    aa = false_promotions(args, fixed)
    seconds = time.perf_counter() - began

    def count(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    print(f"\n## Sample to detect {P0:.0%} -> {P1:.1%} (alpha {ALPHA}, two-sided)\n")
    print(f"fixed horizon at {POWER:.0%} power: {fixed:,} units per arm")
    print(
        f"sequential, {sample['runs']:,} rollouts with the true lift, a look every "
        f"{args.batch:,} units per arm up to {sample['cap_units']:,}:"
    )
    print(
        markdown_table(
            [
                "promoted",
                "rolled back",
                "undecided",
                f"promoted by {fixed:,}",
                "mean to decision",
                "median",
                "80% promoted by",
                "mean (undecided at the cap)",
            ],
            [
                [
                    f"{sample['better']:.1%}",
                    f"{sample['worse']:.1%}",
                    f"{sample['undecided']:.1%}",
                    f"{sample['promoted_by_fixed']:.1%}",
                    count(sample["mean_decided"]),
                    count(sample["median_decided"]),
                    count(sample["p80_promoted"]),
                    count(sample["mean_capped"]),
                ]
            ],
        )
    )
    print(
        f"\n## A/A: {args.aa_runs:,} rollouts, {args.looks} looks up to {fixed:,} units per "
        "arm, floor 100 units and 10 events per arm\n"
    )
    print(
        markdown_table(
            ["allocation", "procedure", "promoted (interval above 0)", "declared either way"],
            [
                [r["allocation"], r["procedure"], f"{r['promoted']:.1%}", f"{r['declared']:.1%}"]
                for r in aa
            ],
        )
    )
    print(f"\n({seconds:.1f} s)")
    return {"fixed_horizon": fixed, "sample": sample, "aa": aa, "seconds": seconds}


COMPACT = """
import json, sys, time
from pathlib import Path
from taxiway.monitoring.columnar import compact_folder
began, cpu = time.perf_counter(), time.process_time()
written = [str(p) for folder in sys.argv[1:] for p in compact_folder(Path(folder))]
print(json.dumps({"seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu,
                  "written": written}))
"""


def build_columns(root: Path, records: int, mode: str) -> dict[str, Any] | None:
    """The columnar sidecars of the logs, written the way the service writes them (one
    thread per closed file, :func:`taxiway.monitoring.columnar.compact_folder`) in a process of
    their own, timed apart: the service's background cost, not the check's. ``mode`` ``none``
    removes them (the check then parses the JSON, as before sidecars)."""
    folders = [root / "predictions", root / "outcomes"]
    for folder in folders:
        shutil.rmtree(folder / "columns", ignore_errors=True)
    if mode == "none":
        print("\nno columnar sidecars: the check parses the JSON lines")
        return None
    load, children = OtherLoad(), children_cpu_seconds()
    argv = [sys.executable, "-c", COMPACT, *map(str, folders)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    built: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    others = load.cores(children_cpu_seconds() - children)
    size = sum(Path(p).stat().st_size for p in built["written"])
    logs = sum(p.stat().st_size for f in folders for p in f.glob("predictions-*.jsonl"))
    print(
        f"\n## The service's background cost: columnar sidecars of {records:,} records "
        f"(others used {others:.2f} cores meanwhile)\n\n"
        f"{len(built['written'])} files, {logs / 2**30:.2f} GiB of JSON lines -> "
        f"{size / 2**30:.2f} GiB of Arrow: {built['seconds']:.1f} s, CPU {built['cpu']:.1f} s "
        f"(**{built['cpu'] / records * 1e6:.2f} CPU s per 1M records**, one thread, paid in "
        "the service's background as files rotate; the check below no longer parses them)"
    )
    return {**built, "bytes": size, "log_bytes": logs, "others": others}


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    root = RESULTS.parent / f"check-{args.answers}-{args.outcomes}"
    generated = generate(root, args.answers, args.outcomes)
    if generated:
        print(f"\ngenerated {root} in {generated:.0f} s")
    columns = build_columns(root, args.answers + args.outcomes, args.columns)
    load, children = OtherLoad(), children_cpu_seconds()
    worker = Path(__file__).resolve().parent / "rollout_check.py"
    argv = [sys.executable, str(worker), "--root", str(root)]
    argv += ["--tail-answers", str(args.tail_answers), "--tail-outcomes", str(args.tail_outcomes)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    result = handed_back(done.stdout)
    if done.returncode or result is None:
        raise SystemExit(f"the check worker failed:\n{done.stdout}\n{done.stderr}")
    others = load.cores(children_cpu_seconds() - children)  # the worker's CPU is ours
    print(
        f"\n## The rollout check: {args.answers:,} answers, {args.outcomes:,} outcomes "
        f"(others used {others:.2f} cores meanwhile)\n"
    )
    rows = []
    for key, label in (
        ("history", "first check, the answers are pre-rollout history"),
        ("first", "first check over the rollout's own answers"),
        ("nothing_new", "a check with nothing new"),
        ("tail", f"after +{args.tail_answers:,} answers, +{args.tail_outcomes:,} outcomes"),
    ):
        check = result[key]
        answers = check["answers"]
        rows.append(
            [label, f"{check['cpu']:.2f} s", f"{check['seconds']:.2f} s", f"{check['units']:,}",
             f"{answers['control']:,} / {answers['candidate']:,}", check["verdict"]]
        )  # fmt: skip
    alone = result["analysis"]
    rows.append(["analysis + verdict alone (best of 3)", f"{alone['cpu']:.3f} s",
                 f"{alone['seconds']:.3f} s", f"{alone['units']:,}", "", ""])  # fmt: skip
    header = ["check", "CPU", "wall", "units", "answers control / candidate", "verdict"]
    print(markdown_table(header, rows))
    print(f"\npeak RSS of the worker: {result['peak_rss'] / 2**20:,.0f} MiB")
    return {
        **result,
        "answers_n": args.answers,
        "outcomes_n": args.outcomes,
        "others": others,
        "columns": columns,
    }


def run_assignment(args: argparse.Namespace) -> dict[str, Any]:
    spec = build_shop(SHOP, args.customers)
    load = OtherLoad()
    result = measure(
        spec, share=args.share, pairs=args.pairs, block=args.block, customers=args.customers
    )
    others = load.cores()
    print(
        f"\n## Assignment in the served path: rollout at {args.share:g}%, {args.pairs} pairs of "
        f"{args.block:,}-answer blocks, CPU µs per answer (others used {others:.2f} cores)\n"
    )

    def row(name: str, paired: dict[str, float]) -> list[str]:
        return [name, f"{paired['off']:.1f}", f"{paired['on']:.1f}", f"{paired['diff']:+.2f}",
                f"{paired['q1']:+.2f} to {paired['q3']:+.2f}"]  # fmt: skip

    print(
        markdown_table(
            ["pairs", "first (median)", "second (median)", "paired diff (median)", "IQR"],
            [
                row(f"rollout off / on at {args.share:g}%", result["rollout"]),
                row("rollout off / on at 0% (assignment alone)", result["share_zero"]),
                row("A/A: off / off", result["aa"]),
            ],
        )
    )
    calls = result["per_call_us"]
    print(
        f"\nper call: arm_for {calls['arm_for']:.2f} µs, Assigner.arm {calls['Assigner.arm']:.2f}"
        f" µs, Arms.arm_of {calls['Arms.arm_of']:.2f} µs; candidate share of the block's "
        f"requests {result['candidate_share_seen']:.1%}"
    )
    return {**result, "others": others}


SRM_STEPS = (1.0, 5.0, 10.0, 25.0, 50.0)


def srm_halts(
    rng: np.random.Generator, runs: int, looks: int, batch: int, bias: float = 1.0
) -> dict[str, npt.NDArray[np.int64]]:
    """The first check (0-based over the whole rollout) at which each rule halts each of
    ``runs`` simulated rollouts, -1 where it never does; ``bias`` scales the candidate's
    true share (1.0: A/A, the assignment is right)."""
    first = {"chi-square": np.full(runs, -1), "sequential": np.full(runs, -1)}
    shares = np.array(SRM_STEPS)
    candidates = rng.binomial(batch, shares[None, :, None] * bias / 100, (runs, len(shares), looks))
    so_far = candidates.cumsum(axis=2)
    for run in range(runs):
        for index in range(len(shares)):
            for look in range(looks):
                check = index * looks + look
                counts = [
                    {"control": looks * batch - int(c), "candidate": int(c)}
                    for c in so_far[run, :index, -1]
                ]
                units = (look + 1) * batch
                here = int(so_far[run, index, look])
                counts.append({"control": units - here, "candidate": here})
                evidence, ok = split_check(counts, list(shares[: index + 1]))
                if evidence["chi2_halt"] and first["chi-square"][run] < 0:
                    first["chi-square"][run] = check
                if not ok and first["sequential"][run] < 0:
                    first["sequential"][run] = check
            if min(f[run] for f in first.values()) >= 0:
                break
    return first


def run_srm(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    rng = np.random.default_rng(args.seed + 2)
    checks = len(SRM_STEPS) * args.srm_looks
    rows, record = [], {}
    for name, bias in (("A/A (assignment right)", 1.0), ("bug: candidate share x 0.8", 0.8)):
        halts = srm_halts(rng, args.srm_runs, args.srm_looks, args.srm_batch, bias)
        for rule, first in halts.items():
            hit = first >= 0
            median = float(np.median(first[hit]) + 1) if hit.any() else None
            rows.append(
                [name, rule, f"{hit.mean():.2%}", "-" if median is None else f"{median:.0f}"]
            )
            record[f"{name} / {rule}"] = {"halted": float(hit.mean()), "median_check": median}
    seconds = time.perf_counter() - began
    print(
        f"\n## Sample ratio mismatch under continuous looking: {args.srm_runs:,} rollouts, steps "
        f"{'-'.join(f'{s:g}' for s in SRM_STEPS)}%, {args.srm_looks} checks per step of "
        f"{args.srm_batch:,} new units each ({checks} checks, "
        f"{checks * args.srm_batch:,} units per rollout)\n"
    )
    print(markdown_table(["traffic", "halting rule (p < 0.001)", "rollouts halted",
                          "median check of the halt"], rows))  # fmt: skip
    print(f"\n({seconds:.1f} s)")
    return {"runs": args.srm_runs, "looks": args.srm_looks, "batch": args.srm_batch,
            "checks": checks, "rules": record, "seconds": seconds}  # fmt: skip


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "statistics": run_statistics,
    "check": run_check,
    "assignment": run_assignment,
    "srm": run_srm,
    "interleaving": run_interleaving,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append")
    parser.add_argument("--runs", type=int, default=10_000, help="rollouts with the true lift")
    parser.add_argument("--batch", type=int, default=1_000, help="units per arm between looks")
    parser.add_argument("--cap", type=float, default=4.0, help="x the fixed-horizon sample")
    parser.add_argument("--aa-runs", type=int, default=10_000, help="A/A rollouts")
    parser.add_argument("--looks", type=int, default=20, help="looks per A/A rollout")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--answers", type=int, default=1_000_000, help="check: logged answers")
    parser.add_argument("--outcomes", type=int, default=100_000, help="check: outcomes")
    parser.add_argument("--tail-answers", type=int, default=100_000, help="check: added")
    parser.add_argument("--tail-outcomes", type=int, default=10_000, help="check: added")
    parser.add_argument(
        "--columns",
        choices=("build", "none"),
        default="build",
        help="check: write the logs' columnar sidecars first (timed apart), or remove them",
    )
    parser.add_argument("--srm-runs", type=int, default=500, help="srm: simulated rollouts")
    parser.add_argument("--srm-looks", type=int, default=40, help="srm: checks per step")
    parser.add_argument("--srm-batch", type=int, default=100, help="srm: new units a check")
    parser.add_argument("--share", type=float, default=50.0, help="assignment: percent")
    parser.add_argument("--pairs", type=int, default=80, help="assignment: pairs of blocks")
    parser.add_argument("--block", type=int, default=1_000, help="assignment: answers a block")
    parser.add_argument("--customers", type=int, default=2_000, help="assignment: the shop's")
    add_arguments(parser)
    args = parser.parse_args()
    print(command_line())
    print(f"{machine()}\n{code_state()}")
    results = {part: PARTS[part](args) for part in args.part or sorted(PARTS)}
    append_record(RESULTS, results)


if __name__ == "__main__":
    main()
