"""The sprint's stream freshness, end to end on examples/retail-stream against a real NATS
JetStream: the simulator publishes the orders, `taxiway features stream` consumes them, the
sprint trains on the history, serves the candidate and measures publish -> served value with
probe events; the debrief's tables, the terminal and report.json say the same finding. With
NATS unreachable the finding is "not measured", with the reason and no number."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES, load_script, require, require_service

from taxiway.cli import main
from taxiway.spec.models import NatsSource
from taxiway.spec.project import Project
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.freshness import Freshness, ProbeTarget, measure_freshness
from taxiway.sprint.phases.streaming import freshness_check
from taxiway.sprint.report import write_report
from taxiway.sprint.served import running_service

URL = "nats://127.0.0.1:4222"


@dataclass
class Streamed:
    spec: Path
    stream: str


def stream_shop(folder: Path, customers: int, url: str, tag: str) -> Path:
    """examples/retail-stream in ``folder`` (beside a simulated retail/), on its own subject,
    stream and durable, with the sprint tests' latency budget (250 ms: a busy machine)."""
    simulate = load_script("retail_sim_stream", EXAMPLES / "retail" / "simulate.py")
    simulate.simulate(folder / "retail" / "data", customers=customers)
    shutil.copytree(EXAMPLES / "retail" / "contracts", folder / "retail" / "contracts")
    (folder / "retail-stream").mkdir()
    text = (EXAMPLES / "retail-stream" / "taxiway.yaml").read_text()
    for old, new in (
        ("url: nats://127.0.0.1:4222", f"url: {url}"),
        ("subject: retail.orders", f"subject: tw.retail.{tag}"),
        ("stream: RETAIL_ORDERS", f"stream: TW_RETAIL_{tag}"),
        ("latency_budget_ms: 50", "latency_budget_ms: 250"),
    ):
        assert old in text
        text = text.replace(old, new)
    spec = folder / "retail-stream" / "taxiway.yaml"
    spec.write_text(text)
    return spec


async def _pending(stream: str) -> int:
    nats = require("nats", reason="nats-py is the stream extra")
    client = await nats.connect(URL)
    try:
        info = await client.jetstream().consumer_info(stream, "taxiway")
        return int(info.num_pending) + int(info.num_ack_pending)
    finally:
        await client.close()


def consume_all(spec: Path, stream: str) -> None:
    """`taxiway features stream` until the durable has nothing pending, then SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taxiway", "features", "stream", "-f", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with contextlib.suppress(Exception):  # the durable appears once it pulls
                if asyncio.run(_pending(stream)) == 0:
                    return
        raise AssertionError("the consumer did not drain the backfill in 120 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


async def _delete(stream: str) -> None:
    nats = require("nats", reason="nats-py is the stream extra")
    client = await nats.connect(URL)
    try:
        for name in (stream, f"{stream}_QUARANTINE"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(name)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Streamed]:
    """The stream example on 300 customers: every order published (backfill) and consumed
    into the history and the tiles, as its README's first steps do."""
    require_service("NATS", "127.0.0.1", 4222)
    tag = uuid.uuid4().hex[:10]
    folder = tmp_path_factory.mktemp("retail-stream")
    spec = stream_shop(folder, 300, URL, tag)
    simulate = load_script("retail_sim_stream", EXAMPLES / "retail" / "simulate.py")
    stream = f"TW_RETAIL_{tag}"
    try:
        sent = asyncio.run(
            simulate.stream_orders(
                folder / "retail" / "data" / "orders.parquet",
                url=URL,
                subject=f"tw.retail.{tag}",
                stream=stream,
                backfill=True,
                duration=0,
            )
        )
        assert sent.backfilled > 1000
        assert sent.live == 0
        consume_all(spec, stream)
        yield Streamed(spec, stream)
    finally:
        asyncio.run(_delete(stream))


@pytest.mark.nats
@pytest.mark.slow
def test_the_sprint_measures_freshness_and_the_debrief_says_it_everywhere(
    streamed: Streamed, capsys: pytest.CaptureFixture[str]
) -> None:
    report = streamed.spec.parent / "report"
    main(["sprint", "-f", str(streamed.spec), "--as-of", "2025-12-31", "--report", str(report),
          "--load-seconds", "1"])  # fmt: skip
    terminal = capsys.readouterr().out
    document = json.loads((report / "report.json").read_text())
    found = document["facts"]["freshness"]
    assert found["measured"] is True, found
    assert found["source"] == "orders_live"
    assert found["feature"] == "customer_live__live_orders_1d"
    assert found["consumer"] == "started"  # none was running: the step started its own
    assert found["probes"] == found["seen"] == 20
    assert len(found["freshness_ms"]) == 20
    assert 0 < found["p50_ms"] <= found["p99_ms"] <= found["max_ms"] < 10_000
    integration = next(p for p in document["phases"] if p["name"] == "integration")
    check = next(c for c in integration["checks"] if c["name"].startswith("stream freshness"))
    assert check["status"] == "pass"
    # one finding, said the same way in the terminal, report.md and report.html
    line = found["line"]
    assert f"p99 {found['p99_ms']:.0f} ms" in line
    assert line in " ".join(terminal.split())
    assert line in (report / "report.md").read_text()
    page = (report / "report.html").read_text()
    assert 'id="freshness-table"' in page
    assert f"{found['p99_ms']:.0f} ms, max" in page


@pytest.mark.nats
def test_with_nats_unreachable_the_finding_is_not_measured_and_holds_no_number(
    streamed: Streamed, tmp_path: Path
) -> None:
    project = Project.load(streamed.spec)
    live = project.spec.sources["orders_live"]
    assert isinstance(live, NatsSource)
    url = type(live.url)("nats://127.0.0.1:1")  # nothing listens on port 1
    sources = {**project.spec.sources, "orders_live": live.model_copy(update={"url": url})}
    down = project.spec.model_copy(update={"sources": sources})
    target = ProbeTarget("orders_live", "customer_live", "customer_live__live_orders_1d",
                         "customer", "customer_id")  # fmt: skip
    found = measure_freshness(
        Project(down, project.spec_path, tmp_path), target, "http://127.0.0.1:1", tmp_path
    )
    assert found.measured is False
    assert found.reason is not None
    assert "127.0.0.1:1" in found.reason
    assert "unreachable" in found.reason
    assert (found.p50_ms, found.p99_ms, found.seen, found.freshness_ms) == (None, None, 0, [])
    assert freshness_check(found, "taxiway.yaml").status == "warn"
    assert found.line().startswith("stream freshness not measured: NATS at")


@pytest.mark.nats
@pytest.mark.slow
def test_probes_never_served_stop_after_three_and_fail_with_a_blocker(streamed: Streamed) -> None:
    assert main(["train", "-f", str(streamed.spec)]) == 0  # version 1 (the sprint's, if it ran)
    project = Project.load(streamed.spec)
    # a count the served model does not read, so no answer's logged features ever hold it
    unread = ProbeTarget("orders_live", "customer_live", "customer_live__live_orders_30d",
                         "customer", "customer_id")  # fmt: skip
    with running_service(project, 1) as service:
        found = measure_freshness(
            project, unread, service.url, project.state_dir / "predictions",
            headers=service.headers, probes=20, timeout_s=1.0,
        )  # fmt: skip
    assert found.measured is True
    assert (found.probes, found.seen, found.p99_ms) == (3, 0, None)
    assert found.line().endswith("0 of 3 probe events served: none within the wait")
    check = freshness_check(found, "taxiway.yaml")
    assert check.status == "fail"
    assert check.blocker is not None
    assert "taxiway features stream -f taxiway.yaml" in check.blocker.fix


def test_the_report_shows_a_not_measured_finding_without_a_table(tmp_path: Path) -> None:
    found: dict[str, Any] = Freshness(False, reason="nats-py is not installed").as_dict()
    debrief = Debrief("x", "t.yaml", "", "", [], deployed=False, facts={"freshness": found})
    written = write_report(debrief, tmp_path)
    markdown = written["md"].read_text()
    assert "## Stream freshness" in markdown
    assert "stream freshness not measured: nats-py is not installed" in markdown
    page = written["html"].read_text()
    assert 'id="freshness"' in page
    assert 'id="freshness-table"' not in page
    assert json.loads(written["json"].read_text())["facts"]["freshness"]["p99_ms"] is None
