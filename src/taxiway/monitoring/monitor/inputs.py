"""What one monitor run is given: plain data, resolved by the callers above (the CLI, the
service, the sprint)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from taxiway.monitoring.windows import Window
from taxiway.spec.models import Monitoring

__all__ = ["MonitorInputs"]


@dataclass(frozen=True)
class MonitorInputs:
    """Everything a run needs, as plain data (callers above resolve the spec and registry).

    ``reference`` is the version's stored monitor reference (``profile["monitor"]``);
    ``state_folder`` is where this version's monitor keeps its windows, cursor and
    predictions (the CLI uses ``<state>/monitor/<model>-v<version>``); ``contracts`` maps a
    source to its latest contract result (``{"status": "pass"|"warn"|"fail", "detail",
    "at"}``): a ``fail`` pages. ``sources`` maps a feature to where it comes from (``view
    customer_orders, source orders``) for the alerts. ``now``: the time the SLO burn is
    judged at (default: the end of the log's last minute). ``windows``: the log's windows
    profiled elsewhere (on Spark: :func:`taxiway.monitoring.spark_windows.spark_windows`),
    judged instead of the window store's.
    """

    name: str
    model: str
    version: int
    reference: dict[str, Any]
    log_folder: Path
    outcomes_folder: Path | None
    state_folder: Path
    window: timedelta
    since: datetime | None
    budget_ms: float | None
    monitoring: Monitoring | None
    task: str
    contracts: dict[str, Any] | None
    sources: dict[str, str] | None = None
    outcome_name: str | None = None
    now: datetime | None = None
    notes: list[str] = field(default_factory=list)
    windows: Sequence[Window] | None = None
