"""`taxiway check`: reach every source, check access, contracts and freshness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from taxiway.cli import emit
from taxiway.cli.emit import command_run
from taxiway.cli.junit import write_junit
from taxiway.cli.options import (
    EngineOption,
    MasterOption,
    SpecOption,
    StateDirOption,
    chosen_engine,
)
from taxiway.data.check import CheckReport, check_project
from taxiway.errors import EXIT_BLOCKED, EXIT_OK
from taxiway.spec.project import Project

__all__ = ["check", "render"]

_STYLE = {
    "ok": "green",
    "info": "dim",
    "warn": "yellow",
    "quarantine": "magenta",
    "block": "bold red",
}


def check(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write JUnit XML to this file.")
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Judge freshness as of this time (default: now, UTC)."),
    ] = None,
    engine: EngineOption = None,
    master: MasterOption = None,
) -> None:
    """Check every source: reachable, readable by this role, true to its contract, fresh.

    Exit 0 when nothing blocks, 3 when a `block` rule fails, 2 for a bad spec or contract.
    With `--engine spark` the contracts and their quarantine run on Spark.
    """
    project = Project.load(file, state_dir)
    engine = chosen_engine(project, engine, master)
    moment = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    stderr = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    ) as progress:
        tasks: dict[str, object] = {}

        def report_progress(source: str, step: str) -> None:
            if source not in tasks:
                tasks[source] = progress.add_task(f"{source}: {step}", total=None)
            task = tasks[source]
            progress.update(task, description=f"{source}: {step}")  # type: ignore[arg-type]
            if step == "done":
                progress.remove_task(task)  # type: ignore[arg-type]

        with command_run(project, "check", emit.sources(project.spec)) as run:
            report = check_project(
                project, as_of=moment, progress=report_progress, engine=engine, master=master
            )
            emit.checked(run, project.spec, report)
    if junit is not None:
        write_junit(report, junit)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        render(report, Console(highlight=False, soft_wrap=not Console().is_terminal))
    raise typer.Exit(EXIT_BLOCKED if report.blocked else EXIT_OK)


def render(report: CheckReport, console: Console) -> None:
    """Print ``report`` as a table of sources and a list of findings with their fixes."""
    table = Table(title=f"taxiway check · {report.spec}", title_justify="left")
    table.add_column("source")
    table.add_column("kind")
    table.add_column("rows", justify="right")
    table.add_column("rules", justify="right")
    table.add_column("quarantined", justify="right")
    table.add_column("status")
    for source in report.sources:
        rules = source.validation.results if source.validation else []
        passed = sum(1 for r in rules if r.passed)
        style = _STYLE.get(source.status, "")
        table.add_row(
            source.name,
            source.kind,
            "-" if source.rows is None else f"{source.rows:,}",
            f"{passed}/{len(rules)}" if rules else "-",
            f"{source.validation.quarantined_rows:,}" if source.validation else "-",
            f"[{style}]{source.status}[/]",
        )
    console.print(table)
    findings = report.all_findings()
    if not findings:
        console.print("[green]No findings: every source is reachable and true to its contract.[/]")
        return
    console.print()
    for finding in findings:
        style = _STYLE.get(finding.severity, "")
        console.print(
            f"[{style}]{finding.severity:>10}[/] {escape(finding.source)} · {escape(finding.rule)}: "
            f"{escape(finding.message)}"
        )
        if finding.fix:
            console.print(f"{'':>10} [dim]fix:[/] {escape(finding.fix)}")
    quarantined = [s for s in report.sources if s.validation and s.validation.quarantine_path]
    for source in quarantined:
        assert source.validation is not None  # nosec B101
        console.print(
            f"\n{source.validation.quarantined_rows:,} row(s) of {source.name} set aside in "
            f"{source.validation.quarantine_path} (column _reason says why)"
        )
    verdict = (
        "[bold red]BLOCKED[/]: fix the block findings above"
        if report.blocked
        else "[green]nothing blocks[/]"
    )
    console.print(f"\n{verdict}")
