"""`taxiway assess`: the readiness assessment, observed from the spec where it can be."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import EXIT_OK
from taxiway.spec.project import Project
from taxiway.sprint.assess import QUESTIONS, Assessment, load_answers, observe
from taxiway.sprint.assess import assess as score

__all__ = ["assess", "render"]

_SOURCE_STYLE = {"observed": "bold green", "declared": "yellow", "unanswered": "dim"}


def assess(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            help="A YAML file of `question_id: yes|no` lines for what taxiway cannot observe.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never prompt; unanswered questions count as no.")
    ] = False,
) -> None:
    """Score the team's readiness, level 1 (siloed) to 5 (self-service), on 15 questions.

    Answers taxiway can derive from the spec are observed; the rest come from --answers, then
    from a prompt when run in a terminal. Levels 4 and 5 need a sprint (`taxiway sprint`).
    """
    project = Project.load(file, state_dir)
    observed = observe(project)
    declared = load_answers(answers) if answers is not None else {}
    if not no_input and sys.stdin.isatty():
        for question in QUESTIONS:
            if question.id not in observed and question.id not in declared:
                declared[question.id] = typer.confirm(
                    f"[{question.area.replace('_', ' ')}] {question.text}",
                    default=False,
                    err=True,
                )
    result = score(observed, declared)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        render(result, Console(highlight=False, soft_wrap=not Console().is_terminal))
    raise typer.Exit(EXIT_OK)


def render(result: Assessment, console: Console) -> None:
    """Print the level, what it means, and every answer with its source and evidence."""
    console.print(f"[bold]Readiness: level {result.level} ({result.name})[/]")
    console.print(escape(result.meaning))
    console.print(
        f"{result.yes_count} of {len(result.answers)} yes · typical success rate: "
        f"{result.success_rate} · typical time per model: {result.time_per_model}"
    )
    table = Table(title_justify="left")
    table.add_column("question", no_wrap=True)
    table.add_column("answer", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("evidence")
    area = None
    for answer in result.answers:
        if answer.question.area != area:
            area = answer.question.area
            table.add_row(f"[bold]{area.replace('_', ' ')}[/]", "", "", "")
        shown = {True: "[green]yes[/]", False: "[red]no[/]", None: "[dim]-[/]"}[answer.yes]
        style = _SOURCE_STYLE[answer.source]
        table.add_row(
            f"  {answer.question.id}",
            shown,
            f"[{style}]{answer.source}[/]",
            escape(answer.evidence),
        )
    console.print(table)
    for note in result.level_notes:
        console.print(f"next: {escape(note)}")
