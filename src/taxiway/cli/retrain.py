"""`taxiway retrain`: one run of the retraining loop, gate by gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.cli.emit import command_run
from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["app"]

app = typer.Typer()


@app.callback(invoke_without_command=True)
def retrain(
    ctx: typer.Context,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Retrain as of this time: the window ends here (default: now, UTC)."),
    ] = None,
    trigger: Annotated[
        str,
        typer.Option(
            help="Why this run: cadence, manual, or the alert that caused it (drift, quality, "
            "contract; e.g. drift:<feature>), one retrain.on lists."
        ),
    ] = "cadence",
) -> None:
    """Retrain the spec's model on the new window and take it through every gate.

    Checks the sources, builds the training set (nothing more when fewer than
    retrain.min_new_rows rows arrived), trains, compares with production on the same
    validation rows, audits, registers, and with retrain.auto_rollout starts the rollout.
    Exit 0 at no_new_data, candidate or rollout_started; 1 when the baseline, production or
    the audit stopped it (the candidate is archived); 3 when a source failed its contract.
    `taxiway retrain export` writes the cadence for cron, Kubernetes or Airflow.
    """
    if ctx.invoked_subcommand is not None:
        return
    from taxiway.rollout.retrain import run_retrain
    from taxiway.sprint.approvals import ApprovalsLog

    project = Project.load(file, state_dir)
    moment = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    errors = Console(stderr=True, highlight=False)
    with command_run(project, "retrain"):
        result = run_retrain(
            project,
            as_of=moment,
            trigger=trigger,
            progress=lambda step: errors.print(escape(step)) if not as_json else None,
            signoffs=ApprovalsLog(),  # a routine retrain reuses the standing sign-offs
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        raise typer.Exit(result.exit_code)
    console = Console(highlight=False)
    colour = "red" if result.exit_code else "green"
    console.print(f"[bold]{result.name}[/]: stopped at [{colour}]{result.gate}[/]")
    console.print(escape(result.reason))
    if result.scores:
        shown = ", ".join(
            f"{who} {'-' if value is None else f'{value:.4g}'}"
            for who, value in result.scores.items()
        )
        console.print(f"{result.metric} on the candidate's validation rows: {shown}")
    for blocker in result.blockers:
        console.print(f"  - {escape(blocker)}")
    raise typer.Exit(result.exit_code)


@app.command("export")
def export(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    airflow: Annotated[
        Path | None, typer.Option("--airflow", help="Write an Airflow DAG file into this folder.")
    ] = None,
    k8s: Annotated[
        Path | None,
        typer.Option("--k8s", help="Write a Kubernetes CronJob manifest (YAML) to this file."),
    ] = None,
    cron: Annotated[bool, typer.Option("--cron", help="Print a crontab line.")] = False,
    image: Annotated[
        str, typer.Option(help="The container image of the CronJob (taxiway installed).")
    ] = "taxiway:latest",
    container_spec: Annotated[
        str, typer.Option(help="Where the CronJob's container finds the spec.")
    ] = "/spec/taxiway.yaml",
    container_state: Annotated[
        str, typer.Option(help="Where the CronJob's container finds the state folder.")
    ] = "/state",
) -> None:
    """Write the retrain's cadence (retrain.every) for the scheduler you already run.

    Each export calls the same `taxiway retrain --trigger cadence`: --cron prints a crontab
    line, --k8s writes a Kubernetes CronJob (one run at a time), --airflow writes a DAG file.
    """
    from taxiway.rollout.exports import airflow_dag, cron_line, k8s_cronjob

    if airflow is None and k8s is None and not cron:
        raise typer.BadParameter("pass --airflow DIR, --k8s FILE or --cron (or several)")
    project = Project.load(file, state_dir)
    console = Console(highlight=False, stderr=True)
    if k8s is not None:
        text = k8s_cronjob(project, image=image, spec=container_spec, state=container_state)
        k8s.parent.mkdir(parents=True, exist_ok=True)
        k8s.write_text(text)
        console.print(f"written: {escape(str(k8s))}")
    if airflow is not None:
        name, text = airflow_dag(project)
        airflow.mkdir(parents=True, exist_ok=True)
        (airflow / name).write_text(text)
        console.print(f"written: {escape(str(airflow / name))}")
    if cron:
        typer.echo(cron_line(project))
