"""The rollout's per-unit and per-arm state, read from the logs incrementally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import RolloutError
from taxiway.rollout.assignment import bucket
from taxiway.rollout.units import UnitsState, text_keys, update_units

from .traffic import answer, outcome, write

T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
SALT = "s1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def update(state_dir: Path, **changes: Any) -> UnitsState:
    arguments: dict[str, Any] = {
        "salt": SALT,
        "started_at": T0,
        "boundaries": [(T0, 0), (at(60), 1)],
        "names": ["converted", "revenue"],
        "latency_limit_ms": 50.0,
    }
    arguments.update(changes)
    return update_units(state_dir / "rollout" / "1", state_dir / "predictions", **arguments)


def row(state: UnitsState, unit: str) -> int:
    return list(state.units.unit.to_pylist()).index(unit)


def test_arms_count_answers_fallbacks_errors_and_slow_ones(tmp_path: Path) -> None:
    write(
        tmp_path / "predictions",
        [
            answer(at(-5), "u0", "control", version=1),  # before the rollout: not counted
            answer(at(1), "u1", "control", version=1, latency_ms=3.0),
            answer(at(2), "u2", "candidate", version=2, latency_ms=80.0),
            answer(
                at(3),
                "u3",
                "candidate",
                version=2,
                path="fallback:baseline",
                reason="model failed: boom",
            ),
            answer(
                at(4),
                "u4",
                "candidate",
                version=2,
                path="fallback:constant",
                reason="features missing: age",
            ),
            answer(at(5), None, "control", version=1),
            answer(at(6), "u5", None, version=1),  # no arm: not the rollout's
        ],
    )

    state = update(tmp_path)

    control, candidate = state.arms["control"], state.arms["candidate"]
    assert (control.answers, control.fallbacks, control.errors, control.slow) == (2, 0, 0, 0)
    assert (candidate.answers, candidate.fallbacks, candidate.errors, candidate.slow) == (
        3,
        2,
        1,
        1,
    )
    assert candidate.versions == {"2": 3}
    assert control.latency_quantile(0.5) == pytest.approx(3.0, rel=0.15)
    assert candidate.latency_quantile(0.99) == pytest.approx(80.0, rel=0.15)
    assert state.answers_without_unit == 1
    assert sorted(state.units.unit.to_pylist()) == ["u1", "u2", "u3", "u4"]


def test_units_first_exposure_arm_and_bucket(tmp_path: Path) -> None:
    write(
        tmp_path / "predictions",
        [
            answer(at(10), "a", "candidate", version=2),
            answer(at(5), "a", "candidate", version=2),  # earlier, read later
            answer(at(7), "b", "control", version=1),
            answer(at(70), "b", "candidate", version=2),  # moved at the step change: fine
            answer(at(8), "c", "control", version=1),
            answer(at(9), "c", "candidate", version=2),  # both arms within step 0
            answer(at(61), "d", "candidate", version=2),
            answer(at(62), "d", "control", version=1),  # back to control: both arms
        ],
    )

    state = update(tmp_path)
    u = state.units

    a, b, c, d = (row(state, name) for name in "abcd")
    assert u.first_us[a] == int(at(5).timestamp() * 1e6)
    assert list(u.first_arm[[a, b, c, d]]) == [1, 0, 0, 1]
    assert list(u.exposures[[a, b, c, d]]) == [2, 2, 2, 2]
    assert list(u.in_both[[a, b, c, d]]) == [False, False, True, True]
    assert u.first_candidate[b] == int(at(70).timestamp() * 1e6)
    assert u.bucket[a] == bucket(SALT, "a")


def test_outcomes_split_before_and_after_first_exposure(tmp_path: Path) -> None:
    write(
        tmp_path / "predictions",
        [
            answer(at(10), "a", "candidate", version=2),
            answer(at(10), "b", "control", version=1),
            answer(at(70), "b", "candidate", version=2),
        ],
    )
    write(
        tmp_path / "outcomes",
        [
            outcome(at(-100), "a", True),  # before the rollout: the covariate
            outcome(at(5), "a", False),
            outcome(at(20), "a", True),
            outcome(at(30), "a", True),
            outcome(at(20), "b", 12.5, "revenue"),
            outcome(at(80), "b", 99.0, "revenue"),  # after b moved to candidate: dropped
            outcome(at(20), None, 1.0, "revenue"),  # no unit: cannot be attributed
            outcome(at(20), "z", 3.0, "revenue"),  # never answered: pre only
            outcome(at(20), "a", 1.0, "clicks"),  # not a tracked outcome
        ],
    )

    state = update(tmp_path)

    a, b, z = row(state, "a"), row(state, "b"), row(state, "z")
    assert state.boolean == {"converted": True, "revenue": False}
    assert state.units.pre["converted"][a] == 1.0
    assert state.units.post["converted"][a] == 2.0
    assert state.value("converted")[a] == 1.0  # a true/false outcome: any
    assert state.units.post_events["converted"][a] == 2
    assert state.value("revenue")[b] == 12.5
    assert state.units.pre["revenue"][z] == 3.0
    assert not state.units.exposed[z]
    assert (state.moved_outcomes, state.unattributed) == (1, 1)


def test_only_new_bytes_are_read_and_state_survives_reopening(tmp_path: Path) -> None:
    write(tmp_path / "predictions", [answer(at(1), "a", "control", version=1)])
    first = update(tmp_path)
    assert first.arms["control"].answers == 1

    again = update(tmp_path)  # nothing new
    assert again.arms["control"].answers == 1

    write(tmp_path / "predictions", [answer(at(2), "a", "control", version=1)], worker="w2")
    later = update(tmp_path)
    assert later.arms["control"].answers == 2
    assert list(later.units.exposures) == [2]


def test_other_names_or_limit_read_everything_again(tmp_path: Path) -> None:
    write(tmp_path / "predictions", [answer(at(1), "a", "control", version=1, latency_ms=70)])
    assert update(tmp_path).arms["control"].slow == 1
    assert update(tmp_path, latency_limit_ms=100.0).arms["control"].slow == 0
    assert update(tmp_path, names=["converted"]).arms["control"].answers == 1


def by_request(when: datetime, request_id: str | None, value: Any, **more: Any) -> dict[str, Any]:
    """An outcome posted with a request id and no unit."""
    return {**outcome(when, None, value), "request_id": request_id, **more}


def test_outcomes_with_a_request_id_only_count_for_the_unit_that_was_answered(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "predictions",
        [
            answer(at(1), "u1", "control", version=1, request_id="a"),
            answer(at(2), "u2", "candidate", version=2, request_id="b"),
            answer(at(3), "u3", "control", version=1, request_id="c"),
            answer(at(3), "u4", "control", version=1, request_id="c"),  # one id, two units
        ],
    )
    write(
        tmp_path / "outcomes",
        [
            by_request(at(0.5), "a", 2.0, name="revenue"),  # before u1's answer: pre-exposure
            by_request(at(5), "a", True),
            by_request(at(6), "b", True),
            by_request(at(7), "c", True),  # whose unit? neither
            by_request(at(8), "later", True),  # its answer is not in the log yet
            by_request(at(9), None, True),  # neither a unit nor a request id
        ],
    )

    state = update(tmp_path)

    assert state.value("converted")[row(state, "u1")] == 1.0
    assert state.value("converted")[row(state, "u2")] == 1.0
    assert state.value("revenue", "pre")[row(state, "u1")] == 2.0
    assert state.value("converted")[[row(state, "u3"), row(state, "u4")]].tolist() == [0, 0]
    assert (state.by_request, state.unattributed, len(state.pending)) == (3, 2, 1)

    write(
        tmp_path / "predictions", [answer(at(4), "u5", "candidate", version=2, request_id="later")]
    )
    reopened = update(tmp_path)  # the pending outcome was saved, and is attributed now
    assert reopened.value("converted")[row(reopened, "u5")] == 1.0
    assert (reopened.by_request, reopened.unattributed, len(reopened.pending)) == (4, 2, 0)


def test_an_outcome_whose_request_never_shows_is_dropped_after_a_bounded_time(
    tmp_path: Path,
) -> None:
    write(tmp_path / "predictions", [answer(at(1), "u1", "control", version=1, request_id="a")])
    write(tmp_path / "outcomes", [by_request(at(2), "gone", True, received_at=at(2).isoformat())])
    assert len(update(tmp_path).pending) == 1
    write(tmp_path / "predictions", [answer(at(61), "u2", "control", version=1, request_id="b")])
    assert len(update(tmp_path).pending) == 1  # 59 minutes of log since: still waiting
    write(tmp_path / "predictions", [answer(at(63), "u3", "control", version=1, request_id="c")])
    state = update(tmp_path)
    assert (len(state.pending), state.expired, state.unattributed) == (0, 1, 1)
    # the state's files: units.arrow and those it names, nothing left behind
    folder = tmp_path / "rollout" / "1"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["units.arrow", *side_files(folder)])


def test_interleaved_answers_count_in_their_own_arm_and_their_outcomes_apart(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "predictions",
        [
            answer(at(1), "u1", "control", version=1, request_id="a"),
            answer(at(2), "u2", "interleaved", version=2, request_id="i1", latency_ms=90.0),
            answer(
                at(3),
                "u3",
                "interleaved",
                version=2,
                request_id="i2",
                path="fallback:popularity",
                reason="candidate: model failed (ValueError); control: no history before now",
            ),
        ],
    )
    write(
        tmp_path / "outcomes",
        [
            by_request(at(4), "i1", True, received_at=at(4).isoformat()),
            by_request(at(5), "i2", 1.0, name="revenue", received_at=at(5).isoformat()),
            by_request(at(6), "a", True, received_at=at(6).isoformat()),
            by_request(at(0), "i3", True, received_at=at(0).isoformat()),  # its answer comes later
        ],
    )

    state = update(tmp_path)

    interleaved = state.arms["interleaved"]
    assert (interleaved.answers, interleaved.fallbacks, interleaved.errors, interleaved.slow) == (
        2,
        1,
        1,  # "candidate: model failed" is an error of the candidate's model
        1,
    )
    assert state.arms["control"].answers == 1
    assert state.arms["candidate"].answers == 0
    assert state.units.unit.to_pylist() == ["u1"]  # an interleaved answer exposes no unit
    assert (state.outcomes_interleaved, state.by_request, len(state.pending)) == (2, 1, 1)
    assert (state.unattributed, state.expired) == (0, 0)

    # the late interleaved answer, then two hours of log: nothing of it ever expires
    write(
        tmp_path / "predictions", [answer(at(30), "u4", "interleaved", version=2, request_id="i3")]
    )
    write(tmp_path / "predictions", [answer(at(180), "u1", "control", version=1, request_id="b")])
    state = update(tmp_path)
    assert (state.outcomes_interleaved, len(state.pending), state.expired) == (3, 0, 0)
    assert state.unattributed == 0


def side_files(folder: Path) -> list[str]:
    """The request-index segments and the pending file ``units.arrow`` names."""
    with pa.memory_map(str(folder / "units.arrow")) as source:
        meta = orjson.loads(pa.ipc.open_file(source).schema.metadata[b"taxiway"])
    return [*meta["requests"], meta["pending"]]


def test_text_keys_differ_for_different_ids_of_any_length() -> None:
    ids = [f"{i:032x}" for i in range(5000)] + [f"r{i}" for i in range(5000)] + ["", "a"]
    keys = text_keys(pa.array(ids))
    assert len(set(keys.tolist())) == len(ids)
    assert text_keys(pa.array(ids[4000:4001]))[0] == keys[4000]  # alone or in a batch


def test_a_damaged_state_file_says_how_to_recover(tmp_path: Path) -> None:
    folder = tmp_path / "rollout" / "1"
    folder.mkdir(parents=True)
    (folder / "units.arrow").write_bytes(b"not arrow")
    (tmp_path / "predictions").mkdir()
    with pytest.raises(RolloutError, match="delete"):
        update(tmp_path)


# --------------------------------------------------------------------------- pieces == once


def _lines(seed: int, n: int) -> tuple[list[bytes], list[tuple[datetime, bytes]], int]:
    """Answers, one a minute (the i-th at minute i), outcomes in time order, as lines, and
    how many outcomes were posted by the request id of an interleaved answer."""
    rng = np.random.default_rng(seed)
    answers, outcomes = [], []
    interleaved = 0
    for i in range(n):
        moment = at(float(i))
        unit = f"u{rng.integers(0, max(2, n // 3))}"
        draw = rng.random()
        arm = "candidate" if draw < 0.3 else "interleaved" if draw < 0.45 else "control"
        path = "model" if rng.random() < 0.9 else "fallback:baseline"
        record = answer(
            moment,
            unit,
            arm,
            version=2 if arm == "candidate" else 1,
            latency_ms=float(rng.exponential(20)),
            path=path,
            reason="model failed" if path != "model" else None,
            request_id=f"r{i}",
        )
        answers.append(orjson.dumps(record) + b"\n")
        if rng.random() < 0.5:
            value: Any = bool(rng.random() < 0.5) if rng.random() < 0.5 else float(rng.integers(5))
            name = "converted" if isinstance(value, bool) else "revenue"
            when = moment + timedelta(seconds=float(rng.uniform(-300, 300)))
            posted = outcome(when, unit, value, name)
            if rng.random() < 0.5:  # posted with the request id only, as most clients do
                posted.update(unit=None, request_id=f"r{i}")
                interleaved += arm == "interleaved"
            outcomes.append((when, orjson.dumps(posted) + b"\n"))
    outcomes.sort(key=lambda pair: pair[0])
    return answers, outcomes, interleaved


def _snapshot(state: UnitsState) -> dict[str, Any]:
    u = state.units
    names = u.unit.to_pylist()
    order = np.argsort(names)
    columns = (
        "first_key",
        "first_candidate",
        "control_step_max",
        "candidate_step_min",
        "exposures",
        "bucket",
    )
    return {
        "units": [names[i] for i in order],
        "columns": [getattr(u, name)[order].tolist() for name in columns],
        "outcomes": {
            name: (
                u.pre[name][order].tolist(),
                u.post[name][order].tolist(),
                u.post_events[name][order].tolist(),
            )
            for name in u.pre
        },
        "arms": {arm: counts.to_dict() for arm, counts in state.arms.items()},
        "counts": (state.answers_without_unit, state.unattributed, state.moved_outcomes),
        "by_request": (state.by_request, state.expired, len(state.pending)),
        "interleaved": state.outcomes_interleaved,
    }


def _prefix(lines: list[bytes], whole: int, torn: bool) -> bytes:
    """The first ``whole`` lines, and half of the next one when ``torn`` (being written)."""
    data = b"".join(lines[:whole])
    if torn and whole < len(lines):
        data += lines[whole][: len(lines[whole]) // 2]
    return data


@settings(derandomize=True, deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 1000),
    n=st.integers(1, 60),
    cuts=st.lists(st.floats(0, 1), max_size=4),
    torn=st.booleans(),
)
def test_reading_in_pieces_equals_reading_once(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n: int, cuts: list[float], torn: bool
) -> None:
    answers, outcomes, interleaved = _lines(seed, n)
    workers = 3  # three workers' files, interleaved in time
    pieces = tmp_path_factory.mktemp("pieces")
    once = tmp_path_factory.mktemp("once")
    for folder in (pieces, once):
        (folder / "predictions").mkdir()
        (folder / "outcomes").mkdir()
    outcome_file = "predictions-o1-20261206T050000-0000.jsonl"

    def write_all(folder: Path, read: int, torn: bool) -> None:
        """Answers before minute ``read`` written; outcomes before it too (the service's
        order: an outcome follows the answer that led to it)."""
        for w in range(workers):
            lines = answers[w::workers]
            whole = len(range(w, read, workers))
            name = f"predictions-w{w}-20261206T050000-0000.jsonl"
            (folder / "predictions" / name).write_bytes(_prefix(lines, whole, torn))
        known = sum(1 for when, _ in outcomes if when < at(read)) if read < n else len(outcomes)
        lines = [line for _, line in outcomes]
        (folder / "outcomes" / outcome_file).write_bytes(_prefix(lines, known, torn))

    for fraction in sorted(cuts):
        write_all(pieces, int(fraction * n), torn)
        update(pieces)
    write_all(pieces, n, False)
    in_pieces = update(pieces)
    write_all(once, n, False)
    at_once = update(once)

    assert _snapshot(in_pieces) == _snapshot(at_once)
    assert in_pieces.pending.key.tolist() == []  # every request was answered by the end
    # an outcome of an interleaved answer is counted apart, in every piece: never expired
    assert in_pieces.outcomes_interleaved == interleaved
    assert in_pieces.expired == 0


def test_files_last_written_before_the_rollout_are_not_parsed(tmp_path: Path) -> None:
    import os

    log = tmp_path / "predictions"
    write(log, [answer(at(-30), f"old{i}", "control", version=1) for i in range(50)])
    [history] = list(log.glob("predictions-*.jsonl"))
    old = (T0 - timedelta(days=1)).timestamp()
    os.utime(history, (old, old))
    # a line that would count if it were read (contrived: the file says it predates the rollout)
    with history.open("ab") as f:
        f.write(orjson.dumps(answer(at(1), "late", "control", version=1)) + b"\n")
    os.utime(history, (old, old))

    first = update(tmp_path)
    assert first.arms["control"].answers == 0
    assert first.answers_cursor.files[history.name].offset == history.stat().st_size

    with history.open("ab") as f:  # the service writes to it again, during the rollout
        f.write(orjson.dumps(answer(at(2), "now", "control", version=1)) + b"\n")
    later = update(tmp_path)
    assert later.arms["control"].answers == 1
    assert later.units.unit.to_pylist() == ["now"]


def test_a_check_writes_only_what_changed(tmp_path: Path) -> None:
    """Nothing new: the state is not written at all. New answers: a new segment of the
    request index; the older, larger segment keeps its bytes (a hard link to the new name)."""
    answers = [answer(at(i), f"u{i}", "control", version=1, request_id=f"r{i}") for i in range(3)]
    write(tmp_path / "predictions", answers)
    folder = tmp_path / "rollout" / "1"
    update(tmp_path)
    [first] = side_files(folder)[:-1]
    inode, written = (folder / first).stat().st_ino, (folder / "units.arrow").stat().st_mtime_ns
    update(tmp_path)  # nothing new
    assert (folder / "units.arrow").stat().st_mtime_ns == written
    assert side_files(folder)[0] == first
    write(tmp_path / "predictions", [answer(at(5), "u9", "control", version=1, request_id="b")])
    state = update(tmp_path)
    older, _ = side_files(folder)[:-1]
    assert older != first
    assert (folder / older).stat().st_ino == inode
    assert [len(keys) for keys, _ in state.requests.segments] == [3, 1]
    assert state.requests.find(text_keys(pa.array(["r1", "b", "x"]))).tolist() == [
        row(state, "u1"),
        row(state, "u9"),
        -2,
    ]


@settings(deadline=None, max_examples=60)
@given(
    st.lists(
        st.one_of(st.floats(-1.0, 1e6), st.sampled_from([0.0, 0.1, 60_000.0, float("nan")])),
        max_size=50,
    )
)
def test_latency_bins_are_searchsorted_over_the_edges(values: list[float]) -> None:
    from taxiway.monitoring.windows import LATENCY_EDGES
    from taxiway.rollout.units import latency_bins

    latency = np.array(values + list(LATENCY_EDGES), np.float64)
    finite = np.isfinite(latency)
    expected = np.searchsorted(LATENCY_EDGES, latency[finite], side="left")
    assert latency_bins(latency[finite]).tolist() == expected.tolist()


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=40), max_size=6),
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
)
def test_the_unit_key_table_finds_what_a_dict_finds(
    batches: list[list[int]], asked: list[int]
) -> None:
    from taxiway.rollout.units_state import KeyRows

    table = KeyRows(np.zeros(0, np.uint64))
    known: dict[int, int] = {}
    for batch in batches:
        fresh = sorted(set(batch) - set(known))
        table.insert(np.array(fresh, np.uint64), np.arange(len(known), len(known) + len(fresh)))
        known.update({key: len(known) + i for i, key in enumerate(fresh)})
        every = list(known) + asked
        found = table.find(np.array(every, np.uint64)).tolist()
        assert found == [known.get(key, -1) for key in every]
