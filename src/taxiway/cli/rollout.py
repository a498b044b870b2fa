"""`taxiway rollout start|status|check|pause|resume|rollback|abort|run|simulate`: the gradual
rollout from the command line (the controller is :mod:`taxiway.rollout.controller`; `simulate`
rehearses the plan on simulated traffic through the real service and controller,
:mod:`taxiway.serving.simulation`, or for a spec with `recommend:` through the real
recommendation service, :mod:`taxiway.serving.recommend_simulation`). `start` audits candidate
versions with the spec's own handoff audit: a recommender's is
:func:`taxiway.recommend.audit.run_recommend_audit`.

Exit codes: 0 when the rollout is healthy (``check``: it held, promoted or completed; ``run``:
it completed); 1 when it was rolled back or aborted (or on an error); 3 when it paused for a
person to decide (inconclusive at the planned sample).
"""

from __future__ import annotations

import getpass
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.errors import EXIT_BLOCKED, EXIT_FAILURE, EXIT_OK, RolloutError
from taxiway.rollout.status import status_document
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.models.registry import ModelVersion
    from taxiway.rollout.controller import Controller
    from taxiway.rollout.state import RolloutState

__all__ = ["app"]

app = typer.Typer(
    help="Roll a candidate out step by step against a control group; promote, hold, pause or "
    "roll back on measured outcomes. Exit 0 healthy, 1 rolled back or aborted, 3 paused.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who acts (default: you).")]
_EXIT = {"rolled_back": EXIT_FAILURE, "aborted": EXIT_FAILURE, "paused": EXIT_BLOCKED}


def _controller(file: Any, state_dir: Any, by: str | None = None) -> Controller:
    from taxiway.rollout.controller import Controller

    return Controller(Project.load(file, state_dir), by=by or getpass.getuser())


@app.command("start")
def start(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    candidate: Annotated[
        int | None,
        typer.Option(
            "--candidate",
            help="The version to roll out. Default: the newest that passes the audit.",
        ),
    ] = None,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit",
            help="Audit candidate versions (newest first) to choose the default candidate; "
            "--no-audit takes the newest candidate-stage version.",
        ),
    ] = True,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout at the plan's first step (the spec's `rollout:` section)."""
    with _controller(file, state_dir, by) as controller:
        audited = _auditor(controller.project) if audit and candidate is None else None
        state = controller.start(candidate=candidate, audited=audited)
        _print(controller, state, as_json)


@app.command("status")
def status(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    events: Annotated[
        bool,
        typer.Option(
            "--events", help="Also list its transitions, after verifying the audit chain."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The running (else the last) rollout: state, step, share, last verdict, arms."""
    with _controller(file, state_dir) as controller:
        state = controller.store.active(controller.name) or controller.store.latest(controller.name)
        if state is None:
            raise RolloutError(
                f"model {controller.name!r} has had no rollout",
                fix="start one with `taxiway rollout start`",
            )
        if not events:
            _print(controller, state, as_json)
            return
        verified = controller.store.verify()  # RolloutError at the first broken event
        history = controller.store.events(state.id)
    if as_json:
        document = status_document(state)
        document["events"] = [event.as_dict() for event in history]
        document["chain"] = {"verified": True, "events": verified}
        typer.echo(json.dumps(document, indent=2))
        return
    _print(controller, state, False)
    console = Console(highlight=False)
    console.print(f"transitions (the audit chain of {verified} events verified):")
    for event in history:
        reason = event.evidence.get("reason") or "; ".join(event.evidence.get("reasons") or [])
        console.print(
            f"  {event.seq:>4}  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:9} {event.share:5g}%  "
            f"by {escape(event.by)}" + (f": {escape(reason)}" if reason else "")
        )


@app.command("check")
def check(
    file: SpecOption = None, state_dir: StateDirOption = None, as_json: JsonOption = False
) -> None:
    """Analyse now and act on the verdict (promote, hold, pause, roll back, complete)."""
    with _controller(file, state_dir, "taxiway rollout check") as controller:
        result = controller.check()
        _print(controller, result.state, as_json)
    raise typer.Exit(_EXIT.get(result.state.state, EXIT_OK))


def _transition(name: str, help_text: str) -> None:
    """Register `taxiway rollout <name>`: the controller's method of that name, with the
    person and the reason for the audit log."""

    def command(
        file: SpecOption = None,
        state_dir: StateDirOption = None,
        reason: ReasonOption = None,
        by: ByOption = None,
    ) -> None:
        with _controller(file, state_dir, by) as controller:
            _print(controller, getattr(controller, name)(reason=reason), False)

    command.__doc__ = help_text
    app.command(name)(command)


for _name, _help in (
    ("pause", "Hold the share where it is until `resume`."),
    ("resume", "Go on from a pause (the step's minimum duration starts again)."),
    ("rollback", "Send all traffic back to control now."),
    ("abort", "End the rollout without a decision (all traffic back to control)."),
):
    _transition(_name, _help)


@app.command("run")
def run(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    checks: Annotated[
        int | None, typer.Option("--checks", help="Stop after this many checks.")
    ] = None,
) -> None:
    """Check every `rollout.check_every` until the rollout completes, rolls back or is
    aborted (the automatic loop of `rollout.auto: true`)."""
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)

    def report(result: Any) -> None:
        verdict = result.verdict
        console.print(
            f"{datetime.now(UTC):%H:%M:%S} {verdict.kind} at {result.state.share:g}%: "
            + escape("; ".join(verdict.reasons + verdict.needs))
        )

    with _controller(file, state_dir, "taxiway rollout run") as controller:
        final = controller.run(
            on_check=report, on_error=lambda e: errors.print(escape(str(e))), max_checks=checks
        )
        _print(controller, final, False)
    raise typer.Exit(_EXIT.get(final.state, EXIT_OK))


@app.command("simulate")
def simulate(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    lift: Annotated[
        float,
        typer.Option(
            "--lift",
            help="The candidate's true relative improvement of the metric (0.05: 5% better, "
            "in the metric's direction; negative: harm).",
        ),
    ] = 0.05,
    units: Annotated[int, typer.Option("--units", help="Units arriving in all.")] = 50_000,
    base: Annotated[float, typer.Option("--base", help="The control's conversion rate.")] = 0.10,
    hours: Annotated[
        float | None,
        typer.Option(
            "--hours", help="Over how long they arrive. Default: 2 x steps x min_duration."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The simulation's random seed.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write simulation.json and simulation.svg here (default: a temporary folder).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rehearse the spec's rollout plan on simulated traffic with a known lift, through the
    real service and the real controller (in a folder of its own, serving the project's trained
    versions: the project's registry, logs and online store are untouched)."""
    import tempfile
    from datetime import timedelta

    from taxiway.rollout.replay import chart_svg
    from taxiway.serving.recommend_simulation import rehearse_recommend
    from taxiway.serving.simulation import rehearse

    project = Project.load(file, state_dir)
    rehearsal = rehearse_recommend if project.spec.recommend is not None else rehearse
    folder = out if out is not None else Path(tempfile.mkdtemp(prefix="taxiway-simulate-"))
    shutil.rmtree(
        folder / "replay", ignore_errors=True
    )  # a rehearsal's scratch: a rerun starts anew
    points = rehearsal(
        project,
        folder / "replay",
        lift=lift,
        base=base,
        units=units,
        duration=timedelta(hours=hours) if hours is not None else None,
        seed=seed,
    )
    last = points[-1]
    title = (
        f"{project.spec.name}: lift {lift:+.1%} on {base:.1%}, {units} units: "
        f"{last.verdict} at {last.share:g}% after {last.hours:.3g} h"
    )
    (folder / "simulation.json").write_text(
        json.dumps({"title": title, "checks": [p.as_dict() for p in points]}, indent=2) + "\n"
    )
    (folder / "simulation.svg").write_text(chart_svg(points, title))
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in points], indent=2))
        return
    console = Console(highlight=False)
    console.print(escape(title))
    for point in points:
        if point.verdict != "hold" or point is last:
            interval = "-" if point.low is None else f"[{point.low:.4g}, {point.high:.4g}]"
            console.print(
                f"  {point.hours:7.2f} h  {point.share:5g}%  {point.verdict:8}  units "
                f"{point.units[0]}/{point.units[1]}  interval {interval}"
            )
    console.print(f"written: {folder}/simulation.json, simulation.svg")


# --------------------------------------------------------------------------- output


def _print(controller: Controller, state: RolloutState, as_json: bool) -> None:
    document = status_document(state)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console(highlight=False)
    control = state.control
    against = (
        f"v{control['version']}"
        if control.get("kind") == "version"
        else f"constant {control.get('constant')}"
        if control.get("kind") == "constant"
        else "the baseline"
    )
    console.print(
        f"rollout {state.id} of {escape(state.name)}: [bold]{state.state.replace('_', ' ')}[/] "
        f"at step {document['step']}/{len(state.steps)}, {state.share:g}% to v{state.candidate} "
        f"(control: {against})"
    )
    if document["verdict"] is not None:
        console.print(f"last verdict: {document['verdict']} ({document['checked_at']})")
    for reason in document["reasons"]:
        console.print(f"  {escape(reason)}")
    for need in document["needs"]:
        console.print(f"  needs: {escape(need)}")
    interleaving = document.get("interleaving")
    if interleaving:
        console.print(
            f"interleaving ({interleaving.get('share'):g}% of users): "
            f"{interleaving.get('wins')} prefer the candidate, {interleaving.get('losses')} "
            f"control, {interleaving.get('ties')} ties, {interleaving.get('no_clicks')} no click; "
            f"always-valid p = {_number(interleaving.get('p_value'))}; pre-gate "
            + ("passed" if interleaving.get("passed") else "not passed")
        )
    if any(arm.get("units") is not None for arm in document["arms"]):
        table = Table(title_justify="left")
        for column in ("arm", "version", "units", "events", "mean", "interval"):
            table.add_column(column)
        for arm in document["arms"]:
            interval = arm.get("interval")
            table.add_row(
                arm["name"],
                str(arm.get("version") if arm.get("version") is not None else "-"),
                str(arm.get("units")),
                str(arm.get("events")),
                _number(arm.get("mean")),
                "-" if not interval else f"[{_number(interval[0])}, {_number(interval[1])}]",
            )
        console.print(table)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _auditor(project: Project) -> Any:
    """Whether a version passes the spec's handoff audit (no blocker): a recommender's
    (:func:`~taxiway.recommend.audit.run_recommend_audit`) for a spec with `recommend:`, else
    the classifier's, as `taxiway audit` chooses; an audit that cannot run is a failure,
    reported."""
    errors = Console(stderr=True, highlight=False)

    def audited(version: ModelVersion) -> bool:
        from taxiway.errors import TaxiwayError

        errors.print(f"auditing {version.name} v{version.version}...")
        try:
            if project.spec.recommend is not None:
                from taxiway.recommend.audit import run_recommend_audit

                report = run_recommend_audit(project, version)
            else:
                from taxiway.models.audit import run_audit

                report = run_audit(project, version)
        except TaxiwayError as error:
            errors.print(f"  the audit cannot run: {escape(error.message)}")
            return False
        if report.blocked:
            errors.print(f"  blocked: see `taxiway audit --model {version.version}`")
        return not report.blocked

    return audited
