"""`taxiway train`: train (or import) the model, compare it with the baseline, register it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from taxiway.cli import emit
from taxiway.cli.emit import command_run
from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["train"]


def train(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild the training set even if it is current.")
    ] = False,
    memory_limit: Annotated[
        str | None, typer.Option(help="DuckDB memory limit for the training set, e.g. 4GB.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    reproduce: Annotated[
        int | None,
        typer.Option(
            "--reproduce",
            metavar="V",
            help="Rebuild version V's training set and compare it with the snapshot V was "
            "trained on; registers nothing.",
        ),
    ] = None,
) -> None:
    """Train the spec's model (or import its pilot) and a baseline; register the version.

    A `recommend:` spec trains its recommender and judges it against popularity instead.
    Exit 0 when the model beats the baseline on the spec's metric, 1 when it does not.
    With --reproduce V: exit 0 when the rebuild is identical bit for bit, 1 when it differs.
    """
    project = Project.load(file, state_dir)
    if reproduce is not None:
        _reproduce(project, reproduce, memory_limit, as_json)
    if project.spec.recommend is not None:
        _train_recommender(project, as_json)
    from taxiway.models.training import train_model

    stderr = Console(stderr=True)
    with _progress(stderr) as progress, command_run(project, "train") as run:
        task = progress.add_task("starting", total=None)
        result = train_model(
            project,
            rebuild=rebuild,
            memory_limit=memory_limit,
            progress=lambda step: progress.update(task, description=step),
        )
        emit.trained(run, project, result.version, beats_baseline=result.beats_baseline)
    document = result.as_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        raise typer.Exit(0 if result.beats_baseline else 1)
    console = Console(highlight=False)
    v = result.version
    console.print(
        f"[bold]{v.name} v{v.version}[/] ({v.algorithm}, {v.task}) registered as {v.stage}; "
        f"training set {'reused' if result.reused_training_set else 'built'}, "
        f"{document['split']['train_rows']:,} training / {document['split']['valid_rows']:,} "
        f"validation rows (time split at {document['split']['cut']})"
    )
    snapshot = document["training_set"]["snapshot"]
    if snapshot:
        console.print(
            f"training set snapshot: version {snapshot['version']} of {snapshot['path']} "
            f"(`taxiway train --reproduce {v.version}` checks it can be rebuilt)"
        )
    metric = document["metric"]
    table = Table(title="validation metrics", title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    model_m = document["metrics"]["model"] or {}
    base_m = document["metrics"]["baseline"] or {}
    for name in [k for k in base_m if k not in ("rows",)]:
        mark = " ←" if name == metric else ""
        table.add_row(name + mark, _fmt(model_m.get(name)), _fmt(base_m.get(name)))
    console.print(table)
    console.print(f"baseline: {document['baseline']}")
    if v.metrics.get("not_evaluated"):
        console.print(f"[yellow]not evaluated:[/] {v.metrics['not_evaluated']}")
    verdict = (
        "[green]beats the baseline[/]"
        if result.beats_baseline
        else "[red]does not beat the baseline[/]"
    )
    console.print(f"on {metric}: the model {verdict}")
    serving = v.serving
    console.print(f"serving form: {serving.get('chosen')} (see `taxiway models show {v.version}`)")
    console.print(f"next: `taxiway audit -f {project.spec_path}` checks it for handoff")
    raise typer.Exit(0 if result.beats_baseline else 1)


def _reproduce(project: Project, version: int, memory_limit: str | None, as_json: bool) -> None:
    """`taxiway train --reproduce V`: the verdict, each difference and the inputs that changed."""
    from taxiway.models.reproduce import reproduce_version

    stderr = Console(stderr=True)
    with _progress(stderr) as progress:
        task = progress.add_task("starting", total=None)
        result = reproduce_version(
            project,
            version,
            memory_limit=memory_limit,
            progress=lambda step: progress.update(task, description=step),
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        raise typer.Exit(0 if result.identical else 1)
    console = Console(highlight=False)
    snap = result.snapshot
    where = f"version {snap.version} of {snap.path} ({snap.rows:,} rows)"
    if result.identical:
        console.print(
            f"{result.name} v{version}: the training set rebuilt now is [green]identical bit "
            f"for bit[/] to the one it was trained on, {where}"
        )
    else:
        console.print(
            f"{result.name} v{version}: the training set rebuilt now [red]differs[/] from the "
            f"one it was trained on, {where}:"
        )
        for line in result.diff.describe():
            console.print(f"  - {line}")
    if result.inputs_changed:
        console.print("inputs changed since it was recorded:")
        for line in result.inputs_changed:
            console.print(f"  - {line}")
    raise typer.Exit(0 if result.identical else 1)


def _progress(stderr: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


def _train_recommender(project: Project, as_json: bool) -> None:
    """`taxiway train` on a `recommend:` spec: the model beside popularity, exit 1 unless it
    beats popularity on the declared metric."""
    from taxiway.recommend.training import train_recommender

    stderr = Console(stderr=True)
    with _progress(stderr) as progress, command_run(project, "train") as run:
        task = progress.add_task("starting", total=None)
        result = train_recommender(
            project, progress=lambda step: progress.update(task, description=step)
        )
        emit.trained(run, project, result.version, beats_baseline=result.beats_baseline)
    document = result.as_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        raise typer.Exit(0 if result.beats_baseline else 1)
    console = Console(highlight=False)
    v, split = result.version, document["split"]
    console.print(
        f"[bold]{v.name} v{v.version}[/] ({v.algorithm}, {v.task}) registered as {v.stage}; "
        f"{split['train_rows']:,} training / {split['valid_rows']:,} test interactions "
        f"(time split at {split['cut']}), {split['evaluated_users']:,} users judged"
    )
    metric = document["metric"]
    table = Table(title="metrics at the cutoff", title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("popularity", justify="right")
    model_m, base_m = document["metrics"]["model"], document["metrics"]["baseline"]
    for name in [metric] + [n for n in model_m if n not in (metric, "users")]:
        mark = " ←" if name == metric else ""
        table.add_row(name + mark, _fmt(model_m.get(name)), _fmt(base_m.get(name)))
    console.print(table)
    console.print(
        f"cold users (after the cutoff only): {result.cold_users:,}; cold items: "
        f"{result.cold_items:,} (not judged)"
    )
    fitted = ", ".join(f"{name} {s:.2f} s" for name, s in result.training_seconds.items())
    console.print(f"training time: {fitted}")
    verdict = (
        "[green]beats popularity[/]"
        if result.beats_baseline
        else "[red]does not beat popularity[/]"
    )
    console.print(f"on {metric}: the model {verdict}")
    raise typer.Exit(0 if result.beats_baseline else 1)


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
