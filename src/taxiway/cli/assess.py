"""`taxiway assess`: the readiness assessment; its observed, declared and unanswered answers
shown apart."""

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
from taxiway.sprint.assess import (
    QUESTIONS,
    SOURCE_TITLES,
    SOURCES,
    Assessment,
    load_answers,
    observe,
    spec_declarations,
)
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

    Answers are observed (only a sprint observes: `taxiway sprint`), declared (by the team in
    --answers or at a prompt in a terminal, or by the spec) or unanswered. A team's answer
    beats the spec's. Levels 4 and 5 need observed evidence, so they need a sprint.
    """
    project = Project.load(file, state_dir)
    observed = observe()
    in_spec = spec_declarations(project)
    declared = load_answers(answers) if answers is not None else {}
    if not no_input and sys.stdin.isatty():
        for question in QUESTIONS:
            if question.id not in in_spec and question.id not in declared:
                declared[question.id] = typer.confirm(
                    f"[{question.area.replace('_', ' ')}] {question.text}",
                    default=False,
                    err=True,
                )
    result = score(observed, declared, in_spec)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        render(result, Console(highlight=False, soft_wrap=not Console().is_terminal))
    raise typer.Exit(EXIT_OK)


def render(result: Assessment, console: Console) -> None:
    """Print the level, what it means, and the answers of each kind (observed, declared,
    unanswered) in a table of their own, each with who gave it and the evidence."""
    console.print(f"[bold]Readiness: level {result.level} ({result.name})[/]")
    console.print(escape(result.meaning))
    counts = result.counts()
    console.print(
        f"{result.yes_count} of {len(result.answers)} yes ({counts['observed']} observed, "
        f"{counts['declared']} declared, {counts['unanswered']} unanswered) · typical success "
        f"rate: {result.success_rate} · typical time per model: {result.time_per_model}"
    )
    for source in SOURCES:
        style = _SOURCE_STYLE[source]
        answers = result.of(source)
        title = f"[{style}]{escape(SOURCE_TITLES[source])}[/] ({len(answers)})"
        if not answers:
            console.print(f"\n{title}: none")
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("question", no_wrap=True)
        table.add_column("answer", no_wrap=True)
        table.add_column("by", no_wrap=True)
        table.add_column("evidence")
        for answer in answers:
            shown = {True: "[green]yes[/]", False: "[red]no[/]", None: "[dim]-[/]"}[answer.yes]
            table.add_row(answer.question.id, shown, answer.by or "-", escape(answer.evidence))
        console.print(table)
    for note in result.level_notes:
        console.print(f"next: {escape(note)}")
