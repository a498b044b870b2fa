"""`make demo-loop`'s three cycles on a small shop (examples/retail/loop.py), judged from what
the registry, the rollout store and the retrain runs recorded, not from the printed text."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import EXAMPLES, load_script

from taxiway.models.registry import open_registry
from taxiway.rollout.history import model_history
from taxiway.rollout.retrain import read_runs
from taxiway.rollout.state import open_rollout_store
from taxiway.spec.project import Project


def test_time_advances_by_extracts_that_only_grow(tmp_path: Path) -> None:
    sim = load_script("retail_sim_known", EXAMPLES / "retail" / "simulate.py")
    sim.simulate(tmp_path / "full", customers=80, start=date(2024, 1, 1), end=date(2024, 12, 31))
    early, late = datetime(2024, 5, 1), datetime(2024, 9, 1)
    sim.known_by(tmp_path / "full", tmp_path / "early", early)
    sim.known_by(tmp_path / "full", tmp_path / "late", late)
    for name, column in sim.KNOWN_AT.items():
        before = pq.read_table(tmp_path / "early" / f"{name}.parquet")
        after = pq.read_table(tmp_path / "late" / f"{name}.parquet")
        full = pq.read_table(tmp_path / "full" / f"{name}.parquet")
        if column is None:
            assert before.equals(full)
            continue
        assert before.num_rows < after.num_rows <= full.num_rows
        assert max(before[column].to_pylist()) < early
        # the earlier extract is exactly the later one's rows known by then, in order
        assert before.equals(after.filter(pc.less(after[column], pa.scalar(early))))


@pytest.mark.slow
def test_three_cycles_roll_out_improve_on_drift_and_stop_a_worse_candidate(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(EXAMPLES / "retail"))  # loop.py imports simulate beside it
    try:
        loop = load_script("retail_loop", EXAMPLES / "retail" / "loop.py")
        cycles = loop.run_loop(tmp_path / "loop", customers=400, say=lambda _: None)
    finally:
        sys.path.remove(str(EXAMPLES / "retail"))
    project = Project.load(tmp_path / "loop" / "taxiway.yaml")
    name = project.spec.name

    assert [c.trigger.split(":")[0] for c in cycles] == ["cadence", "drift", "cadence"]
    runs = read_runs(project)
    assert [r["gate"] for r in runs] == [
        "rollout_started",
        "rollout_started",
        "worse_than_production",
    ]
    assert [r["candidate"] for r in runs] == [2, 3, 4]
    routine, drift, worse = runs
    assert routine["scores"]["candidate"] >= routine["scores"]["production"]
    assert drift["trigger"].startswith("drift:")
    assert drift["scores"]["candidate"] > drift["scores"]["production"]
    assert (
        worse["scores"]["production"] > worse["scores"]["candidate"] > worse["scores"]["baseline"]
    )

    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        stages = {v.version: v.stage for v in registry.list(name)}
        triggers = {
            v.version: (v.lineage.get("retrain") or {}).get("trigger") for v in registry.list(name)
        }
        archived = [
            e for e in registry.history(name) if e.version == 4 and e.to_stage == "archived"
        ]
    finally:
        registry.close()
    assert stages == {1: "archived", 2: "archived", 3: "production", 4: "archived"}
    assert triggers[1] == "manual"
    assert triggers[2] == "cadence"
    assert str(triggers[3]).startswith("drift:")
    assert [e.note.split(":")[0] for e in archived if e.note] == ["worse_than_production"]

    store = open_rollout_store(project.spec.registry, project.state_dir)
    try:
        rolled = [r.candidate for r in store.history(name)]
    finally:
        store.close()
    assert sorted(rolled) == [2, 3]  # the worse candidate never reached a rollout

    history = {e.version: e for e in model_history(project)}
    assert history[4].gate == "worse_than_production"
    assert history[4].rollout is None
    assert history[3].production == 2
