"""The interleaving read's cost per check (``bench/rollout.py --part interleaving --il-read N
[--il-new M]``).

``N`` logged answers of 10 items over 100,000 users in four worker files (5% of them
interleaved, each item with its team; one click in 30 interleaved items, posted by request id
and item), written once under ``bench/.data/rollout/interleave-<N>/``. Timed, best of 3:

- **full rescan**: :func:`~taxiway.rollout.interleaved.read_interleaved` over the ``N`` answers
  (what every check ran before the read was incremental);
- with ``--il-new M``: ``M`` more answers (the same mix, a fifth worker file, their clicks in a
  second outcomes file) after the ``N`` were read: **incremental**,
  :func:`~taxiway.rollout.interleaved.update_interleaved` from the state saved after the ``N``
  (a fresh copy of it each repetition; it reads the new bytes, matches, saves), against the
  full rescan of all ``N + M`` in the same run. The work folder links the ``N`` answers' files
  (symlinks), so they are not copied.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from taxiway.rollout.interleaved import read_interleaved, update_interleaved

DATA = Path(__file__).resolve().parent / ".data" / "rollout"
READ_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def write_logs(folder: Path, answers: int, seed: int) -> None:
    """``answers`` answers of 10 items over 100,000 users in four worker files, 5% of them
    interleaved (each item with its team), and one click per 30 interleaved items."""
    (folder / "predictions").mkdir(parents=True)
    (folder / "outcomes").mkdir(parents=True)
    _write_answers(folder, 0, answers, 4, seed, "20260105T090000")


def _write_answers(
    folder: Path, first: int, answers: int, files: int, seed: int, stamp: str
) -> None:
    """Answers ``first`` to ``first + answers`` in ``files`` worker files named with ``stamp``
    (workers numbered from ``first``'s file on), and their clicks in one outcomes file."""
    rng = np.random.default_rng(seed + first)
    per_file = answers // files
    clicks = []
    for worker in range(files):
        lines = []
        for n in range(first + worker * per_file, first + (worker + 1) * per_file):
            interleaved = n % 20 == 0
            teams = rng.random(10) < 0.5
            items = [
                {"item": f"i{(n * 7 + j) % 5000}", "position": j + 1, "score": 0.5,
                 "stage": "ease", **({"team": "candidate" if teams[j] else "control"}
                                     if interleaved else {})}
                for j in range(10)
            ]  # fmt: skip
            at = READ_START + timedelta(seconds=n / 100)
            lines.append(
                orjson.dumps(
                    {
                        "ts": at.isoformat(),
                        "request_id": f"r{n}",
                        "model": "shop",
                        "model_version": 2,
                        "arm": "interleaved" if interleaved else "control",
                        "unit": f"u{n % 100_000}",
                        "path": "model",
                        "degraded": False,
                        "latency_ms": 3.0,
                        "k": 10,
                        "items": items,
                    }
                )
            )
            if interleaved:
                for j in np.nonzero(rng.random(10) < 1 / 30)[0]:
                    clicks.append(
                        orjson.dumps(
                            {
                                "received_at": at.isoformat(),
                                "request_id": f"r{n}",
                                "unit": None,
                                "item": items[j]["item"],
                                "name": "click",
                                "value": True,
                                "timestamp": at.isoformat(),
                            }
                        )
                    )
        name = f"predictions-w{worker}-{stamp}-0.jsonl"
        (folder / "predictions" / name).write_bytes(b"\n".join(lines) + b"\n")
    outcomes = folder / "outcomes" / f"predictions-w0-{stamp}-0.jsonl"
    outcomes.write_bytes(b"\n".join(clicks) + b"\n")


def time_read(answers: int, seed: int) -> dict[str, Any]:
    """Seconds (wall and CPU, best of 3) of one read of the interleaved users."""
    folder = DATA / f"interleave-{answers}"
    if not (folder / "predictions").exists():
        began = time.perf_counter()
        write_logs(folder, answers, seed)
        print(f"(wrote {answers:,} answers in {time.perf_counter() - began:.1f} s)")
    walls, cpus, users = [], [], None
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        users = read_interleaved(
            folder / "predictions", folder / "outcomes", outcome="click", since=READ_START
        )
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert users is not None
    size = sum(p.stat().st_size for p in (folder / "predictions").iterdir())
    return {
        "answers": answers,
        "log_bytes": size,
        "interleaved_answers": users.answers,
        "users": len(users.users),
        "wall_s": min(walls),
        "cpu_s": min(cpus),
    }


def _timed(run: Any) -> dict[str, float]:
    """Best of 3 of ``run()`` (it is given the repetition), CPU and wall seconds."""
    walls, cpus = [], []
    for repetition in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        run(repetition)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"cpu_s": min(cpus), "wall_s": min(walls)}


def time_incremental(answers: int, new: int, seed: int) -> dict[str, Any]:
    """A check's read with ``answers`` answers already read and ``new`` new, incremental
    against a full rescan (see the module)."""
    base = DATA / f"interleave-{answers}"
    if not (base / "predictions").exists():
        write_logs(base, answers, seed)
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        work = Path(tmp)
        for kind in ("predictions", "outcomes"):
            (work / kind).mkdir()
            for path in (base / kind).iterdir():
                (work / kind / path.name).symlink_to(path)
        state = work / "state"
        update_interleaved(
            state, work / "predictions", work / "outcomes", outcome="click", since=READ_START
        )
        _write_answers(work, answers, new, 1, seed, "20260105T120000")

        def incremental(repetition: int) -> None:
            copy = work / f"state-{repetition}"
            shutil.copytree(state, copy)
            update_interleaved(
                copy, work / "predictions", work / "outcomes", outcome="click", since=READ_START
            )

        def full(_: int) -> None:
            read_interleaved(
                work / "predictions", work / "outcomes", outcome="click", since=READ_START
            )

        times = {
            f"incremental: {new:,} new answers read, state of {answers:,} loaded and saved": _timed(
                incremental
            ),
            f"full rescan of all {answers + new:,} answers (before)": _timed(full),
        }
        saved = sum(p.stat().st_size for p in state.iterdir())
    return {"read": answers, "new": new, "times": times, "state_bytes": saved}
