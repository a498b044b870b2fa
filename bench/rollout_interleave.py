"""The interleaving part of ``bench/rollout.py`` (``--part interleaving``): users needed to find
a better ranking by team-draft interleaving against the A/B test on click-through per
impression, on the same simulated users in the same run.

The users (one draw per simulated rollout, shared by both methods): each has a click-through
rate per impression ``c_u ~ Beta(s, s (1 - ctr) / ctr)`` (mean ``--ctr``, shape ``s`` =
``--ctr-shape``: the smaller, the more users differ, which is what makes a between-users test
slow and what interleaving, a within-user comparison, does not pay for), ``1 + Poisson(--sessions - 1)`` answers of
``--k`` items. The candidate's items are clicked at ``c_u (1 + --lift)``, control's at
``c_u``. Users arrive one by one; both methods look every ``--il-batch`` users, up to
``--il-users``:

- **A/B** (what the rollout decides on, ``metric.per: impression``): each user is in one arm
  (a fair coin), all their items from it; the arms' ratios with the delta method's variance
  (the library's: the larger arm's unit variance times ``1/n_c + 1/n_t``) and the two-sided
  confidence sequence (:func:`~taxiway.rollout.statistics.half_width`) tuned to the
  fixed-horizon sample for ``min_effect = lift x ctr`` at control's measured deviation
  (:func:`~taxiway.rollout.statistics.planned_units`); decided at the first look whose
  interval excludes 0, after 100 users and 10 clicks per arm (the analysis's floor).
- **Interleaving**: the same users, each seeing team-drafted lists, ``k/2`` items per team per
  answer (team-draft's sizes with complete lists and ``k`` even); a user's credit is their
  candidate-team clicks minus control-team clicks; the always-valid test
  (:func:`~taxiway.rollout.statistics.interleaving_test`, ``planned_users`` = ``--il-min``)
  decides at the first significant look.

With ``--il-read N`` the part also times the read of the interleaved users over ``N`` logged
answers (``bench/rollout_interleave_read.py``): a full rescan, and with ``--il-new M`` a
check's incremental read of ``M`` new answers after the ``N`` were read. With ``--il-cost N``
it measures the CPU an interleaved answer costs the service against a single arm's, over ``N``
answers (``bench/rollout_interleave_cost.py``).

Reported per method: the share of rollouts that found the candidate better (and worse) within
the cap, the median and 80th percentile of the users at that look, and the same with no lift
(A/A: the share declared either way). The click model is the assumption that carries the
result: a user's preference for a ranking shows up as more clicks on its items when both are
shown side by side. It is the premise of interleaving (Radlinski et al. 2008; Chapelle et al.
2012 measured it on search logs), not something this simulation proves.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rollout_interleave_cost import time_cost
from rollout_interleave_read import time_incremental, time_read
from toolkit import markdown_table

from taxiway.rollout.statistics import half_width, interleaving_test, planned_units

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
ALPHA = 0.05
MIN_UNITS, MIN_EVENTS = 100, 10


@dataclass(frozen=True)
class Users:
    """``runs`` x ``users`` simulated users: CTR per impression and answers."""

    ctr: Floats
    answers: Ints


def draw_users(rng: np.random.Generator, runs: int, users: int, args: argparse.Namespace) -> Users:
    shape = args.ctr_shape
    ctr = rng.beta(shape, shape * (1.0 - args.ctr) / args.ctr, size=(runs, users))
    answers = 1 + rng.poisson(args.sessions - 1.0, size=(runs, users))
    return Users(ctr, answers)


def _first(mask: npt.NDArray[np.bool_]) -> Ints:
    hit = mask.any(axis=1)
    return np.where(hit, mask.argmax(axis=1), -1).astype(np.int64)


def ab_looks(
    rng: np.random.Generator, users: Users, lift: float, args: argparse.Namespace
) -> tuple[Ints, Ints]:
    """The first look (index) at which the A/B test finds the candidate better, and worse
    (-1: never), per rollout."""
    runs, n_users = users.ctr.shape
    arm = rng.random((runs, n_users)) < 0.5
    shown = (users.answers * args.k).astype(np.float64)
    rate = np.where(arm, users.ctr * (1.0 + lift), users.ctr)
    clicks = rng.binomial(shown.astype(np.int64), np.minimum(rate, 1.0)).astype(np.float64)
    looks = np.arange(args.il_batch, n_users + 1, args.il_batch) - 1
    stats = {}
    for name, mask in (("control", ~arm), ("candidate", arm)):
        m = np.cumsum(mask, axis=1)[:, looks].astype(np.float64)
        sums = {
            key: np.cumsum(np.where(mask, value, 0.0), axis=1)[:, looks]
            for key, value in (
                ("y", clicks),
                ("n", shown),
                ("yy", clicks * clicks),
                ("nn", shown * shown),
                ("yn", clicks * shown),
            )
        }
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sums["y"] / sums["n"]
            zz = sums["yy"] - 2 * ratio * sums["yn"] + ratio * ratio * sums["nn"]
            var_z = zz / (m - 1)  # the sample variance of z = y - R n (its mean is 0)
            mean_n = sums["n"] / m
            unit_var = var_z / (mean_n * mean_n)  # a unit's linearised value's variance
        stats[name] = (m, ratio, unit_var, sums["y"])
    m_c, r_c, v_c, y_c = stats["control"]
    m_t, r_t, v_t, y_t = stats["candidate"]
    diff = r_t - r_c
    var = np.maximum(v_c, v_t) * (1.0 / m_c + 1.0 / m_t)
    min_effect = lift * args.ctr if lift else args.il_min_effect * args.ctr

    # the analysis re-tunes the sequence at every look to control's deviation so far
    def width_at(v: float, n: float, sd: float) -> float:
        planned = planned_units(min_effect, sd, ALPHA)
        return half_width(v, n, ALPHA, 2.0 * planned) if np.isfinite(v) else np.inf

    width = np.vectorize(width_at)(var, m_c + m_t, np.sqrt(v_c))
    floor = (np.minimum(m_c, m_t) >= MIN_UNITS) & (np.minimum(y_c, y_t) >= MIN_EVENTS)
    return _first((diff - width > 0) & floor), _first((diff + width < 0) & floor)


def interleaving_looks(
    rng: np.random.Generator, users: Users, lift: float, args: argparse.Namespace
) -> tuple[Ints, Ints]:
    """The first look at which the interleaving test finds the candidate better, and worse."""
    half = (users.answers * args.k // 2).astype(np.int64)
    candidate = rng.binomial(half, np.minimum(users.ctr * (1.0 + lift), 1.0))
    control = rng.binomial(half, users.ctr)
    credit = candidate - control
    wins = np.cumsum(credit > 0, axis=1)
    losses = np.cumsum(credit < 0, axis=1)
    looks = np.arange(args.il_batch, users.ctr.shape[1] + 1, args.il_batch) - 1
    runs = users.ctr.shape[0]
    better = np.full(runs, -1, dtype=np.int64)
    worse = np.full(runs, -1, dtype=np.int64)
    for run in range(runs):
        for index, look in enumerate(looks):
            result = interleaving_test(
                int(wins[run, look]),
                int(losses[run, look]),
                alpha=ALPHA,
                planned_users=args.il_min,
            )
            if result.significant:
                (better if result.significant_better else worse)[run] = index
                break
    return better, worse


def _summary(first: Ints, args: argparse.Namespace) -> dict[str, Any]:
    found = first >= 0
    users = (first[found] + 1) * args.il_batch
    return {
        "found": float(found.mean()),
        "median_users": float(np.median(users)) if found.any() else None,
        "p80_users": (
            float(np.sort(np.where(found, (first + 1) * args.il_batch, np.inf))[
                int(np.ceil(0.8 * first.size)) - 1
            ])
            if found.mean() >= 0.8
            else None
        ),
    }  # fmt: skip


def run_interleaving(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    rng = np.random.default_rng(args.seed + 3)
    record: dict[str, Any] = {
        "users_cap": args.il_users,
        "batch": args.il_batch,
        "runs": args.il_runs,
        "ctr": args.ctr,
        "ctr_shape": args.ctr_shape,
        "lift": args.lift,
        "k": args.k,
        "sessions": args.sessions,
        "min_users": args.il_min,
    }
    rows = []
    for label, lift in (("lift", args.lift), ("A/A", 0.0)):
        users = draw_users(rng, args.il_runs, args.il_users, args)
        for method, looks in (
            ("A/B, CTR per impression (delta method, confidence sequence)", ab_looks),
            ("team-draft interleaving (always-valid sign test)", interleaving_looks),
        ):
            better, worse = looks(rng, users, lift, args)
            up, down = _summary(better, args), _summary(worse, args)
            either = float(((better >= 0) | (worse >= 0)).mean())
            record[f"{label} / {method}"] = {"better": up, "worse": down, "either": either}

            def count(value: float | None) -> str:
                return "-" if value is None else f"{value:,.0f}"

            rows.append(
                [
                    label if lift == 0 else f"+{lift:.0%} CTR",
                    method,
                    f"{up['found']:.1%}",
                    f"{down['found']:.1%}",
                    count(up["median_users"]),
                    count(up["p80_users"]),
                ]
            )
    seconds = time.perf_counter() - began
    record["seconds"] = seconds
    print(
        f"\n## Interleaving against the A/B test: {args.il_runs} rollouts of up to "
        f"{args.il_users:,} users (looks every {args.il_batch}), CTR {args.ctr:.1%} per "
        f"impression (Beta of shape {args.ctr_shape:g} across users), min_users {args.il_min}, "
        f"{args.k} items per answer, {args.sessions:g} answers per user on average\n"
    )
    print(
        markdown_table(
            [
                "truth",
                "method",
                "found better",
                "found worse",
                "median users to find it",
                "80% found by (users)",
            ],
            rows,
        )
    )
    print(f"\n({seconds:.1f} s)")
    if args.il_read:
        record["read"] = read = time_read(args.il_read, args.seed)
        print(
            f"\nread_interleaved over {read['answers']:,} answers ({read['log_bytes'] / 2**30:.2f} "
            f"GiB of JSON lines; {read['interleaved_answers']:,} interleaved, {read['users']:,} "
            f"users): {read['wall_s']:.2f} s wall, {read['cpu_s']:.2f} s CPU (best of 3)"
        )
    if args.il_read and args.il_new:
        record["check"] = check = time_incremental(args.il_read, args.il_new, args.seed)
        print(
            f"\n## A check's interleaving read: {check['read']:,} answers read, {check['new']:,} new\n"
        )
        print(
            markdown_table(
                ["read", "CPU s", "wall s"],
                [
                    [name, f"{t['cpu_s']:.3f}", f"{t['wall_s']:.3f}"]
                    for name, t in check["times"].items()
                ],
            )
        )
    if args.il_cost:
        record["cost"] = cost = time_cost(args.il_cost)
        print(f"\n## CPU per answer by arm: {args.il_cost:,} answers (examples/shop-recs)\n")
        rows = [
            [
                arm,
                f"{c['answers']:,}",
                f"{c['by_model']:.0%}",
                f"{c['cpu_ms_mean']:.2f}",
                f"{c['cpu_ms_median']:.2f}",
                f"{c['wall_ms_p50']:.2f}",
                f"{c['cpu_vs_single_arm']:.2f}x" if "cpu_vs_single_arm" in c else "",
            ]
            for arm, c in cost["arms"].items()
        ]
        print(
            markdown_table(
                [
                    "arm",
                    "answers",
                    "by the model",
                    "CPU ms mean",
                    "CPU ms median",
                    "wall ms p50",
                    "CPU vs a single arm's",
                ],
                rows,
            )
        )
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The part's options."""
    parser.add_argument("--il-runs", type=int, default=200, help="interleaving: rollouts")
    parser.add_argument("--il-users", type=int, default=40_000, help="interleaving: users cap")
    parser.add_argument("--il-batch", type=int, default=250, help="interleaving: users a look")
    parser.add_argument("--il-min", type=int, default=200, help="interleaving: min_users")
    parser.add_argument(
        "--il-min-effect", type=float, default=0.1, help="interleaving: A/A's min_effect / ctr"
    )
    parser.add_argument("--ctr", type=float, default=0.03, help="interleaving: CTR")
    parser.add_argument(
        "--ctr-shape", type=float, default=2.0, help="interleaving: Beta shape of users' CTR"
    )
    parser.add_argument("--lift", type=float, default=0.10, help="interleaving: relative lift")
    parser.add_argument("--k", type=int, default=10, help="interleaving: items an answer")
    parser.add_argument(
        "--il-read", type=int, default=0, help="interleaving: time the read over N answers"
    )
    parser.add_argument(
        "--il-new",
        type=int,
        default=0,
        help="interleaving: with --il-read N, time a check that reads M new answers after N",
    )
    parser.add_argument(
        "--il-cost", type=int, default=0, help="interleaving: CPU per answer over N answers"
    )
    parser.add_argument("--sessions", type=float, default=3.0, help="interleaving: answers")
