"""The monitoring dashboard: ``/dashboard`` (one page), its script and style, and
``/dashboard/data.json`` (the monitor's last report plus the server's live facts).

Everything the page needs is served from here (``dashboard_assets/``, package data): no CDN,
and the Content-Security-Policy lets the browser fetch nothing from anywhere else. The page is
sent with the data it shows inlined (a JSON block the script reads, never runs), then the
script refreshes it from ``data.json`` every half monitor interval (5 s to 60 s).

The same routes serve the model service (:func:`service_data`: the in-service monitor of
:mod:`taxiway.serving.monitor_task` and the service's counters) and ``taxiway dashboard``
(:func:`standalone_app`: a monitor over the log, without the model service).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taxiway.errors import MonitoringError
from taxiway.serving.monitor_task import (
    INTERVAL_S,
    MonitorProcess,
    MonitorTask,
    RunResult,
    child_command,
    interval_from_env,
    monitor_folder,
    monitored_version,
    run_for_version,
)
from taxiway.serving.monitored import log_folders
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.serving.metrics import Metrics
    from taxiway.serving.service import Service

__all__ = [
    "CSP",
    "DataSource",
    "dashboard_routes",
    "page",
    "service_data",
    "service_monitor",
    "standalone_app",
]

logger = logging.getLogger("taxiway.serving")

DataSource = Callable[[], Awaitable[bytes]]
"""The JSON of ``/dashboard/data.json``: ``{"live": {...}, "monitor": {...}}``."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only this server's own script, style and data: the browser refuses anything else."""

_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_PLACEHOLDER = b"<!--data-->"
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


@functools.cache
def _asset(name: str) -> bytes:
    return files("taxiway.serving").joinpath("dashboard_assets", name).read_bytes()


def page(data: bytes) -> bytes:
    """The dashboard's HTML with ``data`` (``data.json``'s bytes) inlined, so the first view
    needs no second request; ``<`` is escaped so no value can close the block.

    >>> html = page(b'{"live": {"model": "</script><b>"}}')
    >>> b"</script><b>" in html, b"\\\\u003c/script>\\\\u003cb>" in html
    (False, True)
    """
    inlined = data.replace(b"<", b"\\u003c")
    return _asset("index.html").replace(_PLACEHOLDER, inlined, 1)


def dashboard_routes(data: DataSource) -> list[Route]:
    """``/dashboard``, ``/dashboard/data.json`` and the page's two assets."""

    async def index(_: Request) -> Response:
        return Response(page(await data()), media_type="text/html", headers=_HEADERS)

    async def data_json(_: Request) -> Response:
        return Response(await data(), media_type="application/json", headers=_HEADERS)

    def asset(name: str) -> Callable[[Request], Awaitable[Response]]:
        body, media_type = _asset(name), _ASSETS[name]

        async def serve(_: Request) -> Response:
            return Response(body, media_type=media_type, headers=_HEADERS)

        return serve

    return [
        Route("/dashboard", index, methods=["GET"]),
        Route("/dashboard/", index, methods=["GET"]),
        Route("/dashboard/data.json", data_json, methods=["GET"]),
        *(Route(f"/dashboard/{name}", asset(name), methods=["GET"]) for name in _ASSETS),
    ]


# ------------------------------------------------------------------ in the model service


def service_monitor(service: Service, interval_s: float | None = None) -> MonitorProcess:
    """The in-service monitor of ``service``: a child process over its own log, for the
    version it serves (``--model``'s, else production: read at each run, so a promotion is
    followed), whose reports become ``service``'s gauges; every ``interval_s`` seconds
    (default: :data:`~taxiway.serving.monitor_task.ENV_INTERVAL`, else a minute; a bad value
    there is logged, never a reason not to serve)."""
    if interval_s is None:
        try:
            interval_s = interval_from_env()
        except MonitoringError as error:
            logger.warning(
                "%s (%s); the monitor runs every %s s", error.message, error.fix, INTERVAL_S
            )
            interval_s = INTERVAL_S
    project = service.project

    def gauges(report: dict[str, Any]) -> None:
        service.metrics.set_monitor(service.name, report)

    return MonitorProcess(
        child_command(project, interval_s, service.pinned),
        monitor_folder(project),
        interval_s=interval_s,
        on_report=gauges,
    )


def service_data(service: Service, task: MonitorTask) -> DataSource:
    """``data.json`` of the model service: the leader's last run (a file read, off the event
    loop) and the live facts (the served version, its stage, answers by arm and path summed
    over workers)."""

    def read(metrics: Metrics) -> tuple[bytes, dict[str, dict[str, float]]]:
        return task.snapshot(), metrics.answers_by_arm(flush=False)

    async def data() -> bytes:
        loop = asyncio.get_running_loop()
        service.metrics.flush()  # on the loop, like every tally; the reading is not
        snapshot, answers = await loop.run_in_executor(service.executor, read, service.metrics)
        predictor = service.predictor
        live = {
            "model": service.name,
            "version": predictor.version.version,
            "arm": predictor.arm,
            "answers": answers,
            "latency_budget_ms": service.serving.latency_budget_ms,
            "source": "service",
        }
        return orjson.dumps({"live": live, "monitor": orjson.Fragment(snapshot)})

    return data


# ------------------------------------------------------------------ standalone


def standalone_app(
    project: Project,
    *,
    version: int | None = None,
    interval_s: float = INTERVAL_S,
    report: Path | None = None,
) -> Starlette:
    """The dashboard without the model service (``taxiway dashboard``): a monitor over the
    log the service wrote, for ``version`` (default: the production one at start), run once
    before the app answers and then every ``interval_s`` seconds (in a thread: no request of
    a model waits here); or, with ``report``, a saved report (``taxiway monitor --json``'s
    output) shown as it is."""
    folder = project.state_dir / "monitor" / "dashboard"
    if report is not None:
        saved = _saved_report(report)
        live: dict[str, Any] = {"version": saved.get("version"), "arm": None}

        def runner() -> RunResult:
            return RunResult("ok", saved.get("version"), report=saved)

        interval_s = 0.0
    else:
        served = monitored_version(project, version)
        live = {"version": served.version, "arm": served.stage}
        log_folder, outcomes_folder = log_folders(project)

        def runner() -> RunResult:
            return run_for_version(
                project,
                served,
                log_folder=log_folder,
                outcomes_folder=outcomes_folder if outcomes_folder.exists() else None,
                state_folder=folder,
            )

    task = MonitorTask(runner, folder, interval_s=interval_s)
    if not task.lead():
        raise MonitoringError(
            f"another `taxiway dashboard` runs over {project.state_dir}",
            fix="open that one, or stop it first",
        )
    live["model"] = project.spec.name
    live["answers"] = None  # counted by the service, not in the log's report
    live["source"] = "taxiway dashboard" if report is None else f"saved report {report.name}"

    async def data() -> bytes:
        snapshot = await asyncio.to_thread(task.snapshot)
        return orjson.dumps({"live": live, "monitor": orjson.Fragment(snapshot)})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(task.run_once)
        task.start()
        try:
            yield
        finally:
            task.stop()

    return Starlette(routes=dashboard_routes(data), lifespan=lifespan)


def _saved_report(path: Path) -> dict[str, Any]:
    try:
        report = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise MonitoringError(
            f"cannot read the report {path}: {error}",
            fix="give the monitor.json that `taxiway monitor --out DIR` wrote, or "
            "`taxiway monitor --json` output",
        ) from None
    if not isinstance(report, dict) or not isinstance(report.get("features"), list):
        raise MonitoringError(
            f"{path} is not a monitor report (no `features` list)",
            fix="give the monitor.json that `taxiway monitor --out DIR` wrote",
        )
    return report
