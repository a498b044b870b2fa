"""Prometheus metrics of the service (``GET /metrics``).

One registry per process. With several workers, each keeps its own and ``/metrics`` serves the
answering worker's view unless ``PROMETHEUS_MULTIPROC_DIR`` is set (``taxiway serve`` sets it
for ``--workers`` > 1, so the numbers are summed over workers).

The per-request series (latency, requests, fallbacks, missing features, out-of-range inputs,
store and log-commit times) are tallied in plain process memory and handed to
prometheus_client by :meth:`Metrics.flush`: in multi-process mode every increment there is a
locked write into a memory-mapped file (seven per answered request, about a tenth of its CPU),
while a tally is an addition. ``/metrics`` flushes the answering worker first, so its own
figures are exact; the service flushes every :data:`FLUSH_INTERVAL_S` too, so the other
workers' figures are at most that old (and a worker killed outright loses at most that much
of its counts). Not thread-safe: tally and flush on one event loop.

The monitor's gauges (drift per feature, SLO burn rates, quality, the last report's time) are
set by :meth:`Metrics.set_monitor` from the in-service monitor's thread (prometheus_client's
own locks), in the one worker that runs it (:mod:`taxiway.serving.monitor_task`).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, TypeGuard, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "FLUSH_INTERVAL_S", "Metrics", "Tally", "TallyHistogram"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BOUNDS = (*_BUCKETS, float("inf"))

FLUSH_INTERVAL_S = 1.0


class Tally:
    """A counter's increments, kept until :meth:`flush` adds them to the counter ``target``.

    >>> registry = CollectorRegistry()
    >>> tally = Tally(Counter("answers", "Answers.", registry=registry))
    >>> tally.inc(); tally.inc(2)
    >>> registry.get_sample_value("answers_total")
    0.0
    >>> tally.flush(); registry.get_sample_value("answers_total")
    3.0
    """

    __slots__ = ("pending", "target")

    def __init__(self, target: Any) -> None:
        self.target = target
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Count ``amount`` more."""
        self.pending += amount

    def flush(self) -> None:
        """Hand the pending increments to the counter."""
        if self.pending:
            self.target.inc(self.pending)
            self.pending = 0.0


class TallyHistogram:
    """A histogram's observations (count per bucket, sum), kept until :meth:`flush` adds them
    to the histogram ``target``, whose buckets are ``bounds`` (the last one ``+Inf``)."""

    __slots__ = ("bounds", "counts", "pending", "sum", "target")

    def __init__(self, target: Any, bounds: tuple[float, ...] = _BOUNDS) -> None:
        if tuple(target._upper_bounds) != bounds:
            raise ValueError(f"the histogram's buckets are {target._upper_bounds}, not {bounds}")
        self.target = target
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.pending = False

    def observe(self, amount: float) -> None:
        """Observe ``amount`` (into the first bucket whose bound is at least it, as
        prometheus_client does)."""
        self.sum += amount
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.pending = True

    def flush(self) -> None:
        """Hand the pending observations to the histogram (its per-bucket values and sum:
        prometheus_client has no public call adding many observations at once)."""
        if not self.pending:
            return
        target = self.target
        target._sum.inc(self.sum)
        counts = self.counts
        for index, count in enumerate(counts):
            if count:
                target._buckets[index].inc(count)
                counts[index] = 0
        self.sum = 0.0
        self.pending = False


_T = TypeVar("_T", "Tally", "TallyHistogram")


_STATUS_CODES = {"ok": 0.0, "warn": 1.0, "drift": 2.0}
_NOT_QUALITY = frozenset({"n", "rows", "joined", "windows", "trusted"})


def _is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (never a bool).

    >>> _is_number(0.3), _is_number(True), _is_number(float("nan")), _is_number(None)
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value == value and abs(value) != float("inf")


class Metrics:
    """Every series the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "taxiway_request_latency_seconds",
            "Prediction latency by answer path and arm.",
            ["path", "arm"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "taxiway_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.fallbacks = Counter(
            "taxiway_fallbacks",
            "Answers from the fallback chain, by which and why.",
            ["which", "reason"],
            registry=r,
        )
        self.missing_features = Counter(
            "taxiway_missing_features",
            "Answers some of whose online features were missing (unknown entity, never "
            "materialized) or stale (older than the ttl), by view and status.",
            ["view", "status"],
            registry=r,
        )
        self.shed = Counter("taxiway_shed_requests", "Requests refused with 429.", registry=r)
        self.store_latency = Histogram(
            "taxiway_online_store_latency_seconds",
            "Online-store lookup time.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.out_of_range = Counter(
            "taxiway_out_of_range_inputs",
            "Request fields outside the training range.",
            ["field"],
            registry=r,
        )
        self.model_version = Gauge(
            "taxiway_model_version",
            "The model version being served.",
            ["name"],
            multiprocess_mode="max",
            registry=r,
        )
        self.breaker_open = Gauge(
            "taxiway_circuit_open",
            "1 when a circuit breaker is open.",
            ["breaker"],
            multiprocess_mode="max",
            registry=r,
        )
        self.fault = Gauge(
            "taxiway_fault_injected",
            "1 for each fault injected by TAXIWAY_FAULTS (a drill, never production).",
            ["target", "mode"],
            multiprocess_mode="max",
            registry=r,
        )
        self.log_commit = Histogram(
            "taxiway_prediction_log_commit_seconds",
            "Time from append to durable.",
            buckets=_BUCKETS,
            registry=r,
        )
        # the monitor's last report (set by the one process that runs it: livemostrecent, so a
        # dead leader's values go when the supervisor marks it dead)
        self.drift_statistic = Gauge(
            "taxiway_drift_statistic",
            "The drift statistic of each input feature (and __output__) over the monitored "
            "period, against the version's reference.",
            ["model", "feature"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.drift_threshold = Gauge(
            "taxiway_drift_threshold",
            "The alert threshold of each feature's drift statistic (calibrated to the window "
            "size, or the spec's fixed one).",
            ["model", "feature"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.drift_status = Gauge(
            "taxiway_drift_status",
            "Each feature's drift status: 0 ok, 1 warn (the last window over the threshold), "
            "2 drift (k of the last m windows over it).",
            ["model", "feature"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.slo_burn_rate = Gauge(
            "taxiway_slo_burn_rate",
            "How fast each SLO's error budget burns over each window (1 = exactly on budget).",
            ["model", "slo", "window"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.quality = Gauge(
            "taxiway_quality",
            "Model quality over the monitored period: estimated (CBPE, before labels) or "
            "realised (predictions joined to outcomes).",
            ["model", "metric", "kind"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.monitor_run = Gauge(
            "taxiway_monitor_last_run_timestamp_seconds",
            "When the in-service monitor last produced a report (Unix time): a failing or "
            "stalled monitor leaves it behind.",
            ["model"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )

        # the per-request series' tallies (labelled ones made on first use: ``labels()``
        # validates and locks on every call), each flushed into its prometheus_client child
        self._tallies: list[Tally | TallyHistogram] = []
        self._latency: dict[tuple[str, str], TallyHistogram] = {}
        self._requests: dict[tuple[str, str], Tally] = {}
        self._missing: dict[tuple[str, str], Tally] = {}
        self._fallbacks: dict[tuple[str, str], Tally] = {}
        self._out_of_range: dict[str, Tally] = {}
        self.store_latency_tally = self._tally(TallyHistogram(self.store_latency))
        self.log_commit_tally = self._tally(TallyHistogram(self.log_commit))

    def _tally(self, tally: _T) -> _T:
        self._tallies.append(tally)
        return tally

    def latency_of(self, path: str, arm: str) -> TallyHistogram:
        """The latency histogram of one answer path and arm."""
        tally = self._latency.get((path, arm))
        if tally is None:
            tally = TallyHistogram(self.latency.labels(path, arm))
            self._latency[(path, arm)] = self._tally(tally)
        return tally

    def requests_of(self, route: str, status: str) -> Tally:
        """The request counter of one route and status (routes are a fixed set of names)."""
        tally = self._requests.get((route, status))
        if tally is None:
            tally = self._requests[(route, status)] = self._tally(
                Tally(self.requests.labels(route, status))
            )
        return tally

    def missing_of(self, view: str, status: str) -> Tally:
        """The counter of answers short of one view's features (views are the spec's)."""
        tally = self._missing.get((view, status))
        if tally is None:
            tally = self._missing[(view, status)] = self._tally(
                Tally(self.missing_features.labels(view, status))
            )
        return tally

    def fallbacks_of(self, which: str, reason: str) -> Tally:
        """The counter of fallback answers by which step and (a low-cardinality) reason."""
        tally = self._fallbacks.get((which, reason))
        if tally is None:
            tally = self._fallbacks[(which, reason)] = self._tally(
                Tally(self.fallbacks.labels(which, reason))
            )
        return tally

    def out_of_range_of(self, name: str) -> Tally:
        """The counter of one request field's values outside the training range (fields are
        the model's)."""
        tally = self._out_of_range.get(name)
        if tally is None:
            tally = self._out_of_range[name] = self._tally(Tally(self.out_of_range.labels(name)))
        return tally

    def set_monitor(self, model: str, report: Mapping[str, Any]) -> None:
        """The gauges of a monitor report (``MonitorReport.to_json()``'s shape), and the
        time of the report; a value the report lacks (no threshold yet, no quality) leaves its
        gauge unset.

        >>> metrics = Metrics()
        >>> metrics.set_monitor("churn", {
        ...     "features": [{"name": "spend", "value": 0.31, "threshold": 0.1, "status": "drift"}],
        ...     "output": {"name": "prediction", "value": 0.01, "threshold": 0.1, "status": "ok"},
        ...     "slo": [{"name": "latency", "burn": {"5m": 2.0, "1h": 0.5}}],
        ...     "quality": {"estimated": {"roc_auc": 0.81, "n": 900}, "realised": None}})
        >>> value = metrics.registry.get_sample_value
        >>> value("taxiway_drift_status", {"model": "churn", "feature": "spend"})
        2.0
        >>> value("taxiway_drift_statistic", {"model": "churn", "feature": "__output__"})
        0.01
        >>> value("taxiway_slo_burn_rate", {"model": "churn", "slo": "latency", "window": "5m"})
        2.0
        >>> value("taxiway_quality", {"model": "churn", "metric": "roc_auc", "kind": "estimated"})
        0.81
        """
        features = [f for f in report.get("features") or [] if isinstance(f, Mapping)]
        output = report.get("output")
        if isinstance(output, Mapping):
            features.append({**output, "name": "__output__"})
        for feature in features:
            name = str(feature.get("name"))
            for gauge, value in (
                (self.drift_statistic, feature.get("value")),
                (self.drift_threshold, feature.get("threshold")),
                (self.drift_status, _STATUS_CODES.get(str(feature.get("status")))),
            ):
                if _is_number(value):
                    gauge.labels(model, name).set(float(value))
        for slo in report.get("slo") or []:
            if not isinstance(slo, Mapping):
                continue
            for window, rate in (slo.get("burn") or {}).items():
                if _is_number(rate):
                    self.slo_burn_rate.labels(model, str(slo.get("name")), str(window)).set(
                        float(rate)
                    )
        quality = report.get("quality") or {}
        for kind in ("estimated", "realised"):
            values = quality.get(kind)
            if not isinstance(values, Mapping):
                continue
            for metric, value in values.items():
                # counts and sizes are not quality metrics
                if _is_number(value) and metric not in _NOT_QUALITY:
                    self.quality.labels(model, str(metric), kind).set(float(value))
        self.monitor_run.labels(model).set_to_current_time()

    def answers_by_arm(self, *, flush: bool = True) -> dict[str, dict[str, float]]:
        """Answered predictions so far by arm, then answer path (``model``,
        ``fallback:<name>``), from the latency histogram's counts: summed over workers in
        multi-process mode (this process's tallies flushed first, unless the caller did:
        reading every worker's files may then happen off the event loop).

        >>> metrics = Metrics()
        >>> metrics.latency_of("model", "production").observe(0.002)
        >>> metrics.answers_by_arm()
        {'production': {'model': 1.0}}
        """
        if flush:
            self.flush()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            families: Any = registry.collect()
        else:
            families = self.registry.collect()
        arms: dict[str, dict[str, float]] = {}
        for family in families:
            if family.name != "taxiway_request_latency_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.value:
                    paths = arms.setdefault(sample.labels["arm"], {})
                    path = sample.labels["path"]
                    paths[path] = paths.get(path, 0.0) + sample.value
        return arms

    def flush(self) -> None:
        """Hand every tally to prometheus_client (the multi-process files, with several
        workers)."""
        for tally in self._tallies:
            tally.flush()

    def render(self) -> bytes:
        """The exposition text (summed over workers in multi-process mode), this process's
        tallies flushed first."""
        self.flush()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
