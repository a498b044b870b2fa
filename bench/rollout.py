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

The other parts of the benchmark (the analysis over a large log, assignment's cost per
request) are entries of ``PARTS`` beside ``statistics``. Results are printed and appended to ``bench/.data/rollout/results.jsonl``::

    .venv/bin/python bench/rollout.py --part statistics
    .venv/bin/python bench/rollout.py --part statistics --runs 500 --aa-runs 500   # a quick look
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from toolkit import append_record, code_state, command_line, machine, markdown_table

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


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "statistics": run_statistics,
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
    args = parser.parse_args()
    print(command_line())
    print(f"{machine()}\n{code_state()}")
    results = {part: PARTS[part](args) for part in args.part or sorted(PARTS)}
    append_record(RESULTS, results)


if __name__ == "__main__":
    main()
