"""`taxiway serve`: the prediction service for the production version (or a named one)."""

from __future__ import annotations

from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["serve"]


def serve(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    model: Annotated[
        int | None,
        typer.Option("--model", help="Serve this version instead of the production one."),
    ] = None,
) -> None:
    """Serve predictions over HTTP: /v1/predict, the Open Inference Protocol, /metrics."""
    from taxiway.serving.server import serve as run

    project = Project.load(file, state_dir)
    run(project, host=host, port=port, workers=workers, model=model)
