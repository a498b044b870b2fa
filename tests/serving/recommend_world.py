"""A tiny trained recommender for the recommendation service's tests.

The world is R3b's training test's (tests/recommend/test_training.py): 150 users, 60 items with
taste structure, purchases and views over 100 days from START; item i1 goes out of stock at
day 50, i2 is denied (recalled). Candidates: EASE (the primary), ItemKNN, popularity; filters
already_seen (purchases, 90 days), unavailable, deny. Trained once per session (the
``trained_world`` fixture of tests/conftest.py), copied per test (each test gets its own
registry, logs and state).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from tests.recommend.synthetic import START
from tests.recommend.test_training import make_project

from taxiway.recommend.training import train_recommender
from taxiway.spec.project import Project

NOW = START + timedelta(days=60)
"""The service's clock in these tests: after i1 went out of stock."""
CANDIDATES = (
    "[{kind: ease, k: 50, l2: 50.0}, {kind: itemknn, k: 50, neighbours: 30}, "
    "{kind: popularity, k: 60}]"
)
DENIED = "i2"
OUT_OF_STOCK = "i1"  # from day 50
LOOKBACK = timedelta(days=90)


def train_world(root: Path, *, serving: str = "") -> Path:
    """Train the world's recommender in ``root``; its spec's path (version 1 registered).
    ``serving`` is the text of a ``serving:`` section, appended to the spec."""
    project = make_project(root, candidates=CANDIDATES, extra=serving)
    train_recommender(project)
    return project.spec_path


def copy_world(world: Path, into: Path, *, serving: str = "") -> Project:
    """A copy of ``world`` in ``into`` (its own state), with ``serving`` replacing the spec's
    serving section (the spec has none by default)."""
    target = into / "world"
    shutil.copytree(world, target)
    spec = target / "taxiway.yaml"
    if serving:
        spec.write_text(spec.read_text() + serving)
    return Project.load(spec, target / "state")


def filtered(project: Project, user: str, at: datetime) -> set[str]:
    """What no list for ``user`` at ``at`` may hold, from the raw data (not the pipeline's):
    their purchases in the lookback, the denied item, and the item out of stock by then."""
    events = pq.read_table(project.spec_path.parent / "data" / "events.parquet").to_pylist()
    seen = {
        str(row["item"])
        for row in events
        if str(row["user"]) == user
        and row["event"] == "purchase"
        and at - LOOKBACK <= row["at"] < at
    }
    out = {DENIED} | seen
    if at >= START + timedelta(days=50):
        out.add(OUT_OF_STOCK)
    return out
