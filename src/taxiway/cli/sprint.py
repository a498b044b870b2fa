"""`taxiway sprint`: the whole way from data to a live, guarded service, with the debrief."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import EXIT_FAILURE, EXIT_OK
from taxiway.spec.project import Project

__all__ = ["sprint"]

_MARK = {"pass": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[bold red]✗[/]",  # nosec B105
         "skip": "[dim]-[/]"}  # fmt: skip
_TITLE = {
    "data_access": "Data access",
    "model_development": "Model development",
    "integration": "Integration",
    "deployment": "Deployment and governance",
}


def sprint(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write report.md/html/json and runbooks/ here. Default: <state dir>/sprint/report",
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="When it deploys, keep the service running (Ctrl-C stops)."),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="With --serve: the port (default: any free)."),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Act as of this time: freshness and the online store (default: now)."),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(help="Readiness answers (question id: yes|no) for what cannot be observed."),
    ] = None,
    load_seconds: Annotated[
        float,
        typer.Option(
            min=0.5,
            help="Length of the load test in seconds: it sends requests for that long, with no "
            "cap on their number (the fault drills send 200 requests each instead).",
        ),
    ] = 5.0,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Train a new version even when one was trained from the same inputs.",
        ),
    ] = False,
) -> None:
    """Run the deployment sprint: data access, model development, integration, deployment.

    Every problem becomes a blocker with its fix, and the debrief gives the path to take.

    Paths: 1 deploy more, 2 fix the blockers first, 3 build the foundation first.

    Exit 0 when it deployed, 1 when it did not.
    """
    from taxiway.sprint.integration import stop_service
    from taxiway.sprint.outcome import Phase
    from taxiway.sprint.runner import SprintOptions, run_sprint

    project = Project.load(file, state_dir)
    moment = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    options = SprintOptions(
        report_dir=report, as_of=moment, serve=serve, port=port, answers=answers,
        load_seconds=load_seconds, retrain=retrain,
    )  # fmt: skip
    out.print(
        f"[bold]taxiway sprint[/] {escape(project.spec.name)} ({escape(str(project.spec_path))})"
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def say(phase: str, what: str) -> None:
            progress.update(task, description=f"{_TITLE.get(phase, phase)}: {escape(what)}")

        def done(phase: Phase) -> None:
            out.print(
                f"\n{_MARK[phase.status]} [bold]{_TITLE[phase.name]}[/] "
                f"[dim]{phase.duration_s:.1f}s[/]"
            )
            for check in phase.checks:
                out.print(f"  {_MARK[check.status]} {escape(check.name)}: {escape(check.detail)}")
                if check.blocker is not None:
                    out.print(f"      [bold]fix:[/] {escape(check.blocker.fix)}")

        result = run_sprint(project, options, progress=say, on_phase=done)
    debrief = result.debrief
    out.print(f"\n[bold]{escape(debrief.verdict)}[/]")
    blockers = debrief.blockers
    if blockers:
        out.print(f"{len(blockers)} blocker(s); the first to fix: {escape(blockers[0].title)}")
    out.print(f"report: {escape(str(result.report['md']))} (and report.html, report.json)")
    if result.service is not None:
        out.print(f"[green]serving[/] {result.service.url} (Ctrl-C stops it)")
        try:
            signal.signal(signal.SIGTERM, _interrupt)
            while result.service.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop_service(result.service)
    raise typer.Exit(EXIT_OK if debrief.deployed else EXIT_FAILURE)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
