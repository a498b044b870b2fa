"""examples/shop-recs end to end through `taxiway train`: simulated at a small size, the spec
and contracts as shipped; the model beats popularity and the artifact serves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, load_script

from taxiway.cli import main
from taxiway.recommend.pipeline import Recommender

pytestmark = pytest.mark.slow

SHOP = EXAMPLES / "shop-recs"


def test_the_shop_recs_example_trains_and_beats_popularity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulate = load_script("shop_recs_sim", SHOP / "simulate.py")
    simulate.main(
        [
            "--out",
            str(tmp_path / "data"),
            "--users",
            "600",
            "--items",
            "300",
            "--interactions",
            "30000",
        ]
    )
    shutil.copy(SHOP / "taxiway.yaml", tmp_path / "taxiway.yaml")
    shutil.copytree(SHOP / "contracts", tmp_path / "contracts")
    capsys.readouterr()
    spec, state = tmp_path / "taxiway.yaml", tmp_path / "state"
    code = main(["train", "-f", str(spec), "--state-dir", str(state), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document
    assert document["task"] == "recommend"
    assert document["beats_baseline"] is True
    model, popularity = document["metrics"]["model"], document["metrics"]["baseline"]
    assert model["recall@10"] > popularity["recall@10"]
    saved = Recommender.load(Path(document["artifact_dir"]))
    assert saved.generators == ["ease", "itemknn", "segment_popularity", "popularity"]
