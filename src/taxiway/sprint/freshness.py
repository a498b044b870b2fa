"""Stream freshness: how long an event published to a ``kind: nats`` source takes to reach the
value the running service serves.

**The measurement.** One tiled ``count(*)`` feature of a view over the source, read by the
served model, is probed ``probes`` times. Each probe is a fresh entity (a key no row holds: a
negative number, or ``taxiway-probe-...``), so no real entity's features change and no
training row reads the probes. For each probe:

1. ``/v1/predict`` is asked for the entity, and the count its prediction-log record holds is
   the baseline (0 or missing: nothing is known of it yet);
2. an event is published to the source's subject with its own ``Nats-Msg-Id``
   (``taxiway-probe-<run>-<i>``): a copy of the newest event of the source's history, with the
   probe's key and every timestamp column set to now. ``t0`` is taken just before the publish;
3. ``/v1/predict`` is asked again every ``poll_s`` until the count logged for an answer is
   above the baseline; ``t1`` is when that answer was received.

The probe's freshness is ``t1 - t0``: publish, JetStream, ``taxiway features stream``
(checked, journalled, applied to the tiles), the service's online read at request time, and
the answer, as a client sees it. It over-states the true figure by at most one poll interval
and one request. A probe not seen within ``timeout_s`` counts as not seen; the figures are of
the seen ones; after 3 unseen in a row no more are sent (``probes`` counts those sent). The
probes' events stay in the stream and the history (for keys no real entity has): the finding
says so.

**The consumer.** When a consumer already pulls from the source's durable (JetStream reports
waiting pull requests), that one applies the probes; otherwise the step starts
``taxiway features stream`` for the source and stops it after. Either way it first waits (up
to ``timeout_s``) for the consumer to have no event pending, so the probes do not queue behind
a backlog; a backlog left is reported.

**What is reported.** Only what was observed: when NATS cannot be reached, nats-py is missing,
or no served feature can be probed, the finding is *not measured* with the reason, never a
number.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess  # nosec B404: the stream consumer, our own CLI
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.data.history import history_files, history_version
from taxiway.errors import TaxiwayError
from taxiway.serving.log_files import log_files
from taxiway.spec.durations import format_duration
from taxiway.spec.models import AggregateView, NatsSource, TaxiwaySpec
from taxiway.spec.project import Project
from taxiway.sprint.served import stop_process

__all__ = [
    "Freshness",
    "ProbeTarget",
    "freshness_target",
    "measure_freshness",
    "stream_sources",
]

MSG_ID = "Nats-Msg-Id"
PROBE_PREFIX = "taxiway-probe"
READY_TIMEOUT_S = 30.0
GIVE_UP_AFTER = 3
"""Probes in a row not served within the wait after which the step stops sending more."""


@dataclass(frozen=True)
class ProbeTarget:
    """What a probe writes and reads: a nats source, its tiled view's ``count(*)`` feature the
    served model reads, and the view's entity key column."""

    source: str
    view: str
    feature: str
    entity: str
    key: str


@dataclass
class Freshness:
    """The finding: the figures when measured, else why not (``reason``)."""

    measured: bool
    reason: str | None = None
    source: str | None = None
    feature: str | None = None
    consumer: str | None = None
    """``running`` (a consumer was already pulling) or ``started`` (by this step)."""
    probes: int = 0
    seen: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    poll_ms: float | None = None
    pending_before: int | None = None
    """Events the consumer had still to apply when the probes began (0: none)."""
    freshness_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        """The finding in one sentence (the report, the terminal and the JSON say this).

        >>> Freshness(False, reason="NATS at nats://127.0.0.1:4222 is unreachable").line()
        'stream freshness not measured: NATS at nats://127.0.0.1:4222 is unreachable'
        >>> Freshness(True, source="orders_live", feature="v__n_1d", consumer="started",
        ...           probes=20, seen=20, p50_ms=41.0, p99_ms=180.5, max_ms=180.5,
        ...           poll_ms=10.0, pending_before=0).line()[:103]
        'stream freshness of orders_live (v__n_1d): 20 of 20 probe events served, publish to served value p50 41'
        """
        if not self.measured:
            return f"stream freshness not measured: {self.reason}"
        head = (
            f"stream freshness of {self.source} ({self.feature}): {self.seen} of {self.probes} "
            "probe events served"
        )
        if not self.seen:
            return f"{head}: none within the wait"
        backlog = (
            f"; {self.pending_before:,} events were still pending when the probes began"
            if self.pending_before
            else ""
        )
        return (
            f"{head}, publish to served value p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} "
            f"ms, max {self.max_ms:.0f} ms (polled every {self.poll_ms:.0f} ms, so up to that "
            f"much over); consumer {self.consumer} for the step{backlog}; the probes' events "
            "stay in the stream and its history under keys no entity has"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``line`` (the sentence) beside the figures."""
        return {**asdict(self), "line": self.line()}


def stream_sources(spec: TaxiwaySpec) -> list[str]:
    """The spec's ``kind: nats`` sources, in order."""
    return [name for name, source in spec.sources.items() if isinstance(source, NatsSource)]


def freshness_target(spec: TaxiwaySpec, served: Sequence[str]) -> ProbeTarget | str:
    """The feature to probe: the first ``count(*)`` of a tiled view over a nats source that the
    model reads (``served``: its inputs), its shortest window; else why there is none.

    >>> from taxiway.spec import load_spec_text
    >>> spec = load_spec_text(
    ...     "name: s\\nsources:\\n  ev: {kind: nats, url: 'nats://127.0.0.1:4222', subject: a, "
    ...     "stream: A, durable: d, timestamp: ts, history: h}\\nentities: {e: k}\\nfeatures:\\n"
    ...     "  v: {source: ev, entity: e, aggregate: {n: count(*)}, windows: [7d, 1d], "
    ...     "tiles: 1h}\\n", "taxiway.yaml")
    >>> freshness_target(spec, ["v__n_7d", "v__n_1d"])
    ProbeTarget(source='ev', view='v', feature='v__n_1d', entity='e', key='k')
    >>> freshness_target(spec, [])
    'the model reads no count(*) of a tiled view over a nats source (ev)'
    """
    inputs = set(served)
    for name, view in spec.features.items():
        if not isinstance(view, AggregateView) or view.tiles is None:
            continue
        if not isinstance(spec.sources.get(view.source), NatsSource):
            continue
        keys = spec.entity_keys(view.entity)
        counts = [
            f for f, agg in view.aggregate.items() if agg.function == "count" and agg.column is None
        ]
        if len(keys) != 1 or not counts:
            continue
        for window in sorted(view.windows):
            for feature in counts:
                column = f"{name}__{feature}_{format_duration(window)}"
                if column in inputs:
                    return ProbeTarget(view.source, name, column, view.entity, keys[0])
    names = ", ".join(stream_sources(spec)) or "none declared"
    return f"the model reads no count(*) of a tiled view over a nats source ({names})"


def measure_freshness(
    project: Project,
    target: ProbeTarget,
    service_url: str,
    log_folder: Path,
    *,
    headers: dict[str, str] | None = None,
    probes: int = 20,
    poll_s: float = 0.01,
    timeout_s: float = 10.0,
) -> Freshness:
    """Measure the freshness of ``target`` on the service at ``service_url`` whose prediction
    log is ``log_folder`` (the module's docstring)."""
    source = project.spec.sources[target.source]
    assert isinstance(source, NatsSource)
    base = Freshness(False, source=target.source, feature=target.feature)
    try:
        import nats  # noqa: F401  (the stream extra)
    except ImportError:
        base.reason = "nats-py is not installed (pip install 'taxiway[stream]')"
        return base
    try:
        template = _template(source)
    except TaxiwayError as error:
        base.reason = error.message
        return base
    return asyncio.run(
        _measure(
            project, target, source, template, service_url, log_folder, headers or {},
            probes=probes, poll_s=poll_s, timeout_s=timeout_s, base=base,
        )
    )  # fmt: skip


def _template(source: NatsSource) -> dict[str, Any]:
    """The newest event of ``source``'s history (its newest file's last row), as a row: the
    probes copy its fields."""
    folder = Path(source.history)
    version = history_version(folder)
    if version is None:
        raise TaxiwayError(
            f"no event in the history of {source.subject} yet ({source.history}), so no event "
            "to copy the probes' fields from"
        )
    files = sorted(history_files(folder, version), key=lambda f: Path(f).stat().st_mtime)
    table = pq.read_table(files[-1]) if files else pa.table({})
    if table.num_rows == 0:
        raise TaxiwayError(f"the newest history file of {source.subject} holds no event")
    row: dict[str, Any] = table.slice(table.num_rows - 1).to_pylist()[0]
    for column in table.schema:
        if pa.types.is_timestamp(column.type):
            row[column.name] = "now"  # set at each probe's publish
    return row


async def _measure(
    project: Project,
    target: ProbeTarget,
    source: NatsSource,
    template: dict[str, Any],
    service_url: str,
    log_folder: Path,
    headers: dict[str, str],
    *,
    probes: int,
    poll_s: float,
    timeout_s: float,
    base: Freshness,
) -> Freshness:
    import nats
    import nats.errors
    import nats.js.errors

    async def quiet(_: Exception) -> None:  # nats-py prints a traceback per failed attempt
        pass

    url = source.url.reveal()
    try:
        client = await asyncio.wait_for(
            nats.connect(url, connect_timeout=3, allow_reconnect=False, error_cb=quiet), 4
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        base.reason = f"NATS at {source.url} is unreachable ({error or type(error).__name__})"
        return base
    process: subprocess.Popen[bytes] | None = None
    try:
        js = client.jetstream()
        ready = await _ensure_consumer(js, project, target.source, source, READY_TIMEOUT_S)
        if isinstance(ready, str):
            base.reason = ready
            return base
        base.consumer, process = ready
        base.pending_before = await _drain(js, source, timeout_s)
        async with httpx.AsyncClient(base_url=service_url, headers=headers) as http:
            reader = _LogReader(log_folder)
            run = uuid.uuid4().hex[:8]
            seen: list[float] = []
            sent = missed = 0
            while sent < probes and missed < GIVE_UP_AFTER:
                key = _probe_key(template.get(target.key), run, sent)
                elapsed = await _probe(
                    http, js, reader, source, target, template, key,
                    f"{PROBE_PREFIX}-{run}-{sent}", poll_s, timeout_s,
                )  # fmt: skip
                sent += 1
                missed = 0 if elapsed is not None else missed + 1
                if elapsed is not None:
                    seen.append(elapsed)
    except (OSError, TimeoutError, nats.errors.Error, httpx.HTTPError) as error:
        base.reason = f"the probes failed: {error or type(error).__name__}"
        return base
    finally:
        await client.close()
        if process is not None:
            stop_process(process)
    base.measured, base.probes, base.seen, base.poll_ms = True, sent, len(seen), poll_s * 1000
    base.freshness_ms = [round(s * 1000, 2) for s in seen]
    if seen:
        ordered = sorted(base.freshness_ms)
        base.p50_ms = _quantile(ordered, 0.5)
        base.p99_ms = _quantile(ordered, 0.99)
        base.max_ms = ordered[-1]
    return base


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, nearest rank (p99 of 20 values is the largest).

    >>> _quantile([1.0, 2.0, 3.0, 4.0], 0.5), _quantile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _probe_key(example: Any, run: str, i: int) -> Any:
    """A key no entity has, of the type the history's keys have."""
    if isinstance(example, int):
        return -(int(run, 16) % 1_000_000_000) * 1000 - i - 1
    return f"{PROBE_PREFIX}-{run}-{i}"


async def _probe(
    http: httpx.AsyncClient,
    js: Any,
    reader: _LogReader,
    source: NatsSource,
    target: ProbeTarget,
    template: dict[str, Any],
    key: Any,
    event_id: str,
    poll_s: float,
    timeout_s: float,
) -> float | None:
    """One probe (the module's steps); seconds from publish to served, or None when unseen."""
    baseline = await _served_count(http, reader, target, key)
    now = datetime.now(UTC).isoformat()
    event = {k: (now if v == "now" else v) for k, v in template.items()}
    event[target.key] = key
    if source.event_id is not None:  # the field's type as the history has it
        as_text = not isinstance(event.get(source.event_id), int)
        event[source.event_id] = event_id if as_text else uuid.uuid4().int % (1 << 62)
    body = json.dumps(event, default=str).encode()
    t0 = time.perf_counter()
    await js.publish(source.subject, body, headers={MSG_ID: event_id}, timeout=timeout_s)
    while time.perf_counter() - t0 < timeout_s:
        count = await _served_count(http, reader, target, key)
        if count is not None and count > (baseline or 0):
            return time.perf_counter() - t0
        await asyncio.sleep(poll_s)
    return None


async def _served_count(
    http: httpx.AsyncClient, reader: _LogReader, target: ProbeTarget, key: Any
) -> float | None:
    """The count the service logged for one answer about ``key`` (None when not served)."""
    body = {"entities": {target.entity: str(key)}}
    answer = await http.post("/v1/predict", json=body, timeout=5.0)
    if answer.status_code != 200:
        raise httpx.HTTPError(f"/v1/predict answered {answer.status_code}: {answer.text[:200]}")
    features = await reader.features_of(str(answer.json()["request_id"]))
    value = None if features is None else features.get(target.feature)
    return float(value) if isinstance(value, int | float) else None


class _LogReader:
    """The prediction log read as it grows: request id -> the features logged for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets: dict[Path, int] = {}
        self.found: dict[str, dict[str, Any]] = {}

    async def features_of(self, request_id: str, wait_s: float = 1.0) -> dict[str, Any] | None:
        """The features logged for ``request_id`` (written before its answer, so at once)."""
        deadline = time.monotonic() + wait_s
        while request_id not in self.found and time.monotonic() < deadline:
            if not self._read():
                await asyncio.sleep(0.002)
        return self.found.get(request_id)

    def _read(self) -> bool:
        grew = False
        for path in log_files(self.folder):
            start = self.offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(start)
                chunk = file.read()
            end = chunk.rfind(b"\n") + 1
            if end <= 0:
                continue
            self.offsets[path] = start + end
            grew = True
            for line in chunk[:end].splitlines():
                record = json.loads(line)
                self.found[str(record.get("request_id"))] = record.get("features") or {}
        return grew


async def _pulling(js: Any, source: NatsSource, watch_s: float = 2.5) -> bool:
    """Whether a consumer pulls from the source's durable: a pull request waits on it, or its
    delivered sequence moves, within ``watch_s`` (a busy consumer between two fetches has no
    request waiting; an idle one has one waiting nearly all the time)."""
    import nats.js.errors

    deadline = time.monotonic() + watch_s
    first: int | None = None
    while True:
        try:
            info = await js.consumer_info(source.stream, source.durable)
        except nats.js.errors.NotFoundError:
            return False
        delivered = int(info.delivered.stream_seq) if info.delivered else 0
        first = delivered if first is None else first
        if int(info.num_waiting or 0) > 0 or delivered > first:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def _ensure_consumer(
    js: Any, project: Project, name: str, source: NatsSource, timeout_s: float
) -> tuple[str, subprocess.Popen[bytes] | None] | str:
    """``("running", None)`` when a consumer already pulls; else ``taxiway features stream
    --source name`` started (output in ``<state>/sprint/stream.log``) once it pulls,
    ``("started", process)``; else why not."""
    if await _pulling(js, source):
        return "running", None
    folder = project.state_dir / "sprint"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "stream.log"
    command = [sys.executable, "-m", "taxiway", "features", "stream", "-f",
               str(project.spec_path), "--state-dir", str(project.state_dir),
               "--source", name]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(  # nosec B603: fixed arguments, no shell
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-300:].strip()
            return f"`taxiway features stream` exited ({process.returncode}): {tail}"
        if await _pulling(js, source):
            return "started", process
        await asyncio.sleep(0.2)
    stop_process(process)
    return f"`taxiway features stream` did not pull within {timeout_s:.0f}s (see {log})"


async def _drain(js: Any, source: NatsSource, timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for the durable to have no event pending; what is left."""
    deadline = time.monotonic() + timeout_s
    pending = 0
    while time.monotonic() < deadline:
        info = await js.consumer_info(source.stream, source.durable)
        pending = int(info.num_pending) + int(info.num_ack_pending)
        if pending == 0:
            return 0
        await asyncio.sleep(0.1)
    return pending
