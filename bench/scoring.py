"""One-row scoring: taxiway's serving form against ONNX Runtime, LightGBM and the sklearn wrapper.

A LightGBM classifier (``--trees``, default 300, 31 leaves) is trained through its
scikit-learn wrapper on generated data (``--rows``, default 100,000; 20 features, 5% missing,
one categorical column of 12 codes). The last 10,000 rows are the validation rows. taxiway
builds its serving form from the wrapper's Booster (``build_serving_form``: every faithful
form measured, the fastest kept) and loads it back the way serving does
(``load_serving_form``). Then, in this one process, one row at a time (``--repeat`` calls per
path after 200 warm-up calls, paths interleaved over 5 rounds, rows cycled from the
validation rows):

- ``taxiway``: ``scorer.predict_one(row)`` (float64 row in, float out);
- ``onnxruntime``: ``session.run`` on the same model converted by onnxmltools (float32 rows
  prepared beforehand, one thread): ONNX Runtime's own figure, with no conversion at all;
- ``lightgbm Booster``: ``booster.predict(row.reshape(1, -1))``;
- ``sklearn wrapper``: ``LGBMClassifier.predict_proba(row.reshape(1, -1))[:, 1]``.

And 1,000 rows per call (``--batch``), the median of ``--batch-repeat`` calls. Every path's
predictions on the validation rows are compared with the Booster's; the exit status is 1 when
taxiway's differ by more than 1e-6. ``--xgboost`` adds the same for an XGBoost classifier. The
cores other processes used during the one-row timing are printed with the figures.

    .venv/bin/python bench/scoring.py --wait-idle 120
    .venv/bin/python bench/scoring.py --trees 100 --rows 20000 --repeat 5000 --xgboost

Raw figures are appended to ``bench/.data/scoring/results.jsonl``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from toolkit import (
    OtherLoad,
    append_record,
    latency_summary,
    machine,
    markdown_table,
    versions,
    wait_idle,
)

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data" / "scoring"
SEED = 20260607
FEATURES = 20
CATEGORY = 3  # the column holding category codes
VALID_ROWS = 10_000
WARMUP = 200
ROUNDS = 5
VERSIONED = ("lightgbm", "xgboost-cpu", "onnxruntime", "onnxmltools", "scikit-learn")
GOAL_ONNX_RATIO = 2.0  # taxiway's one-row p50 at most 2x ONNX Runtime's
GOAL_WRAPPER_SPEEDUP = 10.0  # and at least 10x faster than the scikit-learn wrapper


# --------------------------------------------------------------------------- data and models


def make_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES))
    X[:, CATEGORY] = rng.integers(0, 12, rows).astype(float)
    X[rng.random(X.shape) < 0.05] = np.nan
    signal = (
        np.nan_to_num(X[:, 0])
        - 0.7 * np.nan_to_num(X[:, 1])
        + 0.5 * np.nan_to_num(X[:, 2]) * np.nan_to_num(X[:, 4])
        + np.isin(X[:, CATEGORY], [2, 5, 7])
    )
    y = (signal + rng.standard_normal(rows) > 0.5).astype(int)
    return X, y


def train_lightgbm(X: np.ndarray, y: np.ndarray, trees: int, seed: int) -> Any:
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=trees, num_leaves=31, learning_rate=0.05, verbosity=-1, random_state=seed
    )
    return model.fit(X, y, categorical_feature=[CATEGORY])


def train_xgboost(X: np.ndarray, y: np.ndarray, trees: int, seed: int) -> Any:
    import xgboost

    model = xgboost.XGBClassifier(
        n_estimators=trees, max_depth=6, learning_rate=0.1, tree_method="hist", random_state=seed
    )
    return model.fit(X, y)


def onnx_session(booster: Any, family: str) -> tuple[Any, str]:
    """The model converted the way taxiway converts it, in a one-thread ONNX Runtime session."""
    import onnxruntime
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, FEATURES]))]
    if family == "lightgbm":
        model = convert_lightgbm(booster, initial_types=types, target_opset=15, zipmap=False)
    else:
        model = convert_xgboost(booster, initial_types=types, target_opset=15)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session, "probabilities"


# --------------------------------------------------------------------------- timing


def one_row_latency(
    paths: dict[str, Callable[[int], Any]], calls: int, n_rows: int
) -> dict[str, dict[str, float]]:
    """p50/p99/mean in microseconds of ``path(i)`` for row i, paths interleaved in rounds."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for path in paths.values():
        for i in range(WARMUP):
            path(i % n_rows)
    per_round = max(calls // ROUNDS, 1)
    clock = time.perf_counter_ns
    for round_ in range(ROUNDS):
        start = round_ * per_round
        for name, path in paths.items():
            spent = times[name]
            for i in range(start, start + per_round):
                row = i % n_rows
                began = clock()
                path(row)
                spent.append((clock() - began) / 1e3)
    return {name: latency_summary(spent) for name, spent in times.items()}


def batch_latency(paths: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median milliseconds of one call per path, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for path in paths.values():
        path()
    for _ in range(repeat):
        for name, path in paths.items():
            began = time.perf_counter_ns()
            path()
            times[name].append((time.perf_counter_ns() - began) / 1e6)
    return {name: statistics.median(spent) for name, spent in times.items()}


# --------------------------------------------------------------------------- one model


def bench_model(family: str, args: argparse.Namespace) -> dict[str, Any]:
    from taxiway.models.serving_form import build_serving_form, load_serving_form

    X, y = make_data(args.rows, args.seed)
    X_train, y_train = X[:-VALID_ROWS], y[:-VALID_ROWS]
    X_valid = np.ascontiguousarray(X[-VALID_ROWS:])
    began = time.perf_counter()
    if family == "lightgbm":
        wrapper = train_lightgbm(X_train, y_train, args.trees, args.seed)
        booster = wrapper.booster_
    else:
        wrapper = train_xgboost(X_train, y_train, args.trees, args.seed)
        booster = wrapper.get_booster()
    trained = time.perf_counter() - began
    folder = DATA_DIR / f"{family}-{args.trees}-trees"
    began = time.perf_counter()
    report = build_serving_form(booster, X_valid, task="classification", out_dir=folder)
    built = time.perf_counter() - began
    scorer = load_serving_form(folder)
    session, output = onnx_session(booster, family)
    run = session.run

    rows64 = [X_valid[i] for i in range(len(X_valid))]
    rows32 = [row.astype(np.float32).reshape(1, -1) for row in rows64]
    native_name = "lightgbm Booster" if family == "lightgbm" else "xgboost Booster"
    if family == "lightgbm":

        def native_one(i: int) -> Any:
            return booster.predict(rows64[i].reshape(1, -1))

        def native_many(block: np.ndarray) -> Any:
            return booster.predict(block)

    else:

        def native_one(i: int) -> Any:
            return booster.inplace_predict(rows64[i].reshape(1, -1))

        def native_many(block: np.ndarray) -> Any:
            return booster.inplace_predict(block)

    one = {
        "taxiway": lambda i: scorer.predict_one(rows64[i]),
        "onnxruntime": lambda i: run([output], {"input": rows32[i]}),
        native_name: native_one,
        "sklearn wrapper": lambda i: wrapper.predict_proba(rows64[i].reshape(1, -1)),
    }
    watch = OtherLoad()
    latency = one_row_latency(one, args.repeat, len(rows64))
    others = watch.cores()
    block64 = X_valid[: args.batch]
    block32 = block64.astype(np.float32)
    many = {
        "taxiway": lambda: scorer.predict(block64),
        "onnxruntime": lambda: run([output], {"input": block32}),
        native_name: lambda: native_many(block64),
        "sklearn wrapper": lambda: wrapper.predict_proba(block64),
    }
    batch = batch_latency(many, args.batch_repeat)

    reference = np.asarray(native_many(X_valid), dtype=np.float64)
    agreement = {
        "taxiway": float(np.max(np.abs(scorer.predict(X_valid) - reference))),
        "onnxruntime": float(
            np.max(
                np.abs(run([output], {"input": X_valid.astype(np.float32)})[0][:, 1] - reference)
            )
        ),
        "sklearn wrapper": float(np.max(np.abs(wrapper.predict_proba(X_valid)[:, 1] - reference))),
        native_name: 0.0,
    }
    return {
        "family": family,
        "native": native_name,
        "train_s": trained,
        "build_s": built,
        "report": report.as_dict(),
        "chosen": report.chosen,
        "one_row_us": latency,
        "batch_ms": batch,
        "max_abs_error": agreement,
        "other_cores_during_one_row": others,
    }


# --------------------------------------------------------------------------- driver


def report_model(result: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print one model's tables and goals; True when taxiway agreed with the Booster."""
    family = result["family"]
    print(
        f"\n## {family}: {args.trees} trees, {args.rows:,} rows x {FEATURES} features "
        f"(trained in {result['train_s']:.1f} s; serving form built in "
        f"{result['build_s']:.1f} s, chosen: {result['chosen']})\n"
    )
    candidates = [
        [
            c["kind"],
            "yes" if c["faithful"] else "no",
            "-" if c["max_abs_error"] is None else f"{c['max_abs_error']:.2g}",
            "-" if c["p50_us"] is None else f"{c['p50_us']:.1f}",
            "-" if c["p99_us"] is None else f"{c['p99_us']:.1f}",
            c["error"] or "",
        ]
        for c in result["report"]["candidates"]
    ]
    print("serving-form candidates (measured by build_serving_form, 300 rows):\n")
    print(
        markdown_table(
            ["form", "faithful", "max abs error", "p50 us", "p99 us", "why not"], candidates
        )
    )
    rows = []
    for name, lat in result["one_row_us"].items():
        rows.append(
            [
                name,
                f"{lat['p50']:.1f}",
                f"{lat['p99']:.1f}",
                f"{result['batch_ms'][name]:.2f}",
                f"{result['max_abs_error'][name]:.2g}",
            ]
        )
    print(
        f"\none row: {args.repeat:,} calls per path; {args.batch:,} rows: median of "
        f"{args.batch_repeat} calls\n"
    )
    header = [
        "path",
        "1 row p50 us",
        "1 row p99 us",
        f"{args.batch} rows ms",
        "max abs diff vs Booster",
    ]
    print(markdown_table(header, rows))
    one = result["one_row_us"]
    ours = one["taxiway"]["p50"]
    onnx_ratio = ours / one["onnxruntime"]["p50"]
    speedup = one["sklearn wrapper"]["p50"] / ours
    native = one[result["native"]]["p50"] / ours
    print("\n  goals (one-row p50):")
    verdict = "PASS" if onnx_ratio <= GOAL_ONNX_RATIO else "MISS"
    print(
        f"    taxiway / ONNX Runtime = {onnx_ratio:.2f}x (goal <= {GOAL_ONNX_RATIO:g}x) {verdict}"
    )
    verdict = "PASS" if speedup >= GOAL_WRAPPER_SPEEDUP else "MISS"
    print(
        f"    sklearn wrapper / taxiway = {speedup:.1f}x (goal >= {GOAL_WRAPPER_SPEEDUP:g}x) "
        f"{verdict}"
    )
    print(f"    {result['native']} / taxiway = {native:.1f}x")
    agreed = bool(result["max_abs_error"]["taxiway"] <= 1e-6)
    if not agreed:
        print(f"  DISAGREEMENT: taxiway is {result['max_abs_error']['taxiway']:.3g} off")
    return agreed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--rows", type=int, default=100_000, help="generated rows (train+valid)")
    parser.add_argument("--repeat", type=int, default=3_000, help="one-row calls per path")
    parser.add_argument("--batch", type=int, default=1_000, help="rows per batch call")
    parser.add_argument("--batch-repeat", type=int, default=30, help="batch calls per path")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--xgboost", action="store_true", help="also an XGBoost classifier")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each model, wait up to this many seconds for other work to stop",
    )
    args = parser.parse_args(argv)
    if args.rows <= VALID_ROWS:
        parser.error(f"--rows must exceed the {VALID_ROWS:,} validation rows")
    print(f"# bench/scoring.py {' '.join(sys.argv[1:])}\n\nmachine: {machine()}")
    print(f"versions: {versions(*VERSIONED)}")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ok = True
    results = []
    for family in ["lightgbm", "xgboost"] if args.xgboost else ["lightgbm"]:
        if args.wait_idle:
            print(wait_idle(args.wait_idle, say=print))
        result = bench_model(family, args)
        ok &= report_model(result, args)
        print(
            f"  other processes used {result['other_cores_during_one_row']:.2f} cores "
            "during the one-row timing"
        )
        results.append(result)
    append_record(DATA_DIR / "results.jsonl", {"results": results})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
