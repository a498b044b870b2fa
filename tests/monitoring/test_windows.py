"""Windows of the prediction log: counted once, merged into periods, stored atomically."""

from __future__ import annotations

import fcntl
import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile
from taxiway.monitoring.reference import Reference
from taxiway.monitoring.windows import Window, WindowStore, period
from taxiway.serving.log import PredictionLog
from taxiway.serving.log_files import LOG_GLOB

HOUR = timedelta(hours=1)
T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
FILE = "predictions-w1-20261206T050000-0000.jsonl"


def reference() -> Reference:
    rng = np.random.default_rng(0)
    return Reference(
        features={
            "age": NumericProfile.reference(rng.normal(40, 10, 2_000)),
            "plan": CategoricalProfile.reference(["basic", "pro", "basic", None]),
        },
        output=NumericProfile.reference(rng.random(2_000)),
        thresholds={},
        statistics={},
    )


def record(at: datetime, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": at.isoformat(),
        "request_id": "r",
        "model": "churn",
        "model_version": 3,
        "arm": "stable",
        "unit": "u1",
        "path": "model",
        "degraded": False,
        "reason": None,
        "prediction": 0.5,
        "latency_ms": 5.0,
        "lookup_ms": None,
        "entities": {"customer": "c1"},
        "request": {},
        "features": {"age": 41.0, "plan": "pro"},
        "out_of_range": [],
    }
    return base | changes


def write(folder: Path, records: list[dict[str, Any]], name: str = FILE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def update(store: WindowStore, logs: Path, **options: Any) -> list[Window]:
    settings: dict[str, Any] = {"window": HOUR, "budget_ms": 10.0, "version": 3} | options
    return store.update(logs, LOG_GLOB, reference(), **settings)


def test_each_count_of_a_window(tmp_path: Path) -> None:
    at = T0 + timedelta(minutes=31, seconds=5)
    records = [
        record(at, latency_ms=12.0),  # slow
        record(at, path="fallback:prior", degraded=True, reason="model failed: ValueError"),
        record(
            at,
            path="fallback:prior",
            degraded=True,
            reason="out of the training range: age",
            out_of_range=["age"],
            features={"age": 130.0, "plan": "pro"},
        ),
        record(at, degraded=True, reason="online features missing: plan", features={"age": 50}),
        record(at + timedelta(minutes=1), model_version=2, arm="canary", latency_ms=50.0),
        record(at + timedelta(hours=1), features={"age": None, "plan": None}),
    ]
    write(tmp_path / "log", records)
    first, second = update(WindowStore(tmp_path / "w"), tmp_path / "log")
    assert (first.start, first.end) == (T0, T0 + HOUR)
    assert first.requests == 5
    assert first.profiled == 4  # v2's record is counted, not profiled
    assert (first.fallbacks, first.degraded, first.errors, first.slow) == (2, 3, 1, 2)
    assert first.versions == {"3": 4, "2": 1}
    assert first.arms == {"stable": 4, "canary": 1}
    assert first.minutes == {"2026-12-06T05:31": [4, 1, 1], "2026-12-06T05:32": [1, 1, 0]}
    assert first.out_of_range == {"age": 1}
    assert first.missing == {"age": 0, "plan": 1}
    age = first.features["age"]
    assert isinstance(age, NumericProfile)
    assert (age.known, age.above, age.max) == (4, 1, 130.0)
    assert first.features["plan"].rows == 4
    assert first.output.rows == 4
    assert first.latency.known == 5
    assert second.start == T0 + HOUR
    assert second.missing == {"age": 1, "plan": 1}


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("model failed: ValueError", True),
        ("model returned a non-finite score", True),
        ("model overran the latency budget; online features missing: age", True),
        ("model circuit breaker open", True),
        ("model overran its share of the 50 ms budget; itemknn failed (KeyError)", True),
        ("no history: an unknown user", False),
        ("online store timed out", True),
        ("online store failed: ConnectionError", True),
        ("online store circuit breaker open", True),
        ("online features missing: age", False),
        ("every online feature is missing (no stored features for customer c1)", False),
        ("out of the training range: age", False),
        (None, False),
    ],
)
def test_errors_are_fallbacks_because_a_dependency_failed(
    tmp_path: Path, reason: str | None, error: bool
) -> None:
    write(tmp_path / "log", [record(T0, path="fallback:prior", reason=reason)])
    [window] = update(WindowStore(tmp_path / "w"), tmp_path / "log")
    assert window.errors == int(error)
    assert window.fallbacks == 1


def test_a_rerun_without_new_records_reads_and_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "log", [record(T0 + timedelta(minutes=i)) for i in range(50)])
    store = WindowStore(tmp_path / "w")
    before = [w.to_dict() for w in update(store, tmp_path / "log")]
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "w").glob("*.json")}
    began = time.perf_counter()
    after = [w.to_dict() for w in update(store, tmp_path / "log")]
    assert time.perf_counter() - began < 1.0
    assert after == before
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "w").glob("*.json")} == files
    # a new store over the same folder (a new process) sees the same windows
    assert [w.to_dict() for w in WindowStore(tmp_path / "w").windows()] == before


def test_new_records_of_a_stored_window_are_counted_into_it(tmp_path: Path) -> None:
    logs, store = tmp_path / "log", WindowStore(tmp_path / "w")
    write(logs, [record(T0 + timedelta(minutes=1))])
    update(store, logs)
    write(logs, [record(T0 + timedelta(minutes=2), latency_ms=20.0)])
    write(
        logs, [record(T0 + timedelta(minutes=3))], name="predictions-w2-20261206T050200-0000.jsonl"
    )
    [window] = update(store, logs)
    assert (window.requests, window.slow, window.features["age"].rows) == (3, 1, 3)
    assert sorted(window.minutes) == [f"2026-12-06T05:0{i}" for i in (1, 2, 3)]
    assert len(list((tmp_path / "w").glob("window-*.json"))) == 1  # the old file is gone


def test_windows_since_and_period(tmp_path: Path) -> None:
    write(tmp_path / "log", [record(T0 + i * HOUR + timedelta(minutes=5)) for i in range(3)])
    store = WindowStore(tmp_path / "w")
    update(store, tmp_path / "log")
    assert [w.start for w in store.windows(since=T0 + HOUR)] == [T0 + HOUR, T0 + 2 * HOUR]
    whole = period(store.windows())
    assert (whole.start, whole.end, whole.requests) == (T0, T0 + 3 * HOUR, 3)
    assert whole.features["age"].rows == 3
    one = period(store.windows()[:1])
    one.requests = 99  # a copy: the stored window does not change
    assert store.windows()[0].requests == 1


def test_records_without_a_readable_time_are_in_no_window(tmp_path: Path) -> None:
    write(
        tmp_path / "log",
        [record(T0), {"request_id": "no ts"}, record(T0) | {"ts": "yesterday"}, record(T0)],
    )
    write(tmp_path / "log", [record(T0) | {"ts": "2026-12-06T05:10:00"}])  # naive: UTC
    store = WindowStore(tmp_path / "w")
    [window] = update(store, tmp_path / "log")
    assert window.requests == 3
    assert store.untimed == 2
    assert "2 record(s) without a readable ts skipped" in store.notes


def test_changed_settings_profile_the_log_again(tmp_path: Path) -> None:
    write(tmp_path / "log", [record(T0 + timedelta(minutes=m)) for m in (10, 40)])
    store = WindowStore(tmp_path / "w")
    assert len(update(store, tmp_path / "log")) == 1
    halves = update(store, tmp_path / "log", window=timedelta(minutes=30))
    assert [w.requests for w in halves] == [1, 1]
    assert len(list((tmp_path / "w").glob("window-*.json"))) == 2
    assert [w.profiled for w in update(store, tmp_path / "log", version=4)] == [0]


def test_a_crashed_update_leaves_the_previous_state(tmp_path: Path) -> None:
    write(tmp_path / "log", [record(T0)])
    store = WindowStore(tmp_path / "w")
    [window] = update(store, tmp_path / "log")
    # a crash after writing a window file but before cursor.json: the stray file is ignored
    stray = tmp_path / "w" / "window-20261206T050000000000-99.json"
    stray.write_bytes(orjson.dumps(window.merge(window).to_dict()))
    assert [w.requests for w in WindowStore(tmp_path / "w").windows()] == [1]
    write(tmp_path / "log", [record(T0)])
    assert [w.requests for w in update(store, tmp_path / "log")] == [2]
    assert not stray.exists()
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.endswith(".tmp")]


def test_a_broken_state_file_is_an_error_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "cursor.json").write_bytes(b"{not json")
    with pytest.raises(MonitoringError, match="cannot be read") as error:
        WindowStore(tmp_path / "w").windows()
    assert "delete" in (error.value.fix or "")
    with pytest.raises(MonitoringError, match="too short"):
        update(WindowStore(tmp_path / "x"), tmp_path, window=timedelta(milliseconds=10))


def test_the_real_writer_and_a_window_round_trip(tmp_path: Path) -> None:
    with PredictionLog(tmp_path / "log", worker="w1", rotate_bytes=2_000) as log:
        for i in range(30):
            log.append_sync(record(T0 + timedelta(seconds=i), latency_ms=float(i)))
    [window] = update(WindowStore(tmp_path / "w"), tmp_path / "log")
    assert len(list((tmp_path / "log").glob(LOG_GLOB))) > 3
    assert (window.requests, window.slow) == (30, 19)  # 11..29 ms > 10 ms
    assert Window.from_dict(orjson.loads(orjson.dumps(window.to_dict()))).to_dict() == (
        window.to_dict()
    )
    p50, p99 = window.latency.quantiles([0.5, 0.99])
    assert 13.0 <= p50 <= 16.0
    assert p99 >= 28.0


def comparable(window: Window) -> dict[str, Any]:
    """A window's dict with its float sums rounded and its sketches as their counts (a KLL
    sketch's layout depends on the order of its updates, not what it answers)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "sketch"}
        if isinstance(value, float):
            return round(value, 6)
        return value

    d = clean(window.to_dict())
    for name, profile in window.features.items():
        d["features"][name]["n"] = (
            profile.sketch.n if isinstance(profile, NumericProfile) else profile.rows
        )
    return dict(d)


records_strategy = st.lists(
    st.builds(
        lambda minute, age, plan, version, latency, path: record(
            T0 + timedelta(minutes=minute),
            features={"age": age, "plan": plan},
            model_version=version,
            latency_ms=latency,
            path=path,
            reason=None if path == "model" else "model failed: X",
        ),
        minute=st.integers(0, 150),
        age=st.one_of(st.none(), st.floats(0, 120)),
        plan=st.sampled_from([None, "basic", "pro", "team"]),
        version=st.sampled_from([2, 3]),
        latency=st.floats(0.1, 30.0),
        path=st.sampled_from(["model", "fallback:prior"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(derandomize=True, deadline=None, max_examples=25)
@given(records=records_strategy, cuts=st.lists(st.floats(0, 1), max_size=5))
def test_windows_read_in_pieces_equal_one_read_and_one_profile(
    tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]], cuts: list[float]
) -> None:
    """Appending the log in pieces cut anywhere (mid-line too) and updating after each gives
    the windows of one update over the whole log; their period equals profiling every record
    of the monitored version at once."""
    folder = tmp_path_factory.mktemp("case")
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    pieces, whole = WindowStore(folder / "pieces"), WindowStore(folder / "whole")
    written = 0
    for point in sorted({int(c * len(data)) for c in cuts} | {len(data)}):
        with (folder / "log" / FILE).open("ab") if written else _new(folder / "log") as f:
            f.write(data[written:point])
        written = point
        update(pieces, folder / "log")
    once = update(whole, folder / "log")
    assert [comparable(w) for w in pieces.windows()] == [comparable(w) for w in once]
    ref = reference()
    mine = [r for r in records if r["model_version"] == 3]
    merged = period(once)
    assert merged.requests == len(records)
    age = ref.features["age"].empty_like()
    age.update(
        np.array([math.nan if r["features"]["age"] is None else r["features"]["age"] for r in mine])
    )
    plan = ref.features["plan"].empty_like()
    plan.update([r["features"]["plan"] for r in mine])
    assert merged.features["age"].to_dict()["counts"] == age.to_dict()["counts"]
    assert merged.features["age"].missing == age.missing
    assert merged.features["plan"].to_dict()["counts"] == plan.to_dict()["counts"]
    assert merged.missing["plan"] == plan.missing
    assert merged.errors == sum(r["path"] != "model" for r in records)


def _new(folder: Path) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / FILE).open("wb")


def test_a_store_folder_lock_is_released(tmp_path: Path) -> None:
    write(tmp_path / "log", [record(T0)])
    store = WindowStore(tmp_path / "w")
    update(store, tmp_path / "log")
    fd = os.open(tmp_path / "w" / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held
    finally:
        os.close(fd)


def test_a_caller_gets_every_new_record_once_from_the_same_parse(tmp_path: Path) -> None:
    seen: list[Any] = []
    store = WindowStore(tmp_path / "w")

    def keep(table: Any) -> None:
        ids, units = table.column("request_id").to_pylist(), table.column("unit").to_pylist()
        seen.extend(zip(ids, units, strict=True))

    for batch in range(2):
        write(tmp_path / "log", [record(T0, request_id=f"r{batch}{i}") for i in range(3)])
        windows = store.update(
            tmp_path / "log",
            LOG_GLOB,
            reference(),
            window=HOUR,
            budget_ms=None,
            columns=("request_id", "unit"),
            on_chunk=keep,
        )
    assert seen == [(f"r{b}{i}", "u1") for b in range(2) for i in range(3)]
    assert windows[0].requests == 6
