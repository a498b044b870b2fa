"""A monitor report in the contract's shape (MonitorReport.to_json()), for the dashboard tests:
one feature drifting, one warning, one steady, the output steady, a latency regression and
its SLO burn, estimated and realised quality, two alerts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from taxiway.spec.project import Project

from .conftest import free_port

__all__ = ["RETAIL_SPEC", "dashboard_server", "monitored_state", "report", "write_report"]

RETAIL_SPEC = Path(__file__).parents[2] / "examples" / "retail" / "taxiway.yaml"


def write_report(folder: Path) -> Path:
    """The fixture report as a file (what `taxiway monitor --json` writes)."""
    path = folder / "monitor.json"
    path.write_bytes(orjson.dumps(report()))
    return path


@contextlib.contextmanager
def dashboard_server(*args: str, cwd: Path, timeout: float = 60.0) -> Iterator[str]:
    """`taxiway dashboard ARGS --port <free>` in a subprocess; yields its base URL once
    /dashboard/data.json answers; stops it (SIGTERM, then SIGKILL) after."""
    port = free_port()
    log = cwd / f"dashboard-{port}.log"
    command = [sys.executable, "-m", "taxiway", "dashboard", *args, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"taxiway dashboard exited: {log.read_text()}")
            try:
                if httpx.get(f"{url}/dashboard/data.json", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"taxiway dashboard not up in {timeout}s: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _bins(shares: list[float]) -> dict[str, Any]:
    return {"labels": [f"decile {i + 1}" for i in range(10)], "shares": shares}


def _feature(name: str, status: str, value: float, current: list[float]) -> dict[str, Any]:
    flat = [0.1] * 10
    return {
        "name": name,
        "kind": "numeric",
        "statistic": "psi",
        "value": value,
        "threshold": 0.05,
        "status": status,
        "windows": 3,
        "rows": 3000,
        "missing_share": 0.01,
        "reference_missing_share": 0.01,
        "out_of_range_share": 0.002 if status == "drift" else 0.0,
        "p_value": None,
        "why": f"psi {value} against 0.05 in the last windows" if status != "ok" else "",
        "history": [
            {
                "start": f"2026-12-06T0{h}:00:00+00:00",
                "rows": 1000,
                "value": v,
                "threshold": 0.05,
                "over": v > 0.05,
                "status": s,
            }
            for h, v, s in ((3, 0.01, "ok"), (4, value, status), (5, value, status))
        ],
        "reference": _bins(flat),
        "current": _bins(current),
        "source": "view customer_orders, source orders",
    }


def report() -> dict[str, Any]:
    """The fixture report (a fresh copy each call)."""
    shifted = [0.0, 0.0, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.2, 0.25]
    return {
        "model": "churn",
        "version": 1,
        "period": {
            "start": "2026-12-06T03:00:00+00:00",
            "end": "2026-12-06T06:00:00+00:00",
            "windows": 3,
            "requests": 3000,
        },
        "features": [
            _feature("spend_30d", "drift", 0.41, shifted),
            _feature("orders_7d", "warn", 0.07, [0.12, 0.08] * 5),
            _feature("tenure_days", "ok", 0.004, [0.1] * 10),
        ],
        "output": {**_feature("(output)", "ok", 0.01, [0.1] * 10), "source": "the model"},
        "latency": {
            "p50": 2.1,
            "p99": 48.0,
            "budget_ms": 25.0,
            "previous_p99": 9.5,
            "windows": [
                {"start": "2026-12-06T03:00:00+00:00", "p50": 2.0, "p99": 9.0, "requests": 1000},
                {"start": "2026-12-06T04:00:00+00:00", "p50": 2.0, "p99": 9.5, "requests": 1000},
                {"start": "2026-12-06T05:00:00+00:00", "p50": 2.2, "p99": 48.0, "requests": 1000},
            ],
        },
        "rates": {"fallback": 0.012, "degraded": 0.003, "error": 0.0, "shed": None},
        "slo": [
            {
                "name": "latency",
                "objective": 0.99,
                "burn": {"5m": 20.0, "30m": 9.0, "1h": 15.0, "6h": 3.0, "3d": 0.8},
                "status": "page",
                "period_days": 30.0,
                "history": [
                    {"start": f"2026-12-06T0{h}:00:00+00:00", "burn": b}
                    for h, b in ((3, 0.5), (4, 0.6), (5, 15.0))
                ],
            },
            {
                "name": "errors",
                "objective": 0.999,
                "burn": {"5m": 0.0, "30m": 0.0, "1h": 0.0, "6h": 0.0, "3d": 0.0},
                "status": "ok",
                "period_days": 30.0,
                "history": [],
            },
        ],
        "quality": {
            "metric": "roc_auc",
            "estimated": {"roc_auc": 0.78, "accuracy": 0.81, "rows": 3000},
            "estimated_why": None,
            "realised": {"roc_auc": 0.74, "log_loss": 0.52, "calibration_error": 0.04, "rows": 800},
            "minimum": 0.75,
            "reference": 0.8,
            "estimated_from": "the output's KLL sketch (1,000 equal-mass quantiles)",
            "drivers": [
                {"feature": "spend_30d", "correlation": 0.83},
                {"feature": "orders_7d", "correlation": 0.12},
            ],
            "history": [
                {
                    "start": f"2026-12-06T0{h}:00:00+00:00",
                    "estimated": e,
                    "realised": r,
                    "joined": j,
                }
                for h, e, r, j in ((3, 0.8, 0.79, 300), (4, 0.79, 0.75, 300), (5, 0.76, None, 0))
            ],
            "notes": [],
        },
        "alerts": [
            {
                "key": "slo:latency",
                "kind": "slo",
                "severity": "page",
                "title": "latency budget burning 15x over 1 h",
                "detail": "p99 48 ms against a 25 ms budget",
                "value": 15.0,
                "threshold": 14.4,
                "since": "2026-12-06T05:05:00+00:00",
                "where": None,
            },
            {
                "key": "drift:spend_30d",
                "kind": "drift",
                "severity": "ticket",
                "title": "spend_30d drifted (psi 0.41 > 0.05)",
                "detail": "<script>document.body.setAttribute('data-pwned', '1')</script>",
                "value": 0.41,
                "threshold": 0.05,
                "since": "2026-12-06T04:00:00+00:00",
                "where": "view customer_orders, source orders",
            },
        ],
        "versions": {"1": 2900, "2": 100},
        "notes": ["version 2 answered 100 requests in the period: not profiled here"],
        "generated_at": "2026-12-06T06:00:05+00:00",
        "window_s": 3600.0,
        "hysteresis": {"k": 2, "m": 3},
        "threshold": "calibrated to each window's size",
        "healthy": False,
    }


# ------------------------------------------------------------------ a monitored world


LOG_START = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
WORLD_FEATURES = ("age", "spend", "plan")


def _draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "age": rng.normal(40.0, 10.0, n),
        "spend": rng.gamma(2.0, 30.0, n),
        "plan": np.array(["basic", "plus", "pro"])[rng.choice(3, size=n, p=[0.5, 0.3, 0.2])],
    }


def _score(columns: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.08 * (columns["age"] - 40.0) - 0.02 * (columns["spend"] - 60.0)
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def monitored_state(
    state: Path, *, drift_from: int = 1, windows: int = 3, reference: bool = True
) -> None:
    """A registry in ``state`` whose production version of ``retail_churn`` stores a monitor
    reference (as training stores it) over three features, and a prediction log (written by
    the service's own writer) of ``windows`` hourly windows whose ``spend`` arrives tripled
    from window ``drift_from`` on (a vendor's unit change). Without ``reference``, the
    version is one trained before monitoring (no ``profile["monitor"]``)."""
    from taxiway.models.registry import NewVersion, open_registry
    from taxiway.monitoring.reference import build_reference
    from taxiway.serving.log import PredictionLog

    rng = np.random.default_rng(7)
    train = _draw(rng, 4000)
    stored = build_reference(
        {"age": train["age"], "spend": train["spend"], "plan": train["plan"].astype(object)},
        {"age": "numeric", "spend": "numeric", "plan": "categorical"},
        _score(train),
        statistic="psi",
    )
    project = Project.load(RETAIL_SPEC, state)
    registry = open_registry(project.spec.registry, state_dir=state)
    artifacts = state / "artifacts-in"
    artifacts.mkdir(parents=True)
    (artifacts / "model.txt").write_text("not scored here")
    try:
        version = registry.register(
            NewVersion(
                name="retail_churn",
                created_by="tests",
                algorithm="lightgbm",
                task="classification",
                metrics={},
                features=list(WORLD_FEATURES),
                definitions_hash="",
                spec_hash="",
                git_commit=None,
                training={},
                lineage={},
                profile={"monitor": stored} if reference else {"columns": {}},
                serving={},
            ),
            artifacts,
        )
        registry.set_stage("retail_churn", version.version, "production", by="tests")
    finally:
        registry.close()
    ids = 0
    for hour in range(windows):
        columns = _draw(rng, 600)
        if hour >= drift_from:
            columns["spend"] = columns["spend"] * 3.0
        scores = _score(columns)
        at = LOG_START + timedelta(hours=hour)
        with PredictionLog(state / "predictions", worker=f"w{hour}") as log:
            for i in range(600):
                ids += 1
                log.append_sync(
                    {
                        "ts": (at + timedelta(seconds=6 * i)).isoformat(),
                        "request_id": f"r{ids}",
                        "model": "retail_churn",
                        "model_version": version.version,
                        "arm": "production",
                        "unit": f"u{ids}",
                        "path": "model",
                        "degraded": False,
                        "reason": None,
                        "prediction": float(scores[i]),
                        "latency_ms": float(rng.gamma(4.0, 0.5)),
                        "lookup_ms": 0.1,
                        "entities": {"customer": str(ids)},
                        "request": {},
                        "features": {
                            "age": float(columns["age"][i]),
                            "spend": float(columns["spend"][i]),
                            "plan": str(columns["plan"][i]),
                        },
                        "out_of_range": [],
                    }
                )
