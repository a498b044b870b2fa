"""`taxiway features ...`: build training sets, materialize, look up, check skew."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from taxiway.cli import emit
from taxiway.cli.emit import command_run
from taxiway.cli.options import (
    EngineOption,
    MasterOption,
    SpecOption,
    StateDirOption,
    chosen_engine,
)
from taxiway.errors import EXIT_FAILURE, EXIT_OK, MissingExtraError, SpecError
from taxiway.features.lookup import lookup
from taxiway.features.materialize import STATE_FILE, materialize
from taxiway.features.online import open_online_store
from taxiway.features.skew import check_skew
from taxiway.features.skew_log import LogSkewReport, check_skew_from_log
from taxiway.features.tiles_compact import compact
from taxiway.features.training_set import build_training_set, manifest_path
from taxiway.serving.log import MASK
from taxiway.serving.log_files import log_files
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = ["app"]

app = typer.Typer(
    help="The feature store: training sets, online features, skew checks.", no_args_is_help=True
)

AsOf = Annotated[
    datetime | None,
    typer.Option("--as-of", help="The time to compute features for (UTC; default now)."),
]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _progress() -> Progress:
    stderr = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


@app.command("build")
def build(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    out: Annotated[Path, typer.Option("--out", help="The training set to write (Parquet).")] = Path(
        "training.parquet"
    ),
    memory_limit: Annotated[
        str | None, typer.Option(help="DuckDB memory limit, e.g. 4GB (spills to disk beyond).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    engine: EngineOption = None,
    master: MasterOption = None,
) -> None:
    """Build the point-in-time training set and its manifest."""
    project = Project.load(file, state_dir)
    engine = chosen_engine(project, engine, master)
    with _progress() as progress, command_run(project, "features.build") as run:
        task = progress.add_task("starting", total=None)
        manifest = build_training_set(
            project,
            out,
            progress=lambda step: progress.update(task, description=step),
            memory_limit=memory_limit,
            engine=engine,
            master=master,
        )
        emit.built(run, project.spec, manifest)
    if as_json:
        typer.echo(json.dumps(manifest.as_dict(), indent=2))
        return
    console = Console(highlight=False)
    dropped = ", ".join(f"{n:,} {reason}" for reason, n in manifest.dropped.items() if n) or "none"
    label = f" + label {manifest.label}" if manifest.label else ", no label"
    console.print(
        f"[green]wrote[/] {out} · {manifest.rows:,} rows × {len(manifest.features)} features"
        f"{label} in {manifest.duration_s:.1f}s"
    )
    console.print(f"dropped: {dropped}; spine rows: {manifest.spine_rows:,}")
    console.print(f"manifest: {manifest_path(out)} · definitions {manifest.definitions_hash}")


@app.command("materialize")
def materialize_command(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_of: AsOf = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute every entity.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    engine: EngineOption = None,
    master: MasterOption = None,
) -> None:
    """Compute every entity's features as of T and write them to the online store."""
    project = Project.load(file, state_dir)
    engine = chosen_engine(project, engine, master)
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        with _progress() as progress:
            tasks: dict[str, object] = {}

            def report_progress(view: str, done: int, total: int | None) -> None:
                if view not in tasks:
                    tasks[view] = progress.add_task(view, total=total)
                progress.update(tasks[view], completed=done)  # type: ignore[arg-type]

            def report_step(step: str) -> None:  # Spark's stages, while it computes
                if "spark" not in tasks:
                    tasks["spark"] = progress.add_task(step, total=None)
                progress.update(tasks["spark"], description=step)  # type: ignore[arg-type]

            with command_run(project, "features.materialize") as run:
                report = materialize(
                    project,
                    store,
                    as_of=_utc(as_of),
                    full=full,
                    progress=report_progress,
                    engine=engine,
                    master=master,
                    say=report_step,
                )
                emit.materialized(run, project, list(report.views))
    finally:
        store.close()
    # on stderr, so that --json stays one document; the values were written all the same
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in report.warnings:
        errors.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    console = Console(highlight=False)
    for view, info in report.views.items():
        how = "changed entities" if info["incremental"] else "entities"
        console.print(f"{view}: {info['entities']:,} {how} written")
    console.print(
        f"[green]materialized[/] as of {report.as_of.isoformat()} in {report.duration_s:.1f}s"
    )


@app.command("compact")
def compact_command(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    view: Annotated[
        list[str] | None,
        typer.Option("--view", help="A tiled view to rebuild (repeatable; default: every one)."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            help="Keep only the tiles a read at this time or later needs (UTC; default: all).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rebuild the time tiles of tiled views (`tiles:`) from the offline history."""
    project = Project.load(file, state_dir)
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        report = compact(project, store, views=view or None, since=_utc(since))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"views": report.views, "duration_s": round(report.duration_s, 3)}))
        return
    console = Console(highlight=False)
    for name, tiles in report.views.items():
        console.print(f"{name}: {tiles:,} tiles written")
    console.print(f"[green]compacted[/] in {report.duration_s:.1f}s")


@app.command("stream")
def stream_command(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="A nats or `cdc: true` source to consume (repeatable; default: all).",
        ),
    ] = None,
    progress_s: Annotated[
        float, typer.Option("--progress-every", help="Seconds between progress lines.", min=0.1)
    ] = 10.0,
) -> None:
    """Apply the events of the `kind: nats` sources and the changes of the `cdc: true`
    postgres sources to the online store and the offline history, each exactly once, until
    SIGTERM (docs/features.md, Streams)."""
    import asyncio
    import logging

    try:
        # optional extra: nats-py is needed only to consume streams
        from taxiway.features.stream import run_streams
    except ImportError as error:
        if (error.name or "").startswith("taxiway"):
            raise
        raise MissingExtraError(
            "stream", needed_by="taxiway features stream", missing=[error.name or "nats"]
        ) from None
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    project = Project.load(file, state_dir)
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        totals = asyncio.run(
            run_streams(
                project.spec,
                store,
                project.state_dir,
                sources=source or None,
                progress_s=progress_s,
            )
        )
    finally:
        store.close()
    console = Console(highlight=False, stderr=True)
    for name, total in totals.items():
        console.print(f"{name}: {total.summary()}; stopped cleanly")


@app.command("get")
def get(
    entities: Annotated[
        list[str],
        typer.Argument(metavar="ENTITY=KEY", help="ENTITY=KEY pairs, e.g. customer=100001."),
    ],
    file: SpecOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print the online features of each ENTITY=KEY as a JSON list."""
    project = Project.load(file, state_dir)
    wanted: dict[str, list[str]] = {}
    order: list[tuple[str, str]] = []
    for item in entities:
        entity, sep, key = item.partition("=")
        if not sep or not key:
            raise SpecError(f"`{item}` is not ENTITY=KEY", fix="write e.g. `customer=123`")
        if entity not in project.spec.entities:
            known = ", ".join(sorted(project.spec.entities)) or "none"
            raise SpecError(f"unknown entity `{entity}` (known: {known})")
        wanted.setdefault(entity, []).append(key)
        order.append((entity, key))
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        found = {
            (entity, result.key): result
            for entity, keys in wanted.items()
            for result in lookup(project.spec, store, entity, keys)
        }
    finally:
        store.close()
    typer.echo(json.dumps([found[item].as_dict() for item in order], indent=2, default=str))


@app.command("skew")
def skew(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    as_of: AsOf = None,
    sample: Annotated[
        int | None,
        typer.Option(
            help="Entities to compare per entity type (default 100); with --from-log, logged "
            "answers (default 1,000)."
        ),
    ] = None,
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log",
            help="Compare what the service used (its prediction log) with the offline values "
            "at each answer's time.",
        ),
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="With --from-log: only answers from this time (UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare online vectors with offline values at T; exit 1 on any mismatch.

    T defaults to the last materialization time. With --from-log, a sample of the service's
    answers is compared instead, each at its own time.
    """
    project = Project.load(file, state_dir)
    if from_log:
        _skew_from_log(project, sample or 1000, _utc(since), as_json)
    if since is not None:
        raise SpecError("--since only applies with --from-log", fix="add --from-log")
    sample = 100 if sample is None else sample
    moment = _utc(as_of) or _last_materialized(project)
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        report = check_skew(project, store, as_of=moment, sample=sample)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        console = Console(highlight=False)
        console.print(
            f"compared {report.compared:,} values of {report.entities:,} entities as of "
            f"{report.as_of.isoformat()}: {len(report.mismatches)} mismatch(es)"
        )
        for m in report.mismatches[:50]:
            console.print(
                f"  {m.entity}={m.key} {m.feature}: online {m.online!r} offline {m.offline!r} ({m.reason})"
            )
    raise typer.Exit(EXIT_FAILURE if report.mismatches else EXIT_OK)


def _skew_from_log(
    project: Project, sample: int, since: datetime | None, as_json: bool
) -> NoReturn:
    log = (project.spec.serving or Serving()).log
    folder = Path(log.path) if log.path else project.state_dir / "predictions"
    files = log_files(folder)
    if not files:
        raise SpecError(
            f"no prediction has been logged in {folder}",
            fix="serve some predictions first, or check serving.log.path",
        )
    report = check_skew_from_log(project, files, sample=sample, since=since, mask=MASK)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print_log_skew(report)
    raise typer.Exit(EXIT_FAILURE if report.different else EXIT_OK)


def _print_log_skew(report: LogSkewReport) -> None:
    console = Console(highlight=False)
    span = (
        f" from {report.first.isoformat()} to {report.last.isoformat()}"
        if report.first and report.last
        else ""
    )
    console.print(
        f"compared {report.compared:,} values of {report.sampled:,} logged answers{span} "
        f"(of {report.answers:,} on the model path): {report.different} different"
    )
    table = Table("feature", "compared", "equal", "different", "skipped", box=None)
    for name, tally in report.features.items():
        skipped = "; ".join(f"{n:,} {reason}" for reason, n in tally.skipped.items())
        style = "red" if tally.different else None
        table.add_row(
            escape(name),
            f"{tally.compared:,}",
            f"{tally.equal:,}",
            f"{tally.different:,}",
            escape(skipped),
            style=style,
        )
    console.print(table)
    for name, tally in report.features.items():
        for d in tally.examples:
            note = f" ({d.note})" if d.note else ""
            console.print(
                escape(
                    f"  {name} {d.entity}={d.key} at {d.ts} ({d.status}, request {d.request_id}): "
                    f"served {d.served!r} offline {d.offline!r}{note}"
                )
            )


def _last_materialized(project: Project) -> datetime:
    path = project.state_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
        return max(datetime.fromisoformat(v["as_of"]) for v in state.values())
    except (OSError, ValueError, KeyError):
        raise SpecError(
            "nothing has been materialized yet, so there is no time to compare at",
            fix="run `taxiway features materialize` first, or pass --as-of",
        ) from None
