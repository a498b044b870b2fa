"""`taxiway models list|show|promote|archive`: the registry from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.models.registry import ModelVersion, Registry

__all__ = ["app"]

app = typer.Typer(help="The model registry: versions, stages, lineage.", no_args_is_help=True)

VersionArg = Annotated[int, typer.Argument(help="The version number (see `taxiway models list`).")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who makes the change (default: you).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]


def _open(project: Project) -> Registry:
    from taxiway.models.registry import open_registry

    return open_registry(project.spec.registry, state_dir=project.state_dir)


@app.command("list")
def list_versions(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every version of this spec's model, with its stage and validation metric."""
    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        versions = registry.list(project.spec.name)
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps([_summary(v) for v in versions], indent=2))
        return
    console = Console(highlight=False)
    if not versions:
        console.print(f"no versions of {project.spec.name} yet: run `taxiway train`")
        return
    table = Table(title=f"{project.spec.name}", title_justify="left")
    for column in ("version", "stage", "algorithm", "metric", "model", "baseline", "created"):
        table.add_column(column)
    for v in versions:
        s = _summary(v)
        table.add_row(
            str(v.version),
            v.stage,
            v.algorithm,
            str(s["metric"]),
            _fmt(s["model"]),
            _fmt(s["baseline"]),
            f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}",
        )
    console.print(table)


@app.command("show")
def show(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    lineage: Annotated[
        bool, typer.Option("--lineage", help="Model → training set → views → sources → contracts.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole record as JSON.")
    ] = False,
) -> None:
    """One version: metrics, inputs, serving form, stage history (and lineage)."""
    from taxiway.models.lineage import lineage_lines

    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        v = registry.get(project.spec.name, version)
        history = [e for e in registry.history(project.spec.name) if e.version == version]
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps(v.as_dict(), indent=2, default=str))
        return
    console = Console(highlight=False)
    if lineage:
        for line in lineage_lines(v.name, v.version, v.lineage):
            console.print(line)
        return
    s = _summary(v)
    console.print(f"[bold]{v.name} v{v.version}[/] · {v.stage} · {v.algorithm} ({v.task})")
    console.print(
        f"created {v.created_at.isoformat(timespec='seconds')} by {v.created_by}"
        f"{f', git {v.git_commit[:12]}' if v.git_commit else ''}"
    )
    console.print(
        f"{s['metric']}: model {_fmt(s['model'])}, baseline {_fmt(s['baseline'])} "
        f"({'beats' if v.metrics.get('beats_baseline') else 'does not beat'} the baseline)"
    )
    console.print(f"inputs ({len(v.features)}): {', '.join(v.features)}")
    serving = v.serving
    console.print(f"serving form: {serving.get('chosen')}")
    for c in serving.get("candidates", []):
        state = "faithful" if c.get("faithful") else f"rejected: {c.get('error')}"
        p50 = c.get("p50_us")
        console.print(f"  - {c.get('kind')}: {f'p50 {p50:.1f} µs, ' if p50 else ''}{state}")
    console.print(f"artifacts: {v.artifact_dir}")
    for e in history:
        console.print(
            f"  {e.at.isoformat(timespec='seconds')} {e.from_stage or '—'} → {e.to_stage} "
            f"by {e.by}{f' ({e.note})' if e.note else ''}"
        )


@app.command("promote")
def promote(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    by: ByOption = None,
    note: NoteOption = None,
) -> None:
    """Make a version the production one (the previous production version is archived)."""
    _stage(file, state_dir, version, "production", by, note)


@app.command("archive")
def archive(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    by: ByOption = None,
    note: NoteOption = None,
) -> None:
    """Archive a version (it stays in the registry and can be promoted again)."""
    _stage(file, state_dir, version, "archived", by, note)


def _stage(
    file: Path | None,
    state_dir: Path | None,
    version: int,
    stage: Literal["production", "archived"],
    by: str | None,
    note: str | None,
) -> None:
    import getpass

    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        before = registry.production(project.spec.name)
        v = registry.set_stage(
            project.spec.name, version, stage, by=by or getpass.getuser(), note=note
        )
    finally:
        registry.close()
    console = Console(highlight=False)
    console.print(f"{v.name} v{v.version} is now {v.stage}")
    if stage == "production" and before is not None and before.version != v.version:
        console.print(f"{v.name} v{before.version} archived (promote it again to roll back)")


def _summary(v: ModelVersion) -> dict[str, object]:
    metrics = v.metrics
    metric = metrics.get("metric")
    return {
        "version": v.version,
        "stage": v.stage,
        "algorithm": v.algorithm,
        "metric": metric,
        "model": (metrics.get("model") or {}).get(metric),
        "baseline": (metrics.get("baseline") or {}).get(metric),
        "beats_baseline": metrics.get("beats_baseline"),
        "created_at": v.created_at.isoformat(),
    }


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))
