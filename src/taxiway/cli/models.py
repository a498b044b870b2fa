"""`taxiway models list|show|history|card|promote|archive`: the registry from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taxiway.cli import emit
from taxiway.cli.emit import command_run
from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import GovernanceError
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.models.registry import ModelVersion, Registry
    from taxiway.sprint.outcome import Blocker

__all__ = ["app"]

app = typer.Typer(help="The model registry: versions, stages, lineage.", no_args_is_help=True)

VersionArg = Annotated[int, typer.Argument(help="The version number (see `taxiway models list`).")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who makes the change (default: you).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]


def _open(project: Project) -> Registry:
    from taxiway.models.registry import open_registry

    return open_registry(project.spec.registry, state_dir=project.state_dir)


@app.command("list")
def list_versions(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every version of this spec's model, with its stage and validation metric."""
    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        versions = registry.list(project.spec.name)
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps([_summary(v) for v in versions], indent=2))
        return
    console = Console(highlight=False)
    if not versions:
        console.print(f"no versions of {project.spec.name} yet: run `taxiway train`")
        return
    table = Table(title=f"{project.spec.name}", title_justify="left")
    for column in ("version", "stage", "algorithm", "metric", "model", "baseline", "created"):
        table.add_column(column)
    for v in versions:
        s = _summary(v)
        table.add_row(
            str(v.version),
            v.stage,
            v.algorithm,
            str(s["metric"]),
            _fmt(s["model"]),
            _fmt(s["baseline"]),
            f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}",
        )
    console.print(table)


@app.command("show")
def show(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    lineage: Annotated[
        bool, typer.Option("--lineage", help="Model → training set → views → sources → contracts.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole record as JSON.")
    ] = False,
) -> None:
    """One version: metrics, inputs, serving form, stage history (and lineage)."""
    from taxiway.models.lineage import lineage_lines

    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        v = registry.get(project.spec.name, version)
        history = [e for e in registry.history(project.spec.name) if e.version == version]
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps(v.as_dict(), indent=2, default=str))
        return
    console = Console(highlight=False)
    if lineage:
        for line in lineage_lines(v.name, v.version, v.lineage):
            console.print(line)
        return
    s = _summary(v)
    console.print(f"[bold]{v.name} v{v.version}[/] · {v.stage} · {v.algorithm} ({v.task})")
    console.print(
        f"created {v.created_at.isoformat(timespec='seconds')} by {v.created_by}"
        f"{f', git {v.git_commit[:12]}' if v.git_commit else ''}"
    )
    console.print(
        f"{s['metric']}: model {_fmt(s['model'])}, baseline {_fmt(s['baseline'])} "
        f"({'beats' if v.metrics.get('beats_baseline') else 'does not beat'} the baseline)"
    )
    console.print(f"inputs ({len(v.features)}): {', '.join(v.features)}")
    serving = v.serving
    console.print(f"serving form: {serving.get('chosen')}")
    for c in serving.get("candidates", []):
        state = "faithful" if c.get("faithful") else f"rejected: {c.get('error')}"
        p50 = c.get("p50_us")
        console.print(f"  - {c.get('kind')}: {f'p50 {p50:.1f} µs, ' if p50 else ''}{state}")
    console.print(f"artifacts: {v.artifact_dir}")
    for e in history:
        console.print(
            f"  {e.at.isoformat(timespec='seconds')} {e.from_stage or '—'} → {e.to_stage} "
            f"by {e.by}{f' ({e.note})' if e.note else ''}"
        )


@app.command("history")
def history(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each version: why it was trained, how it compared with production on the same rows,
    what its rollout decided, and the time from the trigger to full traffic."""
    from taxiway.rollout.history import history_lines, model_history

    project = Project.load(file, state_dir)
    entries = model_history(project)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    console = Console(highlight=False)
    if not entries:
        console.print(f"no versions of {project.spec.name} yet: run `taxiway train`")
        return
    for line in history_lines(entries):
        console.print(escape(line))


@app.command("card")
def card(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    audit: Annotated[
        Path | None,
        typer.Option(
            "--audit",
            help="The handoff audit's JSON (`taxiway audit --json`, or audit.json from "
            "`taxiway audit --out DIR`) whose findings the card lists as limitations.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    run_audit: Annotated[
        bool, typer.Option("--run-audit", help="Run the handoff audit now and use its findings.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write card.md and card.html here (default: the version's artifact folder).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """A version's model card: intended use, owner, training data and contracts, metrics
    against the baseline per time slice and per segment, limitations, sign-offs.

    Writes card.md and card.html (into the version's artifact folder unless --out) with the
    sign-offs recorded now and, given --audit or --run-audit, the audit's findings; prints
    the Markdown (or --json). Exit 0 whatever the card says.
    """
    from taxiway.sprint.card import write_version_card

    if audit is not None and run_audit:
        raise typer.BadParameter("give --audit FILE or --run-audit, not both")
    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        v = registry.get(project.spec.name, version)
    finally:
        registry.close()
    document = _audit_document(project, v, audit, run_audit)
    written, paths = write_version_card(project, v, document, out)
    if as_json:
        data = {**written.as_dict(), "files": {k: str(p) for k, p in paths.items()}}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(written.markdown())
    Console(stderr=True, highlight=False).print(
        f"wrote {escape(str(paths['md']))} and {escape(str(paths['html']))}"
    )


def _audit_document(
    project: Project, v: ModelVersion, path: Path | None, run: bool
) -> dict[str, object] | None:
    """The audit's document: read from ``path``, run now, or None."""
    if path is not None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise typer.BadParameter(
                f"cannot read {path} ({error}): pass the file `taxiway audit --json` printed "
                "(or its --out audit.json)",
                param_hint="--audit",
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("findings"), list):
            raise typer.BadParameter(
                f"{path} is not a handoff audit document (no findings list): pass the file "
                "`taxiway audit --json` printed (or its --out audit.json)",
                param_hint="--audit",
            )
        return document
    if not run:
        return None
    if project.spec.recommend is not None:
        from taxiway.recommend.audit import run_recommend_audit

        return run_recommend_audit(project, v).as_dict()
    from taxiway.models.audit import run_audit

    return run_audit(project, v).as_dict()


@app.command("promote")
def promote(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    by: ByOption = None,
    note: NoteOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even though the gate blocks (needs --reason; recorded, with who, in "
            "the approvals log).",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="With --force: why the gate is overridden, for the log."),
    ] = None,
) -> None:
    """Make a version the production one (the previous production version is archived).

    First the gate of the sprint's deployment phase: the version's handoff audit has no
    blocker; owner and action are declared; every sign-off governance.approvals requires is
    recorded; monitoring and a rollout plan are declared. Exit 1 with each blocker and its fix
    when one fails; `--force --reason TEXT` promotes anyway and records who (--by, default
    you), why, and each blocker overridden in the hash-chained approvals log.
    """
    if force and not (reason and reason.strip()):
        raise typer.BadParameter("--force needs --reason TEXT: why the gate is overridden")
    if reason is not None and not force:
        raise typer.BadParameter("--reason goes with --force", param_hint="--reason")
    _promote(file, state_dir, version, by, note, reason if force else None)


@app.command("archive")
def archive(
    version: VersionArg,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    by: ByOption = None,
    note: NoteOption = None,
) -> None:
    """Archive a version (it stays in the registry and can be promoted again)."""
    _stage(file, state_dir, version, "archived", by, note)


def _stage(
    file: Path | None,
    state_dir: Path | None,
    version: int,
    stage: Literal["production", "archived"],
    by: str | None,
    note: str | None,
) -> None:
    import getpass

    project = Project.load(file, state_dir)
    registry = _open(project)
    try:
        before = registry.production(project.spec.name)
        v = registry.set_stage(
            project.spec.name, version, stage, by=by or getpass.getuser(), note=note
        )
    finally:
        registry.close()
    console = Console(highlight=False)
    console.print(f"{v.name} v{v.version} is now {v.stage}")
    if stage == "production" and before is not None and before.version != v.version:
        console.print(f"{v.name} v{before.version} archived (promote it again to roll back)")


def _promote(
    file: Path | None,
    state_dir: Path | None,
    version: int,
    by: str | None,
    note: str | None,
    forced_for: str | None,
) -> None:
    """Check the promotion gate, then promote (or refuse, or override it and log who)."""
    import getpass

    from taxiway.sprint.approvals import log_location, record_override
    from taxiway.sprint.gates import promotion_gate
    from taxiway.sprint.phases import NOT_EXERCISED

    project = Project.load(file, state_dir)
    with command_run(project, "models.promote") as run:
        registry = _open(project)
        try:
            v = registry.get(project.spec.name, version)
        finally:
            registry.close()
        if v.stage == "production":
            Console(highlight=False).print(f"{v.name} v{v.version} is already production")
            return
        errors = Console(stderr=True, highlight=False)
        errors.print(
            f"checking the gate for {v.name} v{v.version}: the handoff audit, owner, action, "
            "sign-offs, monitoring, rollout"
        )
        gate = promotion_gate(project, v)
        blockers = gate.blockers
        who = by or getpass.getuser()
        console = Console(highlight=False)
        for check in gate.warnings:
            if not check.detail.startswith(
                NOT_EXERCISED
            ):  # nothing exercises them outside a sprint
                errors.print(f"[yellow]warning:[/] {escape(check.name)}: {escape(check.detail)}")
        if blockers and forced_for is None:
            raise GovernanceError(
                _refusal(v, blockers),
                fix=f"fix each blocker and run `taxiway models promote {v.version}` again; or, "
                "when it cannot wait, `taxiway models promote "
                f"{v.version} -f {project.spec_path} --force --reason TEXT` promotes anyway and "
                f"records who, why and each blocker overridden in {log_location(project)}",
            )
        if blockers and forced_for is not None:
            record = record_override(
                project,
                who,
                forced_for,
                f"promoted {v.name} v{v.version} to production",
                [b.title for b in blockers],
            )
            console.print(
                f"[bold red]gate overridden[/] by {escape(who)}: {len(blockers)} blocker(s) "
                f"({escape('; '.join(b.title for b in blockers))}); recorded as record "
                f"{record.seq} of {log_location(project)}"
            )
            forced = f"forced over {len(blockers)} blocker(s) (approvals log record {record.seq})"
            note = f"{forced}: {forced_for.strip()}" + (f"; {note}" if note else "")
        elif forced_for is not None:
            console.print(
                "no blocker: --force was not needed, and nothing is recorded as overridden"
            )
        _stage(file, state_dir, version, "production", who, note)
        emit.promoted(run, project, v)


def _refusal(v: ModelVersion, blockers: list[Blocker]) -> str:
    lines = [f"{v.name} v{v.version} not promoted: {len(blockers)} blocker(s)"]
    for b in blockers:
        lines.append(f"  - {b.title}: {b.evidence}")
        lines.append(f"    fix: {b.fix}")
    return "\n".join(lines)


def _summary(v: ModelVersion) -> dict[str, object]:
    metrics = v.metrics
    metric = metrics.get("metric")
    return {
        "version": v.version,
        "stage": v.stage,
        "algorithm": v.algorithm,
        "metric": metric,
        "model": (metrics.get("model") or {}).get(metric),
        "baseline": (metrics.get("baseline") or {}).get(metric),
        "beats_baseline": metrics.get("beats_baseline"),
        "created_at": v.created_at.isoformat(),
    }


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))
