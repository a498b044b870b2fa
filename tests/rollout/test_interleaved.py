"""Each interleaved user's clicks per team, read from the logs, equal a brute-force scan of
every answer and outcome: only interleaved answers since the start, only outcomes naming the
request, a shown item and the metric; torn lines and older files are skipped. Read in pieces
(each check reading what the logs gained), they equal a full rescan."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.errors import RolloutError
from taxiway.rollout.interleaved import read_interleaved, update_interleaved
from taxiway.rollout.interleaved_state import InterleavedState

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ITEMS = ["a", "b", "c", "d", "e"]


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    answers = []
    for n in range(draw(st.integers(0, 25))):
        shown = draw(st.lists(st.sampled_from(ITEMS), unique=True, min_size=1, max_size=4))
        arm = draw(st.sampled_from(["interleaved", "interleaved", "control", "candidate"]))
        minutes = draw(st.integers(-30, 90))
        answers.append(
            {
                "ts": (START + timedelta(minutes=minutes)).isoformat(),
                "request_id": f"r{n}",
                "unit": draw(st.sampled_from(["u1", "u2", "u3", None])),
                "arm": arm,
                "items": [
                    {
                        "item": item,
                        "position": p + 1,
                        "score": 0.0,
                        "stage": "s",
                        **({"team": draw(st.sampled_from(["control", "candidate"]))}
                           if arm == "interleaved" else {}),
                    }
                    for p, item in enumerate(shown)
                ],
            }
        )  # fmt: skip
    outcomes = []
    for _ in range(draw(st.integers(0, 30))):
        outcomes.append(
            {
                "received_at": START.isoformat(),
                "request_id": f"r{draw(st.integers(0, 30))}",
                "item": draw(st.one_of(st.none(), st.sampled_from(ITEMS))),
                "name": draw(st.sampled_from(["click", "click", "purchase"])),
                "value": draw(st.one_of(st.booleans(), st.integers(0, 3))),
            }
        )
    return answers, outcomes


def _write(folder: Path, records: list[dict[str, Any]], name: str = "w-20260301T120000-0") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    (folder / f"predictions-{name}.jsonl").write_bytes(lines + b'{"ts": "2026-03-01T1')


def _brute_force(
    answers: list[dict[str, Any]], outcomes: list[dict[str, Any]]
) -> dict[str, tuple[float, float]]:
    value: dict[tuple[str, str], float] = defaultdict(float)
    for o in outcomes:
        if o["name"] == "click" and o["item"] is not None:
            value[(o["request_id"], o["item"])] += float(o["value"])
    users: dict[str, list[float]] = {}
    for a in answers:
        if a["arm"] != "interleaved" or a["unit"] is None or a["ts"] < START.isoformat():
            continue
        credit = users.setdefault(a["unit"], [0.0, 0.0])
        for shown in a["items"]:
            got = value.get((a["request_id"], shown["item"]), 0.0)
            credit[0 if shown["team"] == "candidate" else 1] += got
    return {u: (c[0], c[1]) for u, c in users.items()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(logs())
def test_the_credits_equal_a_scan_of_every_pair(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    answers, outcomes = case
    root = tmp_path_factory.mktemp("logs")
    _write(root / "predictions", answers)
    if outcomes:
        _write(root / "outcomes", outcomes)
    read = read_interleaved(root / "predictions", root / "outcomes", outcome="click", since=START)
    expected = _brute_force(answers, outcomes)
    assert read.users == sorted(expected)
    assert read.candidate.tolist() == [expected[u][0] for u in read.users]
    assert read.control.tolist() == [expected[u][1] for u in read.users]
    kept = {
        a["request_id"]
        for a in answers
        if a["arm"] == "interleaved" and a["unit"] is not None and a["ts"] >= START.isoformat()
    }
    assert read.answers == len(kept)


def test_files_last_written_before_the_start_are_not_read(tmp_path: Path) -> None:
    answer = {
        "ts": START.isoformat(),
        "request_id": "r1",
        "unit": "u1",
        "arm": "interleaved",
        "items": [{"item": "a", "position": 1, "score": 0.0, "stage": "s", "team": "candidate"}],
    }
    _write(tmp_path / "predictions", [answer])
    older = START - timedelta(days=1)
    for path in (tmp_path / "predictions").iterdir():
        os.utime(path, (older.timestamp(), older.timestamp()))
    read = read_interleaved(tmp_path / "predictions", tmp_path / "o", outcome="click", since=START)
    assert read.users == []
    assert (
        read_interleaved(tmp_path / "none", tmp_path / "o", outcome="c", since=START).answers == 0
    )
    assert np.array_equal(read.candidate, np.zeros(0))


def test_an_unreadable_log_is_a_rollout_error_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "predictions"
    folder.mkdir()
    (folder / "predictions-w-20260301T120000-0.jsonl").mkdir()  # a folder where a file should be
    with pytest.raises(RolloutError, match="check again"):
        read_interleaved(folder, tmp_path / "o", outcome="click", since=START - timedelta(days=1))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(logs(), st.lists(st.floats(0, 1), max_size=4), st.booleans())
def test_reading_in_pieces_equals_a_full_rescan(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    cuts: list[float],
    torn: bool,
) -> None:
    answers, outcomes = case
    root = tmp_path_factory.mktemp("pieces")
    lines = {
        "predictions": [orjson.dumps(r) + b"\n" for r in answers],
        "outcomes": [orjson.dumps(r) + b"\n" for r in outcomes],
    }
    for kind in lines:
        (root / kind).mkdir()

    def write_up_to(fraction: float, torn: bool) -> None:
        """The first ``fraction`` of each log's lines, and half the next one when ``torn``."""
        for kind, records in lines.items():
            whole = int(fraction * len(records))
            data = b"".join(records[:whole])
            if torn and whole < len(records):
                data += records[whole][: len(records[whole]) // 2]
            (root / kind / "predictions-w-20260301T120000-0.jsonl").write_bytes(data)

    def update() -> Any:
        return update_interleaved(
            root / "state", root / "predictions", root / "outcomes", outcome="click", since=START
        )

    for fraction in sorted(cuts):
        write_up_to(fraction, torn)
        update()
    write_up_to(1.0, False)
    in_pieces = update()
    again = update()  # nothing new: the same users, nothing written
    once = read_interleaved(root / "predictions", root / "outcomes", outcome="click", since=START)
    for read in (again, once):
        assert read.users == in_pieces.users
        assert read.candidate.tolist() == in_pieces.candidate.tolist()
        assert read.control.tolist() == in_pieces.control.tolist()
        assert read.answers == in_pieces.answers
    expected = _brute_force(answers, outcomes)
    assert in_pieces.users == sorted(expected)
    assert in_pieces.candidate.tolist() == [expected[u][0] for u in in_pieces.users]


def test_a_click_waits_for_its_answer_and_expires_after_an_hour_of_clicks(tmp_path: Path) -> None:
    def click(request: str, minutes: int) -> dict[str, Any]:
        received = (START + timedelta(minutes=minutes)).isoformat()
        return {"received_at": received, "request_id": request, "item": "a", "name": "click",
                "value": True}  # fmt: skip

    shown = {
        "ts": START.isoformat(),
        "request_id": "r1",
        "unit": "u1",
        "arm": "interleaved",
        "items": [{"item": "a", "position": 1, "score": 0.0, "stage": "s", "team": "candidate"}],
    }
    state, log = tmp_path / "state", tmp_path / "predictions"

    def update() -> Any:
        return update_interleaved(state, log, tmp_path / "outcomes", outcome="click", since=START)

    _write(tmp_path / "outcomes", [click("r1", 1), click("ab-1", 2)], name="w-1")
    assert update().users == []  # the clicks wait: their answers are not in the log yet
    _write(log, [shown])
    read = update()
    assert (read.users, read.candidate.tolist()) == (["u1"], [1.0])
    _write(tmp_path / "outcomes", [click("r2", 70)], name="w-2")  # an hour and more later
    update()
    saved = InterleavedState.load(state, "click", int(START.timestamp()) * 1_000_000)
    assert (saved.expired, len(saved.waiting)) == (1, 1)  # ab-1 dropped, r2 waits
    assert saved.candidate.tolist() == [1.0]
