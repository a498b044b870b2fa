"""A stand-in for ``taxiway serve`` until it runs: same command line, same two routes.

    python taxiway_standin.py serve -f SPEC.json --host 127.0.0.1 --port P --workers N
    POST /v1/predict {"entities": {"customer": "123"}}
        -> {"request_id", "prediction", "model_version", "degraded": false, "lookup_ms", ...}
    GET  /v2/health/ready -> {"ready": true}

It does per request what taxiway's service will do, in the same order: read the entity's 20
features from a SQLite online store (one row per key, the values as one JSON array), score
them with LightGBM, append a JSON line to this worker's prediction log, answer. It exists to
test bench/serving.py's taxiway target and to show what a lookup and a log write cost on the
chosen server stack; it is not taxiway (which validates the input, keeps breakers, a deadline,
a fallback chain and metrics).

SPEC.json (written by bench/serving.py): {"model": path, "store": path, "entity": "customer",
"log_dir": path}. ``BENCH_STANDIN_SERVER`` picks the server: ``uvicorn`` (the default: uvloop,
httptools, one listening socket bound as ``serving_peers/uvicorn_nodelay.py`` does),
``uvicorn-reuseport`` (the same, one SO_REUSEPORT socket per worker:
``serving_peers/uvicorn_reuseport.py``) or ``granian``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

_ENV = "BENCH_STANDIN_SPEC"


class _Worker:
    """What one worker process opens (after the fork, on first use)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_file=spec["model"])
        self.entity = spec["entity"]
        self.db = sqlite3.connect(spec["store"], check_same_thread=False)
        self.db.execute("PRAGMA query_only = 1")
        folder = Path(spec["log_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / f"predictions-{os.getpid()}.jsonl", "ab")  # noqa: SIM115

    def answer(self, key: str) -> dict[str, Any]:
        import numpy as np

        started = time.perf_counter()
        row = self.db.execute("SELECT v FROM features WHERE k = ?", (key,)).fetchone()
        looked_up = time.perf_counter()
        if row is None:
            raise KeyError(key)
        features = np.asarray(orjson.loads(row[0]), dtype=np.float64).reshape(1, -1)
        prediction = float(self.booster.predict(features, num_threads=1)[0])
        body = {
            "request_id": uuid.uuid4().hex,
            "prediction": prediction,
            "model_version": 1,
            "degraded": False,
            "lookup_ms": round((looked_up - started) * 1e3, 3),
            "latency_ms": round((time.perf_counter() - started) * 1e3, 3),
        }
        self.log.write(orjson.dumps({**body, "unit": key}) + b"\n")
        self.log.flush()  # in the OS before the answer leaves (no fsync, as taxiway's log)
        return body


_worker: _Worker | None = None


def _get_worker() -> _Worker:
    global _worker
    if _worker is None:
        _worker = _Worker(orjson.loads(Path(os.environ[_ENV]).read_bytes()))
    return _worker


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain ASGI (the lifespan scope is acknowledged and ignored)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _get_worker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    worker = _get_worker()
    path, method = scope["path"], scope["method"]
    if path == "/v2/health/ready" and method == "GET":
        status, body = 200, {"ready": True}
    elif path == "/v1/predict" and method == "POST":
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            key = str(orjson.loads(raw)["entities"][worker.entity])
            status, body = 200, worker.answer(key)
        except KeyError as error:
            status, body = 404, {"error": f"unknown entity or key: {error}"}
        except (orjson.JSONDecodeError, TypeError) as error:
            status, body = 422, {"error": str(error)}
    else:
        status, body = 404, {"error": "not found"}
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("-f", "--file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[_ENV] = str(Path(args.file).resolve())
    here = str(Path(__file__).resolve().parent)
    server = os.environ.get("BENCH_STANDIN_SERVER", "uvicorn")
    if server == "granian":
        argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1",
                "--no-ws", "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
                "--working-dir", here, "--host", args.host, "--port", str(args.port),
                "--workers", str(args.workers), "taxiway_standin:app"]  # fmt: skip
    else:
        launcher = "uvicorn_reuseport.py" if server == "uvicorn-reuseport" else "uvicorn_nodelay.py"
        argv = [sys.executable, str(Path(here) / launcher), "taxiway_standin:app",
                "--host", args.host, "--port", str(args.port), "--workers", str(args.workers),
                "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    sys.exit(main())
