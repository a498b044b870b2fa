"""`taxiway audit`: the handoff audit of a model version (the newest by default).

A spec with `recommend:` gets the recommender's audit (leakage, filters parity, coverage,
latency: :mod:`taxiway.recommend.audit`); any other the classifier's. Exit codes are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from taxiway.cli import emit
from taxiway.cli.emit import command_run
from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import EXIT_FAILURE, EXIT_OK
from taxiway.spec.project import Project

__all__ = ["audit"]


def audit(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    model: Annotated[
        int | None, typer.Option("--model", help="The version to audit (default: the newest).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write audit.md, audit.html and audit.json to this folder."),
    ] = None,
    sample: Annotated[
        int,
        typer.Option(
            help="Keys sampled for the skew and latency checks (users, for a recommender)."
        ),
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a model for leakage, availability, latency, skew and coverage (a recommender:
    leakage, filters parity, coverage and latency).

    Exit 1 when a blocker is found.
    """
    from taxiway.models.audit import AuditReport, run_audit
    from taxiway.models.registry import open_registry

    project = Project.load(file, state_dir)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get(project.spec.name, model)
    finally:
        registry.close()
    report: AuditReport
    with command_run(project, "audit") as run:
        if project.spec.recommend is not None:
            from taxiway.recommend.audit import run_recommend_audit

            report = run_recommend_audit(project, version, sample=sample)
        else:
            report = run_audit(project, version, sample=sample)
        emit.audited(run, project, version, report.as_dict()["checks"])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.md").write_text(report.markdown())
        (out / "audit.html").write_text(report.html())
        (out / "audit.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        Console(highlight=False).print(Markdown(report.markdown()))
        if out is not None:
            Console(highlight=False).print(f"written: {out}/audit.md, audit.html, audit.json")
    raise typer.Exit(EXIT_FAILURE if report.blocked else EXIT_OK)
