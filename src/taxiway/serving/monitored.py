"""What the monitor needs of a served model, looked up once for every caller: `taxiway monitor`,
`taxiway dashboard`, the service's monitor process and the sprint.

The monitor (:mod:`taxiway.monitoring.monitor`) takes plain data; this module resolves what
it cannot import: the registry's version (``production``, else the newest) and the reference
stored with it at training, the log's folder and the outcomes' beside it, the spec's
monitoring section with its defaults, and where each feature comes from.

>>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
>>> [str(p) for p in log_folders(project)]
['/tmp/state/predictions', '/tmp/state/outcomes']
>>> feature_sources(project, ["customer_orders__order_count_30d", "channel"])
{'customer_orders__order_count_30d': 'view customer_orders, source orders', 'channel': 'the request'}
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from taxiway.errors import MonitoringError
from taxiway.spec.models import ModelSpec, Monitoring, Serving
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.models.registry import ModelVersion
    from taxiway.monitoring.monitor import MonitorInputs
    from taxiway.monitoring.report import MonitorReport

__all__ = [
    "QUALITY_METRICS",
    "feature_sources",
    "log_folders",
    "monitor_folder",
    "monitor_inputs",
    "notify",
    "resolve_version",
]

QUALITY_METRICS = frozenset({"roc_auc", "accuracy", "log_loss", "mae", "rmse"})
"""The model metrics the monitor measures (realised; roc_auc and accuracy estimated too)."""


def log_folders(project: Project) -> tuple[Path, Path]:
    """The prediction log's folder and the outcomes' folder the service writes for
    ``project`` (as :func:`taxiway.serving.log.open_prediction_log` resolves them)."""
    spec = (project.spec.serving or Serving()).log
    folder = Path(spec.path) if spec.path else project.state_dir / "predictions"
    return folder, folder.parent / "outcomes"


def monitor_folder(project: Project) -> Path:
    """Where the monitor keeps its windows, cursors and alert state: ``<state>/monitor``."""
    return project.state_dir / "monitor"


def resolve_version(project: Project, number: int | None = None) -> ModelVersion:
    """The version to monitor: ``number``, else the production one, else the newest."""
    from taxiway.models.registry import open_registry

    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        if number is not None:
            return registry.get(project.spec.name, number)
        production = registry.production(project.spec.name)
        return production if production is not None else registry.get(project.spec.name)
    finally:
        registry.close()


def monitor_inputs(
    project: Project,
    version: ModelVersion,
    *,
    window: timedelta | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
    log_folder: Path | None = None,
    state_folder: Path | None = None,
) -> MonitorInputs:
    """The monitor's inputs for ``version`` of ``project``'s model: its stored reference, the
    log and outcomes folders the service writes (or ``log_folder``), the spec's monitoring
    section (``window`` overriding its own), and the windows' folder (default
    ``<state>/monitor/<model>-v<version>``). Raises :class:`MonitoringError` when the version
    was trained before taxiway stored a monitor reference."""
    from taxiway.monitoring.monitor import MonitorInputs

    spec = project.spec
    reference = (version.profile or {}).get("monitor")
    if not isinstance(reference, dict) or not reference:
        raise MonitoringError(
            f"this version has no monitor reference: {spec.name} v{version.version} was "
            "trained before taxiway stored one, so its drift and quality cannot be judged",
            fix=f"retrain: `taxiway train -f {project.spec_path}`, then promote and serve the "
            "new version (or pick a newer one with --model-version)",
        )
    serving = spec.serving or Serving()
    monitoring = with_defaults(spec.monitoring or Monitoring(), spec.model, window)
    logs, outcomes = log_folders(project)
    if log_folder is not None:
        logs, outcomes = log_folder, log_folder.parent / "outcomes"
    label = getattr(spec, "label", None)
    return MonitorInputs(
        name=spec.name,
        model=spec.name,
        version=version.version,
        reference=reference,
        log_folder=logs,
        outcomes_folder=outcomes,
        state_folder=state_folder or monitor_folder(project) / f"{spec.name}-v{version.version}",
        window=monitoring.window,
        since=since,
        budget_ms=serving.latency_budget_ms,
        monitoring=monitoring,
        task=version.task,
        contracts=None,
        sources=feature_sources(project, list(version.features)),
        outcome_name=getattr(label, "name", None),
        now=now,
    )


def with_defaults(
    monitoring: Monitoring, model: ModelSpec | None, window: timedelta | None = None
) -> Monitoring:
    """The spec's section with ``window`` applied, and the quality metric defaulting to the
    model's own when the monitor measures it (:data:`QUALITY_METRICS`).

    >>> with_defaults(Monitoring(), ModelSpec(metric="roc_auc"), timedelta(minutes=5)).window
    datetime.timedelta(seconds=300)
    """
    if window is not None:
        monitoring = monitoring.model_copy(update={"window": window})
    metric = getattr(model, "metric", None)
    if monitoring.quality.metric is None and metric in QUALITY_METRICS:
        quality = monitoring.quality.model_copy(update={"metric": metric})
        monitoring = monitoring.model_copy(update={"quality": quality})
    return monitoring


def feature_sources(project: Project, features: list[str]) -> dict[str, str]:
    """Where each feature comes from, for the alerts' "where to look": ``view
    customer_orders, source orders``; a request field: ``the request``."""
    views = project.spec.features
    out = {}
    for name in features:
        view_name = name.split("__", 1)[0]
        view = views.get(view_name)
        if view is None:
            out[name] = "the request"
        else:
            source = getattr(view, "source", None)
            out[name] = f"view {view_name}" + (f", source {source}" if source else "")
    return out


def notify(project: Project, report: MonitorReport) -> None:
    """Send the report's alerts to the log, and to the webhook when the spec names one,
    deduplicated and rate-limited across every caller's runs by ``<state>/monitor/alerts.json``
    (one scope per model, so an alert still firing after a new version is not sent again)."""
    from taxiway.monitoring.alerts import AlertSinks

    logger = logging.getLogger("taxiway.monitoring")
    # the log sink reaches the logs only where the user set up logging (not Python's
    # last-resort handler on stderr, which would print each alert beside the summary)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    monitoring = project.spec.monitoring or Monitoring()
    webhook = monitoring.webhook.reveal() if monitoring.webhook is not None else None
    sinks = AlertSinks(monitor_folder(project) / "alerts.json", webhook=webhook)
    sinks.send(report.alerts, scope=report.model)
