"""`taxiway forget --unit U`: the right to erasure for the logs and the online store."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.serving.forget import forget_unit
from taxiway.spec.project import Project
from taxiway.sprint.approvals_log import append_record, log_location

__all__ = ["ERASURE_ROLE", "forget"]

ERASURE_ROLE = "erasure"
"""The ``role`` of an erasure's record in the governance log (never a sign-off's role)."""


def forget(
    unit: Annotated[
        str,
        typer.Option(
            "--unit",
            help="The unit to erase: a rollout unit, or an entity key the requests named.",
        ),
    ],
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    entity: Annotated[
        str | None,
        typer.Option("--entity", help="Match the unit as this entity's key only."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who carries out the erasure (default: this user)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was removed as JSON.")
    ] = False,
) -> None:
    """Remove a unit's records from the prediction and outcomes logs and its keys from the
    online store; record what was removed (counts, and the unit's SHA-256, never its id or
    its records) in the governance log (<state dir>/governance/approvals.jsonl).

    Each log file holding the unit's records is rewritten atomically without them; the rest
    stays readable (monitor cursors are moved, a rollout's unit state is rebuilt at its next
    check). Run it with the service stopped when no record may be lost: see docs/security.md.
    """
    project = Project.load(file, state_dir)
    erasure = forget_unit(project, unit, entity=entity)
    record = append_record(project, ERASURE_ROLE, by or getpass.getuser(), erasure.note())
    if as_json:
        body = {**erasure.as_dict(), "audit_log": log_location(project), "seq": record.seq}
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(erasure.note())
    typer.echo(f"recorded in {log_location(project)} (record {record.seq})")
