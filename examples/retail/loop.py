"""The retraining loop on the retail shop, three cycles (`make demo-loop`), embedded backends only.

The shop's whole history is simulated once (:mod:`simulate`, seeded), with a change of
behaviour on :data:`SHIFT`: customers browse a third of the pages they used to (the
sessions' ``pages`` drift), and churn stops following recent activity (a concept change,
see simulate.py). Time then advances: before each cycle, the extract the warehouse would hold
at that moment is written (``simulate.known_by``) and `taxiway run`'s scheduler
(:class:`taxiway.rollout.run.Scheduler`) ticks once with its clock at that moment:

0. **v1**, trained as of :data:`T0` by the retrain's own gates (trigger ``manual``) and promoted
   with `taxiway models promote 1`: the production version the loop starts from;
1. :data:`T1`, **routine**: the cadence is due (no retrain ran yet); the candidate passes every
   gate, is at least as good as production on the same rows, and its rollout starts
   (``retrain.auto_rollout``; the spec requires no sign-off);
2. :data:`T2`, **drift**: production scores this week's customers into the service's
   prediction log, `taxiway monitor` reads it and its drift alert fires; the next tick
   retrains with the alert as its trigger, and the candidate beats production on the new
   behaviour;
3. :data:`T3`, **worse**: the team limits the model to three 7-day inputs (``model.features``
   in the spec); the cadence retrain's candidate beats its baseline but not production on the
   same rows, so it is archived and no rollout starts.

A rollout decides on weeks of live outcomes, which a demo without a service has none of: after
cycles 1 and 2 the demo ends the rollout (``abort``, with that reason recorded) and promotes
the candidate by hand (`taxiway models promote`), as its owner would once it completed. The
end is `taxiway models history`. Everything lives under ``--out`` (default
``examples/retail/.loop``), rebuilt on each run.

    python examples/retail/loop.py [--out DIR] [--customers 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from simulate import Trouble, known_by, simulate

from taxiway.cli import main as taxiway
from taxiway.features.training_set import cached_training_set
from taxiway.models.artifact import load_model
from taxiway.models.registry import open_registry
from taxiway.models.retrain import RetrainResult, retrain_candidate
from taxiway.rollout.controller import Controller
from taxiway.rollout.run import Scheduler, alert_triggers
from taxiway.serving.log import PredictionLog
from taxiway.serving.monitored import log_folders
from taxiway.spec.project import Project

HERE = Path(__file__).resolve().parent
START, END = date(2024, 1, 1), date(2026, 6, 30)
SHIFT = date(2025, 9, 15)
"""From this day on, customers browse less and churn no longer follows their activity."""
T0 = datetime(2025, 6, 2, tzinfo=UTC)
T1 = datetime(2025, 9, 1, tzinfo=UTC)
T2 = datetime(2026, 3, 16, tzinfo=UTC)
T3 = T2 + timedelta(days=7)
POLICY = "{{every: 7d, on: [drift], window: 180d, min_new_rows: {rows}, auto_rollout: true}}"
"""The retraining policy; ``min_new_rows`` is a quarter of the customers (a week brings ~0.9
source rows a customer)."""
FEWER = (
    "customer_orders__order_count_7d, customer_sessions__session_count_7d, "
    "customer_sessions__pages_viewed_7d"
)
"""Cycle 3's inputs: the team limits the model to last week's activity."""

Say = Callable[[str], None]


@dataclass
class Cycle:
    """One tick of the loop: when, what triggered it, where it stopped."""

    name: str
    at: datetime
    trigger: str | None
    result: RetrainResult | None


def write_spec(folder: Path, customers: int) -> Path:
    """The retail spec in ``folder`` for the loop: its spine runs on past the data (the
    retrain's window cuts it), no sign-off required, rollouts against production, and the
    retraining policy :data:`POLICY`."""
    text = (HERE / "taxiway.yaml").read_text()
    for old, new in (
        ("  end: 2025-09-29", "  end: 2026-12-28"),
        ("approvals: [security, privacy, business]", "approvals: []"),
        ("control: baseline ", "control: production "),
    ):
        if old not in text:
            raise SystemExit(f"examples/retail/taxiway.yaml no longer has {old!r}: update loop.py")
        text = text.replace(old, new)
    shutil.copytree(HERE / "contracts", folder / "contracts")
    spec = folder / "taxiway.yaml"
    policy = POLICY.format(rows=max(1, customers // 4))
    spec.write_text(f"{text}\nretrain: {policy}\n")
    return spec


def run_loop(
    folder: Path, *, customers: int = 2_000, seed: int = 7, say: Say = print
) -> list[Cycle]:
    """v1 and the three cycles in ``folder`` (emptied first); each cycle's tick, in order."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    full, data = folder / "history", folder / "data"
    trouble = Trouble(SHIFT, drift={"pages": 0.3}, concept_change=True)
    rows = simulate(full, customers, seed, START, END, trouble)
    say(
        f"simulated {customers:,} customers, {START} to {END}: {rows['orders']:,} orders, "
        f"{rows['sessions']:,} sessions; from {SHIFT} they browse a third of the pages and "
        "churn stops following their activity"
    )
    spec = write_spec(folder, customers)

    _advance(full, data, T0, say)
    project = Project.load(spec)
    first = retrain_candidate(project, as_of=T0, trigger="manual")
    if first.candidate is None or first.gate != "candidate":
        raise SystemExit(f"v1 did not pass the retrain's gates: {first.gate}: {first.reason}")
    _taxiway(say, "models", "promote", str(first.candidate), "-f", str(spec), "--by", "demo")
    say(f"v{first.candidate} in production ({_scores(first)})")

    cycles = []
    say(f"\n== cycle 1, {T1.date()}: the cadence")
    _advance(full, data, T1, say)
    cycles.append(_tick("routine", project, T1, say))
    _promote_by_hand(project, cycles[-1], say)

    say(f"\n== cycle 2, {T2.date()}: the monitor")
    _advance(full, data, T2, say)
    _production_traffic(project, T2, say)
    code = _taxiway(say, "monitor", "-f", str(spec), check=False)
    firing = alert_triggers(project.state_dir / "monitor" / "alerts.json", ["drift"])
    say(f"`taxiway monitor` exit {code}: {len(firing)} drift alerts firing: {', '.join(firing)}")
    cycles.append(_tick("drift", project, T2, say))
    _promote_by_hand(project, cycles[-1], say)

    say(f"\n== cycle 3, {T3.date()}: the cadence, after a change to the spec")
    spec.write_text(
        spec.read_text().replace(
            "  baseline_feature: customer_orders__order_count_30d",
            f"  baseline_feature: customer_orders__order_count_7d\n  features: [{FEWER}]",
        )
    )
    say(f"the team limits the model to {FEWER} (model.features)")
    _advance(full, data, T3, say)
    cycles.append(_tick("worse", Project.load(spec), T3, say))

    say("\n== taxiway models history")
    _taxiway(say, "models", "history", "-f", str(spec))
    return cycles


def _advance(full: Path, data: Path, moment: datetime, say: Say) -> None:
    rows = known_by(full, data, moment)
    say(
        f"the warehouse as of {moment.date()}: {rows['orders']:,} orders, {rows['sessions']:,} sessions"
    )


def _tick(name: str, project: Project, now: datetime, say: Say) -> Cycle:
    """One tick of `taxiway run`'s scheduler with its clock at ``now``."""
    scheduler = Scheduler(project, clock=lambda: now, progress=lambda _: None)
    try:
        began = time.perf_counter()
        tick = scheduler.tick()
    finally:
        scheduler.close()
    if not tick.led:
        raise SystemExit("another `taxiway run` holds the retrain lock of this demo's registry")
    result = tick.result
    say(f"trigger: {tick.trigger or 'none'}")
    if result is None:
        say("no retrain ran (see the scheduler's log)")
        return Cycle(name, now, tick.trigger, None)
    window = result.window
    say(
        f"window: {window.get('start')} to {window.get('end')}; "
        f"{result.new_rows:,} new source rows since v{result.previous}"
    )
    say(
        f"gate: {result.gate} (candidate v{result.candidate}), in {time.perf_counter() - began:.1f} s"
    )
    if result.scores:
        say(f"figures, {result.metric} on the candidate's validation rows: {_scores(result)}")
    say(f"why: {result.reason}")
    return Cycle(name, now, tick.trigger, result)


def _scores(result: RetrainResult) -> str:
    return ", ".join(
        f"{who} {'-' if value is None else f'{value:.4f}'}" for who, value in result.scores.items()
    )


def _promote_by_hand(project: Project, cycle: Cycle, say: Say) -> None:
    """End the candidate's rollout (no live traffic here to decide it) and promote it."""
    result = cycle.result
    if result is None or result.gate != "rollout_started" or result.candidate is None:
        return
    reason = (
        f"demo: no live traffic to decide on; v{result.candidate} is promoted by hand, as its "
        "owner would once the rollout completed"
    )
    with Controller(project, by="demo") as controller:
        controller.abort(reason=reason)
    say(reason)
    _taxiway(
        say,
        "models",
        "promote",
        str(result.candidate),
        "-f",
        str(project.spec_path),
        "--by",
        "demo",
    )


def _production_traffic(project: Project, now: datetime, say: Say) -> None:
    """Production scores the customers of the Monday before ``now``, and the answers go to
    the service's prediction log, written by the service's own writer."""
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        production = registry.production(project.spec.name)
    finally:
        registry.close()
    assert production is not None
    monday = (now - timedelta(days=now.weekday() or 7)).replace(tzinfo=None)
    label = project.spec.label
    entity = getattr(label, "entity", None)
    spine = project.spec.spine.model_copy(update={"start": monday, "end": monday, "entity": entity})
    # no label: these customers' next 60 days have not happened yet
    week = dataclasses.replace(
        project, spec=project.spec.model_copy(update={"spine": spine, "label": None})
    )
    out = project.state_dir / "traffic" / "week.parquet"
    cached_training_set(week, out)
    table = pq.read_table(out)
    scores = load_model(production.artifact_dir).predict_table(table)
    features = {f: table[f].to_pylist() for f in production.features}
    folder, _ = log_folders(project)
    stamp = datetime.now(UTC).isoformat()
    with PredictionLog(folder, worker="demo") as log:
        for i in range(table.num_rows):
            record: dict[str, Any] = {
                "ts": stamp,
                "request_id": f"week-{i}",
                "model_version": production.version,
                "arm": "production",
                "path": "model",
                "degraded": False,
                "prediction": float(scores[i]),
                "latency_ms": 1.0,
                "features": {f: features[f][i] for f in production.features},
            }
            log.append_sync(record)
    say(
        f"production v{production.version} scored {table.num_rows:,} customers as of {monday.date()}"
    )


def _taxiway(say: Say, *args: str, check: bool = True) -> int:
    say(f"$ taxiway {' '.join(args)}")
    code = taxiway(list(args))
    if check and code != 0:
        raise SystemExit(f"`taxiway {' '.join(args)}` exited {code}")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / ".loop", help="the demo's folder")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    cycles = run_loop(args.out, customers=args.customers, seed=args.seed)
    gates = ", ".join(f"{c.name}: {c.result.gate if c.result else 'none'}" for c in cycles)
    print(f"\n{gates} ({time.perf_counter() - began:.0f} s)")
    expected = ["rollout_started", "rollout_started", "worse_than_production"]
    return 0 if [c.result.gate if c.result else None for c in cycles] == expected else 1


if __name__ == "__main__":
    sys.exit(main())
