"""What each target is: the server's command, the route and bodies requests use, and how a right
answer is told, for MLflow, BentoML and taxiway (the projects ``serving_peers/`` builds, any
project, or the stand-in).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from serving_model import DATA, FEATURES, HOST, PEERS, Model
from serving_venvs import PEER_VENVS
from toolkit import ROOT

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


def features_body(row: np.ndarray) -> bytes:
    return json.dumps({"features": row.tolist()}).encode()


def mlflow_target(model: Model, workers: int) -> Target:
    columns = [f"f{i}" for i in range(FEATURES)]
    bodies = [
        json.dumps({"dataframe_split": {"columns": columns, "data": [row.tolist()]}}).encode()
        for row in model.rows
    ]
    home = DATA / "mlflow-home"

    def argv(port: int) -> list[str]:
        return [
            str(PEER_VENVS["mlflow"].program("mlflow")), "models", "serve", "-m",
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
        env={**PEER_VENVS["mlflow"].path_env(), "MLFLOW_TRACKING_URI": (home / "mlruns").as_uri()},
        cwd=home,
    )


def bentoml_target(model: Model, workers: int) -> Target:
    def argv(port: int) -> list[str]:
        return [
            str(PEER_VENVS["bentoml"].program("bentoml")), "serve", "bentoml_service:Scorer",
            "--working-dir", str(PEERS), "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    return Target(
        name="bentoml",
        server="bentoml serve (sync @bentoml.api)",
        workers=workers,
        argv=argv,
        path="/predict",
        bodies=[features_body(row) for row in model.rows],
        answer=lambda body: float(body["score"]),
        expected=model.expected,
        ready_path="/readyz",
        does="carries the 20 values; pydantic validation, sync API in a thread, Booster.predict",
        env={
            **PEER_VENVS["bentoml"].path_env(),
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
