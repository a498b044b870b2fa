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
concurrency and connection mode (:func:`ratio` refuses anything else).

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
import contextlib
import http.client
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from toolkit import (
    busy_cpu_seconds,
    machine,
    markdown_table,
    processes_cpu_seconds,
    wait_idle,
)
from toolkit import (
    versions as installed,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "serving_peers"
DATA = HERE / ".data" / "serving"
HOST = "127.0.0.1"
SEED = 20260607
FEATURES = 20
TREES = 100
TRAIN_ROWS = 50_000
REQUEST_ROWS = 256  # distinct request bodies, cycled by wrk
STORE_KEYS = 100_000  # keys in the stand-in's online store
TOLERANCE = 1e-9  # every target runs LightGBM 4.7.0 in float64: answers must be exact

# the peers' own venvs: pinned, so a rerun measures the same thing
PEER_PACKAGES = {
    "mlflow": ["mlflow==3.17.2", "lightgbm==4.7.0", "scikit-learn==1.9.1"],
    "bentoml": ["bentoml==1.4.39", "lightgbm==4.7.0", "scikit-learn==1.9.1"],
}
PEER_MODULES = {"mlflow": "mlflow.lightgbm, mlflow.pyfunc", "bentoml": "bentoml, lightgbm"}
QUIET_ENV = {  # no telemetry from the peers (nothing may leave the machine anyway)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}

SUSPECT_OCCUPANCY = 1.3  # see measure(): above this, wrk's latencies are not to be trusted
RETRIES = 2  # times a measurement is redone when wrk's figures are inconsistent

GOAL_P99_MS = 5.0  # taxiway, concurrency 8, lookup and log included (issue 12)
PEER_TARGETS = ("mlflow", "bentoml")

# taxiway projects built by serving_peers/: name -> (folder, spec file, what a request does,
# answers equal the peers' model, the command that builds it)
PROJECTS: dict[str, tuple[str, str, str, bool, str]] = {
    "taxiway-lookup": (
        "same", "taxiway.yaml",
        "names a customer; 20 values read from the SQLite online store; log.sync interval",
        True, "bench/serving_peers/build_same.py",
    ),
    "taxiway-request": (
        "same-request", "taxiway.yaml",
        "carries the 20 values as request fields; no lookup; log.sync interval",
        True, "bench/serving_peers/build_same.py --request-fields",
    ),
    "taxiway-always": (
        "same", "taxiway-always.yaml",
        "as taxiway-lookup, with log.sync always (fdatasync before each answer)",
        True, "bench/serving_peers/build_same.py",
    ),
    "taxiway-retail": (
        "shop", "taxiway.yaml",
        "retail example: names a customer; 3 views (17 inputs) read from SQLite; log.sync interval",
        False, "bench/serving_peers/build_shop.py",
    ),
    "taxiway-retail-redis": (
        "shop-redis", "taxiway.yaml",
        "as taxiway-retail, the views read from Redis (127.0.0.1, one round trip, on the event loop)",
        False, "bench/serving_peers/build_shop.py --redis redis://127.0.0.1:6379/0",
    ),
}  # fmt: skip
DEFAULT_TARGETS = "mlflow,bentoml,taxiway-lookup,taxiway-request,taxiway-always,taxiway-retail"


# --------------------------------------------------------------------------- model and data


@dataclass(frozen=True)
class Model:
    path: Path
    rows: np.ndarray  # REQUEST_ROWS x FEATURES, the rows requests carry
    expected: np.ndarray  # Booster.predict(rows)
    store: Path  # the stand-in's online store: rows[i] is under key KEYS[i]
    keys: list[str]


def ensure_model() -> Model:
    """Train (once) the served model, the request rows and the stand-in's online store."""
    import lightgbm

    folder = DATA / "model"
    path, rows_file, store = folder / "model.txt", folder / "rows.npy", folder / "store.sqlite"
    rng = np.random.default_rng(SEED)
    keys = [str(k) for k in rng.choice(STORE_KEYS, REQUEST_ROWS, replace=False)]
    if not (path.exists() and rows_file.exists() and store.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        X = rng.standard_normal((TRAIN_ROWS + REQUEST_ROWS, FEATURES))
        signal_ = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 4] + np.sin(3 * X[:, 5])
        y = (signal_ + rng.standard_normal(len(X)) > 0.3).astype(int)
        params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05,
                  "verbosity": -1, "seed": SEED, "num_threads": 2}  # fmt: skip
        train = lightgbm.Dataset(X[:TRAIN_ROWS], y[:TRAIN_ROWS])
        booster = lightgbm.train(params, train, num_boost_round=TREES)
        booster.save_model(str(path))
        rows = X[TRAIN_ROWS:]
        np.save(rows_file, rows)
        write_store(store, rows, keys, rng)
    booster = lightgbm.Booster(model_file=str(path))
    rows = np.load(rows_file)
    return Model(path, rows, booster.predict(rows, num_threads=1), store, keys)


def write_store(path: Path, rows: np.ndarray, keys: list[str], rng: np.random.Generator) -> None:
    """The stand-in's online store: STORE_KEYS keys, each with its 20 values as a JSON array."""
    import sqlite3

    import orjson

    path.unlink(missing_ok=True)
    filler = rng.standard_normal((STORE_KEYS, FEATURES))
    for key, row in zip(keys, rows, strict=True):
        filler[int(key)] = row
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE features (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        db.executemany(
            "INSERT INTO features VALUES (?, ?)",
            ((str(k), orjson.dumps(filler[k].tolist())) for k in range(STORE_KEYS)),
        )
    db.close()


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One server to start, with how to call it and how to tell a right answer."""

    name: str  # the row label
    server: str  # the server and its flags, as printed
    workers: int
    argv: Callable[[int], list[str]]  # port -> command line
    path: str  # the route requests go to
    bodies: list[bytes]  # request bodies, cycled
    answer: Callable[[Any], float]  # response JSON -> the prediction (raises when malformed)
    expected: np.ndarray | None  # predictions for bodies, when known
    ready_path: str
    does: str = ""  # what one request makes the server do, for the report's legend
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = PEERS
    start_timeout: float = 120.0


def _features_body(row: np.ndarray) -> bytes:
    return json.dumps({"features": row.tolist()}).encode()


def _python(venv: str) -> Path:
    return DATA / f"{venv}-venv" / "bin" / "python"


def _peer_env(venv: str) -> dict[str, str]:
    bin_dir = str(_python(venv).parent)
    return {**QUIET_ENV, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


# The server stacks for the minimal endpoint: name -> (description, argv for (port, workers)).
# uvicorn's CLI default loop/http is "auto" (uvloop and httptools when installed), so both
# are named explicitly: taxiway depends on plain `uvicorn`, which brings neither.
def _uvicorn(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, "-m", "uvicorn", "stack_app:app", "--host", HOST, "--port", str(port),
        "--workers", str(workers), "--loop", loop, "--http", http, "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip


def _uvicorn_nodelay(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, str(PEERS / "uvicorn_nodelay.py"), "stack_app:app", "--host", HOST,
        "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
    ]  # fmt: skip


def _uvicorn_reuseport(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, str(PEERS / "uvicorn_reuseport.py"), "stack_app:app", "--host", HOST,
        "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
    ]  # fmt: skip


def _granian(*flags: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws",
        "--log-level", "warning", "--no-access-log", "--host", HOST, "--port", str(port),
        "--workers", str(workers), *flags, "stack_app:app",
    ]  # fmt: skip


STACKS: dict[str, tuple[str, Callable[[int, int], list[str]]]] = {
    "uvicorn": ("uvicorn --loop asyncio --http h11", _uvicorn("asyncio", "h11")),
    "uvicorn-uvloop": ("uvicorn --loop uvloop --http httptools", _uvicorn("uvloop", "httptools")),
    "uvicorn-nodelay": (
        "uvicorn asyncio/h11, socket bound with IPPROTO_TCP + TCP_NODELAY",
        _uvicorn_nodelay("asyncio", "h11"),
    ),
    "uvicorn-uvloop-nodelay": (
        "uvicorn uvloop/httptools, socket bound with IPPROTO_TCP + TCP_NODELAY",
        _uvicorn_nodelay("uvloop", "httptools"),
    ),
    "uvicorn-reuseport": (
        "uvicorn asyncio/h11, one SO_REUSEPORT socket per worker (IPPROTO_TCP + TCP_NODELAY)",
        _uvicorn_reuseport("asyncio", "h11"),
    ),
    "uvicorn-uvloop-reuseport": (
        "uvicorn uvloop/httptools, one SO_REUSEPORT socket per worker (IPPROTO_TCP + TCP_NODELAY)",
        _uvicorn_reuseport("uvloop", "httptools"),
    ),
    "granian": ("granian --interface asgi --http 1 --no-ws --loop uvloop", _granian("--loop", "uvloop")),
    "granian-asyncio": (
        "granian --interface asgi --http 1 --no-ws --loop asyncio",
        _granian("--loop", "asyncio"),
    ),
}  # fmt: skip


def stack_targets(model: Model, names: list[str], workers: list[int]) -> list[Target]:
    bodies = [_features_body(row) for row in model.rows]
    env = {"BENCH_MODEL": str(model.path), "PYTHONPATH": str(PEERS)}
    targets = []
    for name in names:
        description, argv = STACKS[name]
        for n in workers:
            targets.append(
                Target(
                    name=f"stack:{name}",
                    server=description,
                    workers=n,
                    argv=lambda port, argv=argv, n=n: argv(port, n),  # type: ignore[misc]
                    path="/predict",
                    bodies=bodies,
                    answer=lambda body: float(body["score"]),
                    expected=model.expected,
                    ready_path="/ready",
                    env=env,
                    start_timeout=60,
                )
            )
    return targets


def mlflow_target(model: Model, workers: int) -> Target:
    columns = [f"f{i}" for i in range(FEATURES)]
    bodies = [
        json.dumps({"dataframe_split": {"columns": columns, "data": [row.tolist()]}}).encode()
        for row in model.rows
    ]
    home = DATA / "mlflow-home"

    def argv(port: int) -> list[str]:
        return [
            str(_python("mlflow").parent / "mlflow"), "models", "serve", "-m",
            str(DATA / "mlflow-model"), "--env-manager", "local", "--host", HOST, "--port",
            str(port), "--workers", str(workers),
        ]  # fmt: skip

    return Target(
        name="mlflow",
        server="mlflow models serve --env-manager local",
        workers=workers,
        argv=argv,
        path="/invocations",
        bodies=bodies,
        answer=lambda body: float(body["predictions"][0]),
        expected=model.expected,
        ready_path="/ping",
        does="carries the 20 values (dataframe_split); pandas frame, signature check, "
        "pyfunc predict",
        env={**_peer_env("mlflow"), "MLFLOW_TRACKING_URI": (home / "mlruns").as_uri()},
        cwd=home,
    )


def bentoml_target(model: Model, workers: int) -> Target:
    def argv(port: int) -> list[str]:
        return [
            str(_python("bentoml").parent / "bentoml"), "serve", "bentoml_service:Scorer",
            "--working-dir", str(PEERS), "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    return Target(
        name="bentoml",
        server="bentoml serve (sync @bentoml.api)",
        workers=workers,
        argv=argv,
        path="/predict",
        bodies=[_features_body(row) for row in model.rows],
        answer=lambda body: float(body["score"]),
        expected=model.expected,
        ready_path="/readyz",
        does="carries the 20 values; pydantic validation, sync API in a thread, Booster.predict",
        env={
            **_peer_env("bentoml"),
            "BENCH_MODEL": str(model.path),
            "BENCH_WORKERS": str(workers),
            "BENTOML_HOME": str(DATA / "bentoml-home"),
        },
    )


def _listen(port: int) -> list[str]:
    return ["--host", HOST, "--port", str(port)]


def _taxiway_answer(body: Any) -> float:
    if body.get("degraded"):  # a fallback answered: that is not the path being measured
        raise ValueError(f"degraded answer ({body.get('reason')}): {body}")
    return float(body["prediction"])


def taxiway_target(
    model: Model, workers: int, args: argparse.Namespace, standin_server: str = "uvicorn"
) -> Target:
    # With --taxiway-spec the real `taxiway serve -f SPEC` is measured: a project whose
    # production model is served from its online store (build_shop.py builds one), and BODIES
    # one `{"entities": {...}}` request per line for keys in the store. Its answers are checked
    # for a 200, a finite `prediction` and `degraded: false` (not against Booster.predict: the
    # model is the project's own). Without it, the stand-in (serving_peers/taxiway_standin.py).
    if args.taxiway_spec:
        spec, bodies = Path(args.taxiway_spec).resolve(), args.taxiway_bodies
        command = [sys.executable, "-m", "taxiway", "serve", "-f", str(spec)]
        lines = Path(bodies).read_bytes().splitlines() if bodies else []
        request_bodies = [line for line in lines if line.strip()]
        if not request_bodies:
            raise SystemExit("--taxiway-spec needs --taxiway-bodies (one JSON request a line)")
        expected, server, name = None, "taxiway serve", "taxiway"
        if args.taxiway_expected:  # the same model as the peers: answers must equal it
            expected = np.asarray(json.loads(Path(args.taxiway_expected).read_text()))
        env = {"PYTHONPATH": str(ROOT / "src")}
    else:
        spec = DATA / "standin" / "spec.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(
            json.dumps(
                {
                    "model": str(model.path),
                    "store": str(model.store),
                    "entity": "customer",
                    "log_dir": str(DATA / "standin" / "log"),
                }
            )
        )
        command = [sys.executable, str(PEERS / "taxiway_standin.py"), "serve", "-f", str(spec)]
        request_bodies = [json.dumps({"entities": {"customer": k}}).encode() for k in model.keys]
        expected, name = model.expected, f"taxiway-standin:{standin_server}"
        server = f"STAND-IN for taxiway serve: SQLite lookup + log write, on {standin_server}"
        env = {"BENCH_STANDIN_SERVER": standin_server}
    return Target(
        name=name,
        server=server,
        workers=workers,
        argv=lambda port: [*command, *_listen(port), "--workers", str(workers)],
        path="/v1/predict",
        bodies=request_bodies,
        answer=_taxiway_answer,
        expected=expected,
        ready_path="/v2/health/ready",
        env=env,
        cwd=DATA,
    )


def project_missing(name: str) -> str | None:
    """Why the taxiway project behind target ``name`` cannot be served (None when it can)."""
    folder, spec_file, _, same_model, command = PROJECTS[name]
    project = DATA / folder
    needed = [project / spec_file, project / "bodies.jsonl"]
    needed += [project / "expected.json"] if same_model else []
    absent = [path for path in needed if not path.exists()]
    if absent:
        return f"{absent[0]} is missing: run `.venv/bin/python {command}`"
    return None


def project_target(name: str, workers: int, redis_url: str) -> Target:
    """The real ``taxiway serve`` on one of the PROJECTS."""
    folder, spec_file, does, same_model, _ = PROJECTS[name]
    project = DATA / folder
    spec = project / spec_file
    lines = (project / "bodies.jsonl").read_bytes().splitlines()
    expected = None
    if same_model:  # the peers' Booster: answers must equal Booster.predict on the rows
        expected = np.asarray(json.loads((project / "expected.json").read_text()))
    command = [sys.executable, "-m", "taxiway", "serve", "-f", str(spec)]
    return Target(
        name=name,
        server=f"taxiway serve ({spec.relative_to(DATA)})",
        workers=workers,
        argv=lambda port: [*command, *_listen(port), "--workers", str(workers)],
        path="/v1/predict",
        bodies=[line for line in lines if line.strip()],
        answer=_taxiway_answer,
        expected=expected,
        ready_path="/v2/health/ready",
        does=does,
        env={"PYTHONPATH": str(ROOT / "src"), "REDIS_URL": redis_url},
        cwd=project,
    )


# --------------------------------------------------------------------------- setup


def setup_peer(name: str) -> str | None:
    """Create (or keep) the peer's venv with its pinned packages; the error, if any."""
    python = _python(name)
    wanted = "\n".join(PEER_PACKAGES[name])
    marker = python.parent.parent / "bench-packages.txt"
    ready = python.exists() and marker.exists() and marker.read_text() == wanted
    if ready and venv_missing(name) is None:
        print(f"  {name}: venv ready ({python.parent.parent})")
        return None
    print(f"  {name}: creating {python.parent.parent} with {', '.join(PEER_PACKAGES[name])}")
    log = DATA / f"{name}-setup.log"
    with log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(python.parent.parent)],
            [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES[name]],
        ]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                return f"`{' '.join(step)}` failed, see {log}"
    marker.write_text(wanted)
    return venv_missing(name)


def peer_missing(name: str) -> str | None:
    """Why the peer cannot run (None when it can)."""
    missing = venv_missing(name)
    if missing is None and name == "mlflow" and not (DATA / "mlflow-model" / "MLmodel").exists():
        return "no MLflow model folder: run `bench/serving.py --setup`"
    return missing


def venv_missing(name: str) -> str | None:
    """Why the peer's venv cannot run it (None when it can)."""
    python = _python(name)
    if not python.exists():
        return f"no venv at {python.parent.parent}: run `bench/serving.py --setup`"
    probe = subprocess.run(
        [str(python), "-c", f"import {PEER_MODULES[name]}"],
        capture_output=True, text=True, env={**os.environ, **QUIET_ENV}, check=False,
    )  # fmt: skip
    if probe.returncode:
        return f"import fails in its venv: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def setup(model: Model) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:
        print("  wrk: installing Debian's package (apt-get install -y wrk)")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
    for name in PEER_PACKAGES:
        error = setup_peer(name)
        if error:
            print(f"  {name}: SETUP FAILED: {error}")
            (DATA / f"{name}-setup-error.txt").write_text(error + "\n")
            continue
        (DATA / f"{name}-setup-error.txt").unlink(missing_ok=True)
        if name == "mlflow":
            folder = DATA / "mlflow-model"
            (DATA / "mlflow-home").mkdir(exist_ok=True)
            if not (folder / "MLmodel").exists() or (
                folder.stat().st_mtime < model.path.stat().st_mtime
            ):
                subprocess.run(
                    [str(_python("mlflow")), str(PEERS / "mlflow_save.py"), str(model.path),
                     str(folder)],
                    check=True, env={**os.environ, **QUIET_ENV}, cwd=DATA / "mlflow-home",
                )  # fmt: skip
            print(f"  mlflow: model folder {folder}")


# --------------------------------------------------------------------------- servers


_RUNNING: dict[int, subprocess.Popen[bytes]] = {}  # process-group id -> leader


def server_processes(pgid: int) -> list[Any]:
    """The live processes of a server: its process group and every descendant of its leader
    (BentoML's workers start sessions of their own)."""
    import psutil

    found: dict[int, Any] = {}
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pgid)
        for process in [leader, *leader.children(recursive=True)]:
            found[process.pid] = process
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid not in found and os.getpgid(process.pid) == pgid:
                found[process.pid] = process
    return list(found.values())


def _stop_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM the whole group, wait for it to go, SIGKILL what is left (descendants that
    left the group included)."""
    import psutil

    leader = _RUNNING.pop(pgid, None)
    members = server_processes(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not any(_alive(process) for process in members):
            break
        time.sleep(0.1)
    for process in members:  # psutil checks the pid was not reused before signalling
        with contextlib.suppress(psutil.Error):
            process.kill()
    if leader is not None:
        leader.wait(5)


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _stop_all() -> None:
    for pgid in list(_RUNNING):
        _stop_group(pgid, grace=5.0)


def _on_signal(signum: int, _: Any) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def running(target: Target, log: Path) -> Iterator[tuple[int, int]]:
    """Start the target's server; yield (port, process-group id) once it answers ready."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    target.cwd.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            target.argv(port),
            cwd=target.cwd,
            env={**os.environ, **target.env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped together, workers too
        )
    pgid = process.pid
    _RUNNING[pgid] = process
    try:
        deadline = time.monotonic() + target.start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} while starting: {tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {target.start_timeout:.0f} s: {tail(log)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, "GET", target.ready_path)[0] == 200:
                    break
            time.sleep(0.25)
        yield port, pgid
    finally:
        _stop_group(pgid)
        for _ in range(50):  # the port is free again before the next server binds one
            if not port_open(port):
                break
            time.sleep(0.1)


def tail(log: Path, lines: int = 6) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return " | ".join(text[-lines:])[-800:]


def check_answers(target: Target, port: int, count: int = 16) -> float:
    """POST the first ``count`` bodies one by one; the largest error against the expected
    predictions (0 when none are known). Raises when an answer is not a prediction."""
    worst = 0.0
    for i, body in enumerate(target.bodies[:count]):
        status, raw = request(port, "POST", target.path, body)
        if status != 200:
            raise RuntimeError(f"HTTP {status} for {body[:80]!r}: {raw[:300]!r}")
        value = target.answer(json.loads(raw))
        if not math.isfinite(value):
            raise RuntimeError(f"not a finite prediction: {raw[:300]!r}")
        if target.expected is not None:
            worst = max(worst, abs(value - float(target.expected[i])))
    if worst > TOLERANCE:
        raise RuntimeError(f"answers differ from Booster.predict by up to {worst:.3g}")
    return worst


# --------------------------------------------------------------------------- load


def server_cpu_seconds(pgid: int) -> float:
    """CPU seconds of a server's live processes (see ``server_processes``)."""
    return processes_cpu_seconds(server_processes(pgid))


def load(
    generator: str,
    port: int,
    path: str,
    bodies: Path,
    concurrency: int,
    seconds: float,
    during: Callable[[], Any] | None = None,
    close: bool = False,
) -> tuple[dict[str, Any], Any]:
    """One closed-loop run of ``concurrency`` connections, by wrk (one thread) or by
    serving_peers/pyload.py; and what ``during()`` returned one second into it. Keep-alive
    connections, or with ``close`` (wrk only) a new connection for every request."""
    if generator == "wrk":
        command = [
            "wrk", "-t1", f"-c{concurrency}", f"-d{max(round(seconds), 1)}s", "--timeout",
            "5s", "--latency", "-s", str(PEERS / "post.lua"), f"http://{HOST}:{port}{path}",
            "--", str(bodies), *(["close"] if close else []),
        ]  # fmt: skip
    elif close:
        raise RuntimeError("Connection: close needs wrk (`apt-get install -y wrk`)")
    else:
        command = [sys.executable, str(PEERS / "pyload.py"), str(port), path, str(bodies),
                   str(concurrency), str(seconds)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    if during is not None:
        time.sleep(min(1.0, seconds / 2))
        seen = during()
    stdout, stderr = process.communicate(timeout=seconds + 60)
    marked = [line for line in stdout.splitlines() if line.startswith("WRK_JSON ")]
    if process.returncode or not marked:
        raise RuntimeError(f"{generator} failed ({process.returncode}): {stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(marked[-1].removeprefix("WRK_JSON "))
    return result, seen


def connections_per_process(pgid: int, port: int) -> list[int]:
    """Established connections to ``port`` held by each server process (busiest first): how
    the kernel and the server spread the load generator's connections over the workers."""
    import psutil

    counts = []
    for process in server_processes(pgid):
        with contextlib.suppress(psutil.Error):
            held = [
                c for c in process.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
            ]  # fmt: skip
            if held:
                counts.append(len(held))
    return sorted(counts, reverse=True)


def measure(
    target: Target, port: int, pgid: int, concurrency: int, close: bool, args: argparse.Namespace
) -> dict[str, Any]:
    bodies = DATA / "bodies" / f"{target.name.replace(':', '-')}.jsonl"
    bodies.parent.mkdir(parents=True, exist_ok=True)
    bodies.write_bytes(b"\n".join(target.bodies) + b"\n")
    idle = wait_idle(args.wait_idle).cores if args.wait_idle else None
    load1 = os.getloadavg()[0]
    if args.warmup:
        load(args.load_generator, port, target.path, bodies, concurrency, args.warmup, close=close)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, busy_before = server_cpu_seconds(pgid), busy_cpu_seconds()
    mine = time.process_time()
    began = time.monotonic()
    run, spread = load(
        args.load_generator,
        port, target.path, bodies, concurrency, args.duration,
        during=lambda: connections_per_process(pgid, port), close=close,
    )  # fmt: skip
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    server_cpu = server_cpu_seconds(pgid) - server_before
    others = busy_cpu_seconds() - busy_before - server_cpu - client_cpu
    others -= time.process_time() - mine
    seconds = run["duration_us"] / 1e6
    errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
    # In a closed loop the latencies add up to at most duration x connections. On this VM
    # wrk's sometimes add up to more (up to 4x, in bursts, seen while the CPUs were busy; a
    # client timing with the monotonic clock stayed consistent): such runs are redone.
    occupancy = run["mean_us"] * run["requests"] / run["duration_us"] / concurrency
    return {
        "target": target.name,
        "server": target.server,
        "workers": target.workers,
        "concurrency": concurrency,
        "connection": "close" if close else "keep-alive",
        "requests": run["requests"],
        "rps": run["requests"] / seconds,
        "rps_per_core": run["requests"] / seconds / max(server_cpu / wall, 1e-9),
        "p50_ms": run["p50_us"] / 1e3,
        "p90_ms": run["p90_us"] / 1e3,
        "p99_ms": run["p99_us"] / 1e3,
        "max_ms": run["max_us"] / 1e3,
        "errors": errors,
        "error_kinds": {k: run[k] for k in ("connect", "read", "write", "status", "timeout")},
        "server_cores": server_cpu / wall,
        "client_cores": client_cpu / wall,
        "other_cores": max(others, 0.0) / wall,
        "connections_per_process": spread,
        "occupancy": occupancy,
        "load_generator": args.load_generator,
        "idle_cores_before": idle,
        "load1_before": load1,
    }


# --------------------------------------------------------------------------- report


def footing(row: dict[str, Any]) -> tuple[int, int, str]:
    """What two rows must share for their ratio to mean anything: worker count, concurrency
    and connection mode."""
    return (int(row["workers"]), int(row["concurrency"]), str(row.get("connection", "keep-alive")))


def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "rps") -> float:
    """``a[key] / b[key]`` for two rows on equal footing; anything else is refused, so a
    ratio between different worker counts cannot be printed.

    >>> ratio({"workers": 2, "concurrency": 8, "rps": 10.0}, {"workers": 2, "concurrency": 8, "rps": 5.0})
    2.0
    >>> ratio({"workers": 2, "concurrency": 8, "rps": 10.0}, {"workers": 1, "concurrency": 8, "rps": 5.0})
    Traceback (most recent call last):
    ValueError: no ratio between unequal footings: (2, 8, 'keep-alive') vs (1, 8, 'keep-alive')
    """
    if footing(a) != footing(b):
        raise ValueError(f"no ratio between unequal footings: {footing(a)} vs {footing(b)}")
    return float(a[key]) / float(b[key])


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (target, server, workers, concurrency, connection): the median round by
    req/s, with the ranges over the rounds and every round's spread of connections."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in results:
        key = (r["target"], r["server"], *footing(r))
        groups.setdefault(key, []).append(r)
    rows = []
    for runs in groups.values():
        ranked = sorted(runs, key=lambda r: r["rps"])
        median = dict(ranked[(len(ranked) - 1) // 2])
        median["rounds"] = len(runs)
        median["rps_range"] = (ranked[0]["rps"], ranked[-1]["rps"])
        median["p99_range"] = (min(r["p99_ms"] for r in runs), max(r["p99_ms"] for r in runs))
        median["per_core_range"] = (
            min(r["rps_per_core"] for r in runs),
            max(r["rps_per_core"] for r in runs),
        )
        median["errors"] = sum(r["errors"] for r in runs)
        median["spreads"] = [r.get("connections_per_process") or [] for r in runs]
        median["suspect"] = any(r.get("occupancy", 0) > SUSPECT_OCCUPANCY for r in runs)
        median["other_cores"] = max(r["other_cores"] for r in runs)
        rows.append(median)
    rows.sort(key=lambda r: (footing(r)[2] != "keep-alive", r["workers"], r["concurrency"]))
    return rows


def report(
    results: list[dict[str, Any]],
    failures: list[tuple[str, str]],
    targets: list[Target],
    threads: str,
) -> None:
    rows = summarize(results)
    header = ["target", "workers", "connection", "conc", "req/s (median)", "req/s min–max",
              "p50 ms", "p99 ms", "p99 min–max", "errors", "server cores",
              "req/s per busy core", "conns per process", "other cores"]  # fmt: skip
    table = []
    for r in rows:
        low, high = r["rps_range"]
        spreads = " ; ".join("/".join(map(str, s)) or "?" for s in r["spreads"])
        table.append(
            [r["target"], str(r["workers"]), r["connection"], str(r["concurrency"]),
             f"{r['rps']:,.0f}", f"{low:,.0f}–{high:,.0f}", f"{r['p50_ms']:.2f}",
             f"{r['p99_ms']:.2f}", f"{r['p99_range'][0]:.2f}–{r['p99_range'][1]:.2f}",
             str(r["errors"]), f"{r['server_cores']:.2f}", f"{r['rps_per_core']:,.0f}",
             spreads, f"{r['other_cores']:.2f}" + (" SUSPECT" if r["suspect"] else "")]
        )  # fmt: skip
    print(f"\nLightGBM threads: {threads}")
    print("\n" + markdown_table(header, table))
    print(
        "\nThe median round by req/s (its p50, p99, cores); ranges over the rounds. server "
        "cores: CPU time of the server's processes during the run / wall time; req/s per busy "
        "core: req/s / server cores. other cores: the most that processes other than the "
        "server and the load generator used in any round. SUSPECT: wrk's latencies add up to "
        "more than connections x run length."
    )
    seen: set[str] = set()
    print("\nWhat one request does:")
    for target in targets:
        if target.name not in seen and target.does:
            seen.add(target.name)
            print(f"- {target.name} ({target.server}): {target.does}")
    for name, reason in failures:
        print(f"\nNOT MEASURED {name}: {reason}")
    print("\n" + "\n".join(goal_lines(rows)))


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """taxiway's ratios to each peer at equal footing (see :func:`ratio`), and the p99 goal."""
    by = {(r["target"], *footing(r)): r for r in rows}
    lines = ["taxiway / peer at the same workers, concurrency and connection mode "
             "(req/s; req/s per busy core):"]  # fmt: skip
    for (name, *_), r in sorted(by.items()):
        if not name.startswith("taxiway"):
            continue
        parts = []
        for peer in PEER_TARGETS:
            base = by.get((peer, *footing(r)))
            if base and base["rps"]:
                parts.append(
                    f"{ratio(r, base):.1f}x {peer} ({ratio(r, base, 'rps_per_core'):.1f}x per core)"
                )
        workers, conc, connection = footing(r)
        if parts:
            lines.append(f"  {name} {workers}w c{conc} {connection}: " + ", ".join(parts))
    lines.append(f"p99 goal (c8, keep-alive, <= {GOAL_P99_MS} ms, every round):")
    for (name, workers, conc, connection), r in sorted(by.items()):
        if name.startswith("taxiway") and conc == 8 and connection == "keep-alive":
            worst = r["p99_range"][1]
            verdict = "met" if worst <= GOAL_P99_MS else "MISSED"
            lines.append(
                f"  {name} {workers}w: p99 {r['p99_range'][0]:.2f}–{worst:.2f} ms {verdict}"
            )
    return lines


def versions() -> str:
    found = [
        installed("starlette", "orjson", "uvicorn", "uvloop", "httptools", "granian", "lightgbm")
    ]
    for peer in PEER_PACKAGES:
        python = _python(peer)
        if python.exists():
            names = [peer, "uvicorn", "starlette", "fastapi", "lightgbm"]
            code = (
                "from importlib import metadata as m\n"
                f"for n in {names!r}:\n"
                "    try: print(n, m.version(n))\n"
                "    except m.PackageNotFoundError: pass"
            )
            out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
            found.append(f"[{peer} venv: {', '.join(out.stdout.split(chr(10))[:-1])}]")
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


def code_state() -> str:
    """The commit measured, and the files under src/ that differ from it (a shared checkout
    can hold others' uncommitted work)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip("\n")  # porcelain lines start with a status column

    changed = git("status", "--porcelain", "--", "src").splitlines()
    dirty = ", ".join(line[3:] for line in changed) or "none"
    return f"commit {git('rev-parse', '--short', 'HEAD')}; uncommitted under src/: {dirty}"


def server_threads(pgid: int) -> list[int]:
    """Threads of each server process (after the answer check: LightGBM's OpenMP pool, if
    any, exists by then)."""
    import psutil

    counts = []
    for process in server_processes(pgid):
        with contextlib.suppress(psutil.Error):
            counts.append(process.num_threads())
    return sorted(counts, reverse=True)


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
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
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
    with (DATA / "results.jsonl").open("a") as handle:
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "argv": sys.argv[1:],
            "lightgbm_threads": args.lightgbm_threads,
            "code": code_state(),
            "results": results,
            "failures": failures,
        }
        handle.write(json.dumps(record) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
