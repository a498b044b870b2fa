"""`taxiway runbook`: write this deployment's runbooks, one Markdown page per failure mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project
from taxiway.sprint.runbooks import write_runbooks

__all__ = ["runbook"]


def runbook(
    out: Annotated[
        Path, typer.Option("--out", help="The folder to write the runbooks (and README.md) to.")
    ],
    file: SpecOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Write the runbooks: online store down, model error, latency budget, contract breach or
    breaker open, input drift, rollback, retraining cadence; print the files written."""
    project = Project.load(file, state_dir)
    for path in write_runbooks(project, out):
        typer.echo(str(path))
