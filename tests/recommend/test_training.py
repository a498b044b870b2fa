"""train_recommender end to end on a tiny spec: sources through contracts, split, fit,
evaluation against popularity, a registered version whose saved recommender serves the same
lists."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from tests.recommend.synthetic import START, table

from taxiway.errors import ModelError
from taxiway.models.registry import open_registry
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.training import TASK, load_recommend_data, train_recommender
from taxiway.spec.project import Project

ITEMS = 60

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: events
name: events
version: 1.0.0
status: active
schema:
  - name: events
    physicalType: table
    properties:
      - name: user
        logicalType: integer
        required: true
      - name: item
        logicalType: string
        required: true
"""


def make_project(
    root: Path, *, candidates: str = "[{kind: itemknn, k: 50, neighbours: 30}]", extra: str = ""
) -> Project:
    """Events with taste structure, a catalog whose item i1 goes out of stock, i2 recalled."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    events = table(users=150, items=ITEMS, per_user=20, seed=3)
    bad = pa.table(
        {
            "user": pa.array([None], pa.int64()),
            "item": ["i5"],
            "at": pa.array([events["at"][0].as_py()], events.schema.field("at").type),
            "weight": [1.0],
            "event": ["view"],
        }
    )
    pq.write_table(pa.concat_tables([events, bad]), data / "events.parquet")
    ids = [f"i{i}" for i in range(ITEMS)]
    changed = [START] * ITEMS + [START + timedelta(days=50)]
    pq.write_table(
        pa.table(
            {
                "item": [*ids, "i1"],
                "changed_at": pa.array(changed, pa.timestamp("us", tz="UTC")),
                "in_stock": [True] * ITEMS + [False],
                "category": [f"c{i % 7}" for i in range(ITEMS)] + ["c1"],
            }
        ),
        data / "products.parquet",
    )
    pcsv.write_csv(pa.table({"item": ["i2"]}), data / "recalled.csv")
    (root / "contracts").mkdir(exist_ok=True)
    (root / "contracts" / "events.yaml").write_text(CONTRACT)
    spec = root / "taxiway.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            name: shop-recs
            sources:
              events: {{kind: file, path: data/events.parquet, timestamp: at,
                        contract: contracts/events.yaml}}
              products: {{kind: file, path: data/products.parquet, timestamp: changed_at}}
              recalled: {{kind: file, path: data/recalled.csv}}
            recommend:
              interactions: {{source: events, user: user, item: item, weight: weight,
                              event_type: event}}
              catalog: {{source: products, item: item, available: in_stock, category: category}}
              candidates: {candidates}
              filters:
                - {{kind: already_seen, lookback: 90d, event_types: [purchase]}}
                - {{kind: unavailable}}
                - {{kind: deny, source: recalled}}
              k: 5
              metric: recall@5
            """
        )
        + extra
    )
    return Project.load(spec, root / "state")


def test_a_recommender_is_trained_judged_against_popularity_and_registered(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path)
    steps: list[str] = []
    result = train_recommender(project, progress=steps.append)
    assert result.beats_baseline
    assert result.evaluation.model["recall@5"] > result.evaluation.popularity["recall@5"]
    assert set(result.training_seconds) == {"itemknn", "segment_popularity", "popularity"}
    assert result.cold_users == 0
    assert any(step.startswith("split: cutoff") for step in steps)
    version = result.version
    assert version.task == TASK
    assert version.algorithm == "itemknn"
    assert version.metrics["beats_baseline"] is True
    assert version.metrics["baseline"]["recall@5"] == result.evaluation.popularity["recall@5"]
    # the bad row (no user) was quarantined by the contract, not trained on
    assert any((project.state_dir / "quarantine" / "events").rglob("*"))
    assert version.training["interactions"] == 150 * 20
    document = result.as_dict()
    assert document["metrics"]["model"]["ndcg@5"] == result.evaluation.model["ndcg@5"]
    assert document["split"]["evaluated_users"] == result.evaluation.users
    # the registered artifact serves what the evaluation judged
    saved = Recommender.load(Path(version.artifact_dir))
    users = [str(u) for u in range(0, 150, 7)]
    lists = saved.recommend(users, result.split.cutoff)
    for answer in lists:
        items = {r.item for r in answer}
        assert len(answer) == 5
        assert "i2" not in items  # denied
    later = saved.recommend(users, START + timedelta(days=60))
    assert all("i1" not in {r.item for r in answer} for answer in later)  # out of stock
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        assert [v.version for v in registry.list("shop-recs")] == [1]
    finally:
        registry.close()


def test_a_model_that_does_not_beat_popularity_is_registered_and_says_so(tmp_path: Path) -> None:
    project = make_project(tmp_path, candidates="[{kind: popularity, k: 50}]")
    result = train_recommender(project)
    assert not result.beats_baseline
    assert result.evaluation.model == result.evaluation.popularity


def test_as_of_reads_only_what_was_known_then(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    data = load_recommend_data(project, as_of=START + timedelta(days=40))
    assert len(data.interactions)
    assert int(data.interactions.at.max()) <= int((START + timedelta(days=40)).timestamp() * 1e6)
    # the catalog's out-of-stock row (day 50) was not known at day 40
    assert np.count_nonzero(~data.catalog.available) == 0


def test_a_spec_without_recommend_says_the_fix(tmp_path: Path) -> None:
    (tmp_path / "taxiway.yaml").write_text("name: demo\n")
    with pytest.raises(ModelError, match="recommend"):
        train_recommender(Project.load(tmp_path / "taxiway.yaml", tmp_path / "state"))
