"""Prometheus metrics of the service (``GET /metrics``).

One registry per process. With several workers, each keeps its own and ``/metrics`` serves the
answering worker's view unless ``PROMETHEUS_MULTIPROC_DIR`` is set (``taxiway serve`` sets it
for ``--workers`` > 1, so the numbers are summed over workers).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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

        # labelled children looked up once: ``labels()`` validates and locks on every call
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str], Any] = {}
        self._missing: dict[tuple[str, str], Any] = {}

    def latency_of(self, path: str, arm: str) -> Any:
        """The latency histogram of one answer path and arm."""
        child = self._latency.get((path, arm))
        if child is None:
            child = self._latency[(path, arm)] = self.latency.labels(path, arm)
        return child

    def requests_of(self, route: str, status: str) -> Any:
        """The request counter of one route and status (routes are a fixed set of names)."""
        child = self._requests.get((route, status))
        if child is None:
            child = self._requests[(route, status)] = self.requests.labels(route, status)
        return child

    def missing_of(self, view: str, status: str) -> Any:
        """The counter of answers short of one view's features (views are the spec's)."""
        child = self._missing.get((view, status))
        if child is None:
            child = self._missing[(view, status)] = self.missing_features.labels(view, status)
        return child

    def render(self) -> bytes:
        """The exposition text (summed over workers in multi-process mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
