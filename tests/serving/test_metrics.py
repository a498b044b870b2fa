"""The per-request tallies: what /metrics shows equals what prometheus_client would have counted
itself, in one process, summed over worker processes, and over a real two-worker server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families
from tests.serving.conftest import serving

from taxiway.serving.metrics import _BUCKETS, FLUSH_INTERVAL_S, Metrics, Tally, TallyHistogram

# on a bound, between bounds, below the first, past the last, and zero
OBSERVED = [0.0, 0.0004, 0.0005, 0.0007, 0.001, 0.003, 0.005, 0.25, 2.5, 3.0, 40.0]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_a_flushed_histogram_tally_reads_as_the_histogram_observing_itself() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    plain = Histogram("latency", "L.", ["path"], buckets=_BUCKETS, registry=direct)
    target = Histogram("latency", "L.", ["path"], buckets=_BUCKETS, registry=tallied)
    tally = TallyHistogram(target.labels("model"))
    for amount in OBSERVED:
        plain.labels("model").observe(amount)
        tally.observe(amount)
    assert _samples(tallied) != _samples(direct)  # nothing handed over before the flush
    tally.flush()
    assert _samples(tallied) == _samples(direct)
    tally.flush()  # nothing pending: nothing counted twice
    tally.observe(0.002)
    plain.labels("model").observe(0.002)
    tally.flush()
    assert _samples(tallied) == _samples(direct)


def test_a_flushed_counter_tally_reads_as_the_counter_counting_itself() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    plain = Counter("answers", "A.", ["status"], registry=direct)
    tally = Tally(Counter("answers", "A.", ["status"], registry=tallied).labels("200"))
    for amount in (1, 1, 2.5):
        plain.labels("200").inc(amount)
        tally.inc(amount)
    tally.flush()
    tally.flush()
    assert _samples(tallied) == _samples(direct)


def test_a_histogram_tally_refuses_other_buckets() -> None:
    other = Histogram("other", "O.", buckets=(0.1, 1.0), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="buckets"):
        TallyHistogram(other)


def test_the_rendered_metrics_include_what_was_tallied_since_the_last_flush() -> None:
    metrics = Metrics()
    metrics.requests_of("/v1/predict", "200").inc()
    metrics.requests_of("/v1/predict", "200").inc()
    metrics.latency_of("model", "production").observe(0.003)
    metrics.fallbacks_of("baseline", "timed_out").inc()
    metrics.missing_of("customer_orders", "stale").inc()
    metrics.out_of_range_of("distance").inc()
    metrics.store_latency_tally.observe(0.0002)
    metrics.log_commit_tally.observe(0.00001)
    text = metrics.render().decode()
    for line in (
        'taxiway_http_requests_total{route="/v1/predict",status="200"} 2.0',
        'taxiway_request_latency_seconds_bucket{arm="production",le="0.005",path="model"} 1.0',
        'taxiway_request_latency_seconds_bucket{arm="production",le="0.0025",path="model"} 0.0',
        'taxiway_fallbacks_total{reason="timed_out",which="baseline"} 1.0',
        'taxiway_missing_features_total{status="stale",view="customer_orders"} 1.0',
        'taxiway_out_of_range_inputs_total{field="distance"} 1.0',
        "taxiway_online_store_latency_seconds_count 1.0",
        "taxiway_prediction_log_commit_seconds_count 1.0",
    ):
        assert line in text.splitlines(), line


_WORKER = textwrap.dedent(
    """
    import sys
    from taxiway.serving.metrics import Metrics

    metrics = Metrics()
    for amount in (0.0005, 0.003, 0.003, 9.0):
        metrics.latency_of("model", "production").observe(amount)
        metrics.requests_of("/v1/predict", "200").inc()
    if sys.argv[1] == "render":
        sys.stdout.buffer.write(metrics.render())
    else:
        metrics.flush()
    """
)


def test_tallies_of_several_processes_are_summed_in_multi_process_mode(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}

    def run(how: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, how], env=env, capture_output=True, check=True
        )
        return done.stdout.decode()

    run("flush")  # one worker flushed on its timer
    text = run("render")  # another flushes itself and renders both
    lines = text.splitlines()
    assert 'taxiway_http_requests_total{route="/v1/predict",status="200"} 8.0' in lines, text
    bucket = 'taxiway_request_latency_seconds_bucket{arm="production",le="%s",path="model"} %s'
    assert bucket % ("0.0005", "2.0") in lines, text
    assert bucket % ("0.005", "6.0") in lines, text
    assert bucket % ("2.5", "6.0") in lines, text
    assert bucket % ("+Inf", "8.0") in lines, text
    assert 'taxiway_request_latency_seconds_count{arm="production",path="model"} 8.0' in lines


def _predict_count(text: str) -> float:
    found = re.search(
        r'^taxiway_http_requests_total\{route="/v1/predict",status="200"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_two_workers_metrics_count_every_answer_within_the_flush_interval(shop: Path) -> None:
    state = str(shop.parent / ".taxiway")
    with serving(shop, "--workers", "2", "--state-dir", state) as server:
        answered = 0
        for i in range(12):  # a connection each: the supervisor hands them round robin
            with server.client() as client:
                reply = client.post("/v1/predict", json={"entities": {"customer": str(100001 + i)}})
                assert reply.status_code == 200, reply.text
                answered += 1
        # one kept-alive connection: every scrape is answered by the same worker, which sees
        # the other's answers only once that one has flushed them on its timer
        deadline = time.monotonic() + FLUSH_INTERVAL_S + 5
        counts = []
        with server.client() as scraper:
            while True:
                text = scraper.get("/metrics").text
                counts.append(_predict_count(text))
                if counts[-1] >= answered or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert counts[-1] == answered, (counts, server.output())
    assert all(count <= answered for count in counts)
    found = re.search(
        r'^taxiway_request_latency_seconds_count\{arm="production",path="model"\} (\S+)$',
        text,
        re.M,
    )
    assert found is not None, text
    assert float(found.group(1)) == answered, text
