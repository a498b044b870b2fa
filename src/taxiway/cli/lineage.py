"""`taxiway lineage`: a model version's graph from contracts and sources to the service, and
the latest run of each command its events recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import RegistryError
from taxiway.lineage import build_graph, latest_runs, lineage_folder, lineage_svg
from taxiway.models.registry import open_registry
from taxiway.spec.project import Project

__all__ = ["lineage"]


def lineage(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    model: Annotated[
        int | None,
        typer.Option(
            "--model", metavar="V", help="The version (default: the one served, else the newest)."
        ),
    ] = None,
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Also write the graph as an SVG file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
) -> None:
    """Show where a model version comes from: contract versions → sources → feature views →
    training set → the version → the service, and each command's latest recorded run."""
    project = Project.load(file, state_dir)
    name = project.spec.name
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        production = registry.production(name)
        if model is None and production is None and not registry.list(name):
            raise RegistryError(
                f"model {name!r} has no registered version, so it has no lineage yet",
                fix=f"train one: `taxiway train -f {project.spec_path}`",
            )
        version = production if model is None and production is not None else None
        version = version or registry.get(name, model)
    finally:
        registry.close()
    graph = build_graph(
        name,
        version.version,
        version.lineage,
        stage=version.stage,
        served=production.version if production is not None else None,
    )
    folder = lineage_folder(project.spec.lineage, project.state_dir)
    runs = latest_runs(folder)
    if svg is not None:
        svg.parent.mkdir(parents=True, exist_ok=True)
        svg.write_text(lineage_svg(graph) + "\n")
    if as_json:
        document = {**graph.as_dict(), "runs": [vars(r) for r in runs], "events": str(folder)}
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console(highlight=False)
    for line in graph.lines():
        console.print(escape(line))
    if not version.lineage:
        console.print(
            "[yellow]this version recorded no lineage (registered before taxiway kept it)[/]"
        )
    console.print()
    if runs:
        console.print(f"latest runs ({folder}):")
        width = max(len(run.job) for run in runs)
        for run in runs:
            style = {"COMPLETE": "green", "FAIL": "red"}.get(run.state, "yellow")
            why = f": {escape(run.error)}" if run.error else ""
            job = escape(run.job.ljust(width))
            console.print(f"  {job}  [{style}]{run.state:<8}[/] at {run.at}{why}")
    else:
        console.print(f"no run events in {folder} yet")
    if svg is not None:
        console.print(f"written: {svg}")
