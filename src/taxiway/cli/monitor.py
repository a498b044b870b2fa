"""`taxiway monitor`: drift, latency, SLO burn and quality of the served model, from its log;
`taxiway monitor export`: Prometheus alerting rules and a Grafana dashboard for the same.

The monitor itself (:mod:`taxiway.monitoring.monitor`) takes plain data;
:mod:`taxiway.serving.monitored` resolves what it cannot import (the registry's version,
``production`` else the newest, and its stored reference, the log's folder and the outcomes'
beside it), for this command as for the service, the dashboard and the sprint.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.cli.options import (
    EngineOption,
    MasterOption,
    SpecOption,
    StateDirOption,
    chosen_engine,
)
from taxiway.errors import EXIT_FAILURE, EXIT_OK, SpecError
from taxiway.serving.monitored import monitor_inputs, notify, resolve_version, with_defaults
from taxiway.spec.durations import EXPECTED, parse_duration
from taxiway.spec.models import Monitoring, Serving
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.models.registry import ModelVersion
    from taxiway.monitoring.monitor import MonitorInputs
    from taxiway.monitoring.recs import RecsInputs

__all__ = ["app"]

app = typer.Typer(
    help="Watch the served model: input and output drift against calibrated thresholds, "
    "latency and SLO burn, estimated and realised quality, alerts. Exit 0 healthy, 1 when an "
    "alert (page or ticket) is firing.",
)


@app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", help="The length of each window, e.g. 15m, 1h. Default: monitoring.window"
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Report the windows ending after this: an ISO time (UTC unless it says) or a "
            "duration back from now (6h, 7d). Default: every stored window.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write monitor.json, monitor.md and monitor.html here."),
    ] = None,
    model_version: Annotated[
        int | None,
        typer.Option(
            "--model-version",
            help="The version to monitor. Default: the production one, else the newest.",
        ),
    ] = None,
    engine: EngineOption = None,
    master: MasterOption = None,
) -> None:
    """Watch the served model from its prediction log: drift, latency, SLOs, quality, alerts.

    Exit 0 when healthy, 1 when an alert (page or ticket) is firing. The log's windows are
    profiled on duckdb (in this process, only the new records) or, with `--engine spark`, on
    Spark (the whole log, one profile per partition).
    """
    if ctx.invoked_subcommand is not None:
        return
    from taxiway.monitoring.monitor import run_monitor
    from taxiway.monitoring.report import summary_lines, write_report

    length, start = _window(window), _since(since, datetime.now(UTC))
    project = Project.load(file, state_dir)
    on_spark = chosen_engine(project, engine, master) == "spark"
    version = resolve_version(project, model_version)
    if project.spec.recommend is not None:
        _monitor_recommendations(project, version, length, start, as_json=as_json, out=out)
    inputs = monitor_inputs(project, version, window=length, since=start)
    if on_spark:
        inputs = _profiled_on_spark(project, inputs, master)
    report = run_monitor(inputs)
    notify(project, report)
    written = write_report(report, out) if out is not None else []
    _finish(
        report.to_json(), summary_lines(report), written, healthy=report.healthy, as_json=as_json
    )


@app.command("export")
def export(
    file: SpecOption = None,
    state_dir: StateDirOption = None,
    prometheus_rules: Annotated[
        Path | None,
        typer.Option("--prometheus-rules", help="Write Prometheus alerting rules (YAML) here."),
    ] = None,
    grafana: Annotated[
        Path | None,
        typer.Option("--grafana", help="Write a Grafana dashboard (JSON) here."),
    ] = None,
    model_version: Annotated[
        int | None,
        typer.Option("--model-version", help="The version whose features the rules name."),
    ] = None,
) -> None:
    """Write Prometheus alerting rules and a Grafana dashboard for this model's metrics.

    The rules page on the SLO burn-rate pairs and ticket on drift, from the gauges the service
    exports on /metrics.
    """
    from taxiway.monitoring import export as exporting
    from taxiway.monitoring.slo import SloName, SloSpec

    if prometheus_rules is None and grafana is None:
        raise typer.BadParameter(
            "nothing to export: pass --prometheus-rules FILE, --grafana FILE, or both"
        )
    project = Project.load(file, state_dir)
    spec = project.spec
    monitoring = with_defaults(spec.monitoring or Monitoring(), spec.model)
    budget_ms = (spec.serving or Serving()).latency_budget_ms
    version = _version_if_any(project, model_version)
    features = list(version.features) if version is not None else []
    objectives: list[tuple[SloName, float | None]] = [
        ("latency", monitoring.slo.latency),
        ("errors", monitoring.slo.errors),
    ]
    slos = [
        SloSpec(name, objective, monitoring.slo.period)
        for name, objective in objectives
        if objective is not None
    ]
    console = Console(highlight=False, soft_wrap=True)
    if prometheus_rules is not None:
        rules = exporting.prometheus_rules(
            spec.name,
            spec.name,
            slos,
            features,
            budget_ms=budget_ms,
            quality=_quality_floors(monitoring, version),
        )
        prometheus_rules.parent.mkdir(parents=True, exist_ok=True)
        prometheus_rules.write_text(rules)
        console.print(f"written: {escape(str(prometheus_rules))}")
    if grafana is not None:
        board = exporting.grafana_dashboard(
            spec.name, spec.name, features, slos=slos, budget_ms=budget_ms
        )
        grafana.parent.mkdir(parents=True, exist_ok=True)
        grafana.write_text(json.dumps(board, indent=2) + "\n")
        console.print(f"written: {escape(str(grafana))}")


def _finish(
    document: object, summary: list[str], written: list[Path], *, healthy: bool, as_json: bool
) -> NoReturn:
    """Print a monitor's report (its JSON ``document``, or its ``summary`` lines and the files
    ``written``) and exit 0 when ``healthy``, else 1."""
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        console = Console(highlight=False, soft_wrap=True)
        for line in summary:
            console.print(escape(line))
        if written:
            console.print(f"written: {', '.join(str(p) for p in written)}")
    raise typer.Exit(EXIT_OK if healthy else EXIT_FAILURE)


def _profiled_on_spark(
    project: Project, inputs: MonitorInputs, master: str | None
) -> MonitorInputs:
    """``inputs`` with the whole log's windows profiled on Spark (spec's ``spark:`` settings,
    ``master`` first); unchanged when there is no log (the monitor then says so)."""
    from taxiway.data.stage_spark import open_spark_engine
    from taxiway.monitoring.monitor import LOG_PATTERN
    from taxiway.monitoring.spark_windows import spark_windows

    paths = sorted(p for p in inputs.log_folder.glob(LOG_PATTERN) if p.is_file())
    if not paths:
        return inputs
    # the engine only hands over its session: profiling writes nothing to its temp folder
    session = open_spark_engine(project, inputs.state_folder, master).session
    windows, untimed = spark_windows(
        session,
        paths,
        inputs.reference,
        window=inputs.window,
        budget_ms=inputs.budget_ms,
        version=inputs.version,
    )
    skipped = [f"{untimed} record(s) without a readable ts skipped"] if untimed else []
    return replace(inputs, windows=windows, notes=[*inputs.notes, *skipped])


def _version_if_any(project: Project, number: int | None) -> ModelVersion | None:
    """The version the rules name the features of; None before the first is trained (the
    rules then cover the SLOs and the output). A version asked for by number must exist."""
    from taxiway.errors import RegistryError

    try:
        return resolve_version(project, number)
    except RegistryError:
        if number is not None:
            raise
        return None


def _quality_floors(monitoring: Monitoring, version: ModelVersion | None) -> dict[str, float]:
    """The quality floor to page at, as the monitor judges it: ``monitoring.quality.min``,
    else the version's training-time value minus 0.05 (for a metric in [0, 1])."""
    from taxiway.monitoring.monitor.quality_watch import LOWER_IS_BETTER, QUALITY_MARGIN

    metric = monitoring.quality.metric or "roc_auc"
    if monitoring.quality.min is not None:
        return {metric: monitoring.quality.min}
    reference = (version.profile or {}).get("monitor", {}) if version is not None else {}
    metrics = (reference.get("quality") or {}).get("metrics") or {}
    value = metrics.get(metric)
    if isinstance(value, int | float) and 0 <= value <= 1 and metric not in LOWER_IS_BETTER:
        return {metric: float(value) - QUALITY_MARGIN}
    return {}


# --- recommendations ------------------------------------------------------------------------


def _monitor_recommendations(
    project: Project,
    version: ModelVersion,
    window: timedelta | None,
    since: datetime | None,
    *,
    as_json: bool,
    out: Path | None,
) -> None:
    """`taxiway monitor` on a spec with ``recommend:``: the served lists, from the log."""
    from taxiway.monitoring.alerts import AlertSinks
    from taxiway.monitoring.recs import run_recs_monitor, summary_lines, write_report

    report = run_recs_monitor(recs_inputs(project, version, window=window, since=since))
    monitoring = project.spec.monitoring or Monitoring()
    webhook = monitoring.webhook.reveal() if monitoring.webhook is not None else None
    sinks = AlertSinks(project.state_dir / "monitor" / "alerts.json", webhook=webhook)
    sinks.send(report.alerts, scope=report.model)
    written = write_report(report, out) if out is not None else []
    _finish(
        report.to_json(), summary_lines(report), written, healthy=report.healthy, as_json=as_json
    )


def recs_inputs(
    project: Project,
    version: ModelVersion,
    *,
    window: timedelta | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> RecsInputs:
    """The recommendation monitor's inputs for ``version``: its catalog (every item, those on
    offer in its newest catalog state, each item's interactions in its stored history), its
    registered metrics, the log and outcomes folders the service writes, and the interactions
    source read through its contract (only when answers wait to be judged)."""
    import numpy as np
    import pyarrow as pa

    from taxiway.monitoring.recs import CatalogFacts, RecsInputs
    from taxiway.recommend.metrics import parse_metric
    from taxiway.recommend.pipeline import Recommender
    from taxiway.recommend.training import load_recommend_data
    from taxiway.serving.monitored import log_folders

    spec = project.spec
    recommend = spec.recommend
    assert recommend is not None  # nosec B101
    recommender = Recommender.load(_recommender_folder(version))
    items = tuple(str(i) for i in recommender.items)
    newest = recommender.catalog.as_of(int(np.iinfo(np.int64).max))
    popularity = np.bincount(recommender.histories.item, minlength=len(items)).astype(np.float64)
    catalog = CatalogFacts(
        items=items,
        available=frozenset(
            i for i, on in zip(items, newest.available.tolist(), strict=True) if on
        ),
        popularity=popularity[: len(items)],
    )

    def interactions() -> pa.Table:
        seen = load_recommend_data(project).interactions
        return pa.table(
            {
                "user": pa.array(seen.users[seen.user].tolist(), pa.string()),
                "item": pa.array(seen.items[seen.item].tolist(), pa.string()),
                "at": pa.array(seen.at, pa.int64()),
            }
        )

    monitoring = with_defaults(spec.monitoring or Monitoring(), None, window)
    logs, outcomes = log_folders(project)
    rollout = getattr(spec, "rollout", None)
    metric = getattr(rollout, "metric", None)
    return RecsInputs(
        model=spec.name,
        version=version.version,
        log_folder=logs,
        outcomes_folder=outcomes,
        state_folder=project.state_dir / "monitor" / f"{spec.name}-v{version.version}",
        window=monitoring.window,
        since=since,
        budget_ms=(spec.serving or Serving()).latency_budget_ms,
        monitoring=monitoring,
        catalog=catalog,
        metrics=dict(version.metrics or {}),
        k=parse_metric(recommend.metric)[1],
        interactions=interactions,
        outcome_name=getattr(metric, "name", None),
        now=now,
    )


def _recommender_folder(version: ModelVersion) -> Path:
    """Where the version's Recommender is: its artifact folder, or ``recommender/`` in it."""
    from taxiway.errors import MonitoringError

    root = Path(version.artifact_dir)
    for folder in (root, root / "recommender"):
        if (folder / "recommender.json").exists():
            return folder
    raise MonitoringError(
        f"version {version.version} of {version.name} holds no recommender "
        f"(no recommender.json in {root})",
        fix="monitor a version trained from a spec with `recommend:` (`taxiway models list`)",
    )


# --- resolving what the monitor cannot import ------------------------------------------------


def _window(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        window = parse_duration(text)
    except ValueError:
        window = timedelta(0)
    if window < timedelta(minutes=1):
        raise SpecError(
            f"--window {text!r} is not a window length",
            fix=f"give {EXPECTED}, of at least 1m (e.g. --window 1h)",
        )
    return window


def _since(text: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO time (UTC unless it says), or a duration back from ``now``.

    >>> now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    >>> _since("6h", now).isoformat(), _since("2026-12-06T05:00", now).isoformat()
    ('2026-12-06T06:00:00+00:00', '2026-12-06T05:00:00+00:00')
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text)
        except ValueError:
            raise SpecError(
                f"--since {text!r} is neither a time nor a duration",
                fix="give an ISO time (2026-12-06T05:00) or a duration back from now (6h, 7d)",
            ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
