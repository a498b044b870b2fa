"""`taxiway run`: the retraining loop's scheduler, until stopped."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from typing import Annotated

import typer

from taxiway.cli.options import SpecOption, StateDirOption
from taxiway.spec.project import Project

__all__ = ["run"]


def run(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    tick: Annotated[
        str, typer.Option(help="How often to look: the cadence, the alerts, the rollout.")
    ] = "60s",
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            help="Take this time as now for the cadence and the retrain's window (a replay, "
            "a test); default: the wall clock, UTC."
        ),
    ] = None,
) -> None:
    """Retrain on the spec's cadence and on the monitor's alerts, and check the rollout.

    Every tick, in the one `taxiway run` of the model holding the retrain lock: a retrain
    (`taxiway retrain`) with the trigger of a new alert of a kind retrain.on lists (once per
    alert), else with trigger cadence when retrain.every has passed since the last; then the
    active rollout's check when due. SIGTERM or Ctrl-C finishes the step under way and exits.
    """
    from taxiway.rollout.run import Scheduler
    from taxiway.spec.durations import parse_duration
    from taxiway.sprint.approvals import ApprovalsLog

    try:
        period = parse_duration(tick)
    except ValueError as error:
        raise typer.BadParameter(f"{error}; e.g. --tick 60s", param_hint="--tick") from None
    if period.total_seconds() <= 0:
        raise typer.BadParameter("the tick must be positive, e.g. 60s", param_hint="--tick")
    project = Project.load(file, state_dir)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s taxiway run: %(message)s", force=True
    )
    moment = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    scheduler = Scheduler(
        project,
        clock=None if moment is None else (lambda: moment),
        signoffs=ApprovalsLog(),  # a routine retrain reuses the standing sign-offs
    )

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger("taxiway.run").info(
            "%s: finishing the step under way, then exiting", signal.Signals(signum).name
        )
        scheduler.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.say(f"started: tick {tick}, retrain every {scheduler.policy.every}")
        scheduler.run(period, once=once)
        scheduler.say("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
