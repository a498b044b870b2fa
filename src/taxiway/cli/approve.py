"""`taxiway approve`: record a sign-off in the append-only approvals log, or list them."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    approvals_summary,
    missing_approvals,
    read_approvals,
    record_approval,
    sign_offs,
)
from taxiway.sprint.approvals_log import log_location

__all__ = ["approve"]


def approve(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="The role signing off (one of governance.approvals)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who signs off, as they want to be named.")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="What was reviewed, conditions, a ticket.")
    ] = None,
    show: Annotated[
        bool, typer.Option("--list", help="Print the sign-offs and which are missing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: print JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check every record's hash, link and signature, and the head: exit 1 naming "
            "the first record edited, inserted or deleted.",
        ),
    ] = False,
) -> None:
    """Record a sign-off (`--role ROLE --by NAME [--note TEXT]`), `--list` them, or
    `--verify` the log.

    The log (<state dir>/governance/approvals.jsonl) is append-only and hash-chained: a line
    changed or deleted by hand is an error when it is read. Without a signing key
    (governance.signing_key_env) whoever can write the file can rewrite the whole chain; with
    one, every record's HMAC is checked too.
    """
    if check:
        if show or role is not None:
            raise typer.BadParameter("--verify goes alone (no --role, no --list)")
        _verify(Project.load(file, state_dir))
        return
    if show == (role is not None):
        raise typer.BadParameter("give either --role ROLE --by NAME, --list, or --verify")
    if role is not None and by is None:
        raise typer.BadParameter("a sign-off needs --by NAME", param_hint="--by")
    project = Project.load(file, state_dir)
    if role is not None and by is not None:
        approval = record_approval(project, role, by, note)
        typer.echo(
            f"{role}: signed off by {by} at {approval.at} "
            f"(record {approval.seq}, spec sha256 {approval.spec_sha256[:12]})"
        )
        missing = missing_approvals(project)
        typer.echo(f"still missing: {', '.join(missing)}" if missing else "every sign-off is in")
        return
    if as_json:
        summary = approvals_summary(project)
        summary["records"] = [r.as_dict() for r in read_approvals(project)]
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    statuses = sign_offs(project)
    records = read_approvals(project)
    if not statuses:
        typer.echo(f"{project.spec.name}: the spec asks for no sign-offs (governance.approvals)")
    for status in statuses:
        given = status.approval
        if given is None:
            typer.echo(f"{status.role}: MISSING")
            continue
        spec = "for this spec" if status.status == "present" else "for an earlier spec"
        typer.echo(f"{status.role}: {given.by} at {given.at}, {spec}")
        if given.note:
            typer.echo(f"  note: {given.note}")
    head = records[-1].hash if records else "-"
    count = f"{len(records)} record{'' if len(records) == 1 else 's'}"
    typer.echo(f"log: {log_location(project)} ({count}, chain verified; head {head})")


def _verify(project: Project) -> None:
    """Every record verified, or the GovernanceError naming the line (exit 1)."""
    from taxiway.sprint.approvals_log import head_location, signing_key, verify_log

    records, head = verify_log(project)
    signed = signing_key(project) is not None
    what = "hash, link and signature (HMAC-SHA256)" if signed else "hash and link (unsigned)"
    count = f"{len(records)} record{'' if len(records) == 1 else 's'}"
    typer.echo(f"{log_location(project)}: {count} verified: every {what}")
    if head:
        typer.echo(f"head {head_location(project)}: the log ends where it should")
    elif records:
        typer.echo(
            f"no head ({head_location(project)}): records cut off the end cannot be detected "
            "until the next sign-off writes it"
        )
