"""`taxiway retrain`: one run of the retraining loop, gate by gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.cli.emit import command_run
from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["retrain"]


def retrain(
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
    """
    from taxiway.rollout.retrain import run_retrain

    project = Project.load(file, state_dir)
    moment = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    errors = Console(stderr=True, highlight=False)
    with command_run(project, "retrain"):
        result = run_retrain(
            project,
            as_of=moment,
            trigger=trigger,
            progress=lambda step: errors.print(escape(step)) if not as_json else None,
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
