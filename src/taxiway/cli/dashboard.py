"""`taxiway dashboard`: the monitoring dashboard over the prediction log, without the service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["dashboard"]


def dashboard(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8090,
    interval: Annotated[
        float, typer.Option(min=0, help="Seconds between monitor runs over the log (0: once).")
    ] = 60.0,
    model_version: Annotated[
        int | None,
        typer.Option("--model-version", help="Monitor this version instead of production."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Show this saved report (`taxiway monitor --json` or its monitor.json) "
            "instead of running the monitor.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the monitoring dashboard (/dashboard) over the prediction log: drift, latency,
    SLO burn, quality and alerts, the same page the service serves, without the model."""
    import uvicorn

    from taxiway.serving.dashboard import standalone_app
    from taxiway.serving.server import is_loopback

    project = Project.load(file, state_dir)
    app = standalone_app(project, version=model_version, interval_s=interval, report=report)
    if not is_loopback(host):
        print(
            f"taxiway dashboard: listening on {host} without authentication; anyone who can "
            "reach it sees the model's feature distributions and alerts",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"dashboard of {project.spec.name} on http://{host}:{port}/dashboard"
        + ("" if report is not None else " (after a first monitor run over the log)"),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    ).run()
