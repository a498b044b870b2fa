"""HTTP serving: taxiway against `mlflow models serve` and BentoML at equal worker counts.

One LightGBM model (100 trees, 31 leaves, 20 features, trained here on generated data) is
served by every target on 127.0.0.1, and ``wrk`` (Debian's, one thread; ``--load-generator
python`` or no wrk: ``serving_peers/pyload.py``) sends one-row requests at each concurrency
(``--concurrency``, default 8) for ``--duration`` seconds after a ``--warmup``, with keep-alive
connections, and for the targets named by ``--close`` also with ``Connection: close`` (one new
connection per request). Every target runs with each of ``--workers`` (default 1 and 2), and
the rounds (``--rounds``) go through every target and worker count in turn, so a change of
machine load hits all of them alike. Targets (``--targets``):

- ``mlflow``: ``mlflow models serve --env-manager local`` on the model saved with
  ``mlflow.lightgbm.save_model`` (with a signature), ``dataframe_split`` bodies;
- ``bentoml``: ``bentoml serve`` on a ``@bentoml.service`` calling ``Booster.predict``;
- ``taxiway-lookup``: the real ``taxiway serve`` on the same Booster, imported as a pilot
  (``serving_peers/build_same.py``): the request names a customer, taxiway reads its 20
  values from the SQLite online store, scores, logs the answer (``log.sync: interval``);
- ``taxiway-request``: the same Booster, its 20 values sent in the request as request fields
  (the peers' request shape; no lookup; ``build_same.py --request-fields``);
- ``taxiway-always``: ``taxiway-lookup`` with ``log.sync: always`` (fdatasync before answering);
- ``taxiway-retail``: the retail example (``serving_peers/build_shop.py``; its own model and
  three feature views, ``log.sync: interval``): answers checked for a finite, non-degraded
  prediction, not against the peers' model; ``taxiway-retail-redis``: the same with the online
  store in Redis (``build_shop.py --redis URL``);
- ``taxiway``: ``taxiway serve`` on any project (``--taxiway-spec``, ``--taxiway-bodies``);
- ``stacks`` and ``taxiway-standin``: the server-stack study that chose taxiway's server
  (a minimal Starlette endpoint on each stack in ``STACKS``; a stand-in for taxiway).

LightGBM threads (``--lightgbm-threads``): taxiway's serving form always scores with
``num_threads=1``; by default (``1``) every server also gets ``OMP_NUM_THREADS=1`` so the peers'
``Booster.predict`` is single-threaded too; ``default`` leaves the peers on LightGBM's default
(one OpenMP thread per core). The report gives requests/s per busy core (the server processes'
CPU time during the run / wall time), and ratios only between rows of equal worker count,
concurrency and connection mode (``serving_report.ratio`` refuses anything else).

MLflow and BentoML run in their own virtualenvs under ``bench/.data/serving/`` (so neither
brings its dependencies into taxiway's); ``--setup`` creates them (pinned versions, idempotent),
saves the MLflow model and installs ``wrk`` with apt-get when it is missing. Every server is
started in its own process group, checked (answers equal to ``Booster.predict`` on the same
rows) before it is measured, and stopped, group and all, when done or when this script exits.

    .venv/bin/python bench/serving.py --setup
    .venv/bin/python bench/serving_peers/build_same.py
    .venv/bin/python bench/serving_peers/build_same.py --request-fields
    .venv/bin/python bench/serving_peers/build_shop.py
    .venv/bin/python bench/serving.py --rounds 3 --wait-idle 120

Raw figures are appended to ``bench/.data/serving/results.jsonl``.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from typing import Any

from serving_load import SUSPECT_OCCUPANCY, measure
from serving_model import DATA, Model, ensure_model
from serving_report import report
from serving_servers import check_answers, on_signal, running, server_threads, stop_all
from serving_stacks import STACKS, stack_targets
from serving_targets import (
    PROJECTS,
    Target,
    bentoml_target,
    mlflow_target,
    project_missing,
    project_target,
    taxiway_target,
)
from serving_venvs import PEER_TARGETS, PEER_VENVS, peer_missing, setup
from toolkit import append_record, code_state, machine
from toolkit import versions as installed

RETRIES = 2  # times a measurement is redone when wrk's figures are inconsistent

DEFAULT_TARGETS = "mlflow,bentoml,taxiway-lookup,taxiway-request,taxiway-always,taxiway-retail"


# The model: serving_model.py; the peers' venvs and --setup: serving_venvs.py; the targets:
# serving_targets.py and serving_stacks.py; starting, checking and stopping servers:
# serving_servers.py; one measurement: serving_load.py; the report: serving_report.py.


# --------------------------------------------------------------------------- versions


def versions() -> str:
    found = [
        installed("starlette", "orjson", "uvicorn", "uvloop", "httptools", "granian", "lightgbm")
    ]
    for peer, venv in PEER_VENVS.items():
        if venv.python.exists():
            names = venv.versions(peer, "uvicorn", "starlette", "fastapi", "lightgbm")
            found.append(f"[{peer} venv: {names}]")
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    found.append(wrk_version.split(" [")[0].strip() or "wrk ?")
    return "; ".join(found)


# --------------------------------------------------------------------------- driver


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def build_targets(model: Model, args: argparse.Namespace) -> tuple[list[Target], list[Any]]:
    targets: list[Target] = []
    failures: list[tuple[str, str]] = []
    workers = _ints(args.workers)
    for group in args.targets.split(","):
        if group in PEER_TARGETS:
            missing = peer_missing(group)
            if missing:
                failures.append((group, missing))
                continue
            make = mlflow_target if group == "mlflow" else bentoml_target
            targets += [make(model, n) for n in workers]
        elif group in PROJECTS:
            missing = project_missing(group)
            if missing:
                failures.append((group, missing))
                continue
            targets += [project_target(group, n, args.redis) for n in workers]
        elif group == "stacks":
            unknown = set(args.stacks.split(",")) - set(STACKS)
            if unknown:
                raise SystemExit(f"unknown stacks {sorted(unknown)}; known: {sorted(STACKS)}")
            targets += stack_targets(model, args.stacks.split(","), workers)
        elif group == "taxiway":
            if not args.taxiway_spec:
                raise SystemExit("target `taxiway` needs --taxiway-spec and --taxiway-bodies")
            targets += [taxiway_target(model, n, args) for n in workers]
        elif group == "taxiway-standin":
            for server in args.standin_servers.split(","):
                targets += [taxiway_target(model, n, args, server) for n in workers]
        else:
            known = [*PEER_TARGETS, *PROJECTS, "taxiway", "taxiway-standin", "stacks"]
            raise SystemExit(f"unknown target {group!r}; known: {', '.join(known)}")
    if args.lightgbm_threads == "1":  # taxiway's serving form pins it; the others alike
        targets = [replace(t, env={**t.env, "OMP_NUM_THREADS": "1"}) for t in targets]
    return targets, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="create the peers' venvs and exit")
    parser.add_argument("--targets", default=DEFAULT_TARGETS, help="comma list, see above")
    parser.add_argument("--stacks", default=",".join(STACKS), help="which server stacks")
    parser.add_argument("--workers", default="1,2", help="worker counts, for every target")
    parser.add_argument("--concurrency", default="8", help="open connections, comma list")
    parser.add_argument(
        "--close",
        default="mlflow,bentoml,taxiway-lookup",
        help="targets measured also with `Connection: close` (a new connection per request)",
    )
    parser.add_argument(
        "--lightgbm-threads",
        choices=["1", "default"],
        default="1",
        help="1: OMP_NUM_THREADS=1 for every server (taxiway pins num_threads=1 itself); "
        "default: the peers' LightGBM uses its default thread count",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load first")
    parser.add_argument("--rounds", type=int, default=1, help="measure every target N times")
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk (auto: when installed) or serving_peers/pyload.py",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each measurement, wait up to this many seconds for other work to stop",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="REDIS_URL for taxiway-retail-redis"
    )
    parser.add_argument("--taxiway-spec", help="target `taxiway`: serve this spec")
    parser.add_argument("--taxiway-bodies", help="with --taxiway-spec: one request a line")
    parser.add_argument(
        "--taxiway-expected",
        help="with --taxiway-spec: a JSON list, the prediction each body must get",
    )
    parser.add_argument(
        "--standin-servers",
        default="uvicorn,granian",
        help="target taxiway-standin runs on these: uvicorn, uvicorn-reuseport, granian",
    )
    args = parser.parse_args(argv)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    DATA.mkdir(parents=True, exist_ok=True)
    model = ensure_model()
    if args.setup:
        setup(model)
        return 0
    if args.load_generator == "auto":
        args.load_generator = "wrk" if shutil.which("wrk") else "python"
    if args.load_generator == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install -y wrk` or `bench/serving.py --setup`")
    threads = (
        "one everywhere: taxiway's serving form passes num_threads=1; every server runs with "
        "OMP_NUM_THREADS=1"
        if args.lightgbm_threads == "1"
        else "taxiway num_threads=1 (its serving form); the peers LightGBM's default"
    )
    print(f"# bench/serving.py {' '.join(sys.argv[1:])}\n\nmachine: {machine()}")
    print(f"versions: {versions()}\nLightGBM threads: {threads}\ncode: {code_state()}")
    targets, failures = build_targets(model, args)
    close = set(args.close.split(",")) - {""}
    results: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for target in targets:
            label = f"{target.name} ({target.workers}w)"
            log = DATA / "logs" / f"{target.name.replace(':', '-')}-{target.workers}w.log"
            try:
                with running(target, log) as (port, pgid):
                    error = check_answers(target, port)
                    threads_seen = server_threads(pgid)
                    print(
                        f"\n[round {round_}] {label}: {target.server}; answers checked "
                        f"(max error {error:.1g}); threads per process {threads_seen}"
                    )
                    for concurrency in _ints(args.concurrency):
                        for closing in [False, True] if target.name in close else [False]:
                            r = measure(target, port, pgid, concurrency, closing, args)
                            for _ in range(RETRIES):  # an inconsistent run says nothing: redo
                                if r["occupancy"] <= SUSPECT_OCCUPANCY:
                                    break
                                print(f"  c{concurrency}: wrk's figures inconsistent, again")
                                again = measure(target, port, pgid, concurrency, closing, args)
                                r = again | {"retried_after": r}
                            r["round"] = round_
                            r["server_threads"] = threads_seen
                            results.append(r)
                            print(
                                f"  c{concurrency} {r['connection']}: {r['rps']:,.0f} req/s, "
                                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors "
                                f"{r['errors']}, connections {r['connections_per_process']}, "
                                f"cores: server {r['server_cores']:.2f} "
                                f"({r['rps_per_core']:,.0f} req/s per core) + client "
                                f"{r['client_cores']:.2f} + others {r['other_cores']:.2f} "
                                f"(idle wait saw {r['idle_cores_before']}), "
                                f"occupancy {r['occupancy']:.2f}",
                                flush=True,
                            )
            except Exception as error:  # one target failing must not lose the others' figures
                failures.append((label, f"{type(error).__name__}: {error}"))
                print(f"\n{label}: FAILED: {error}", flush=True)
    report(results, failures, targets, threads)
    record = {
        "lightgbm_threads": args.lightgbm_threads,
        "code": code_state(),
        "results": results,
        "failures": failures,
    }
    append_record(DATA / "results.jsonl", record)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
