"""Build a taxiway project that serves the benchmark's own model: the same model as the peers.

    .venv/bin/python bench/serving_peers/build_same.py

MLflow and BentoML serve ``bench/.data/serving/model/model.txt`` (100 trees, 20 features) on rows
carried in each request. This project serves that same Booster through ``taxiway serve``: it
is imported as a pilot (pickled, with a ``.features.json`` sidecar naming its inputs), which
taxiway compiles to a serving form because the form reproduces it exactly; the 20 values of
each of the 256 request rows are a static feature view, materialized into the online store
under the key the request names. So each answer includes the online-store lookup and must
equal ``Booster.predict`` on the row: ``expected.json`` holds those values, one per line of
``bodies.jsonl``, for ``bench/serving.py --taxiway-expected``.

A spine and a label are needed for taxiway to build a training set (it scores the pilot and
a baseline on its validation rows); they come from a small made-up events table. Into
``bench/.data/serving/same/``; prints the arguments to give bench/serving.py.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / ".data" / "serving" / "same"
VIEW = "row"

SPEC = """\
name: same_model
owner: bench
description: The benchmark's LightGBM model (bench/serving.py), served by taxiway.
sources:
  profiles:
    kind: file
    path: data/profiles.parquet
  events:
    kind: file
    path: data/events.parquet
    timestamp: at
entities:
  customer: customer_id
features:
  {view}:
    source: profiles
    entity: customer
    static: [{columns}]
spine:
  every: 7d
  start: 2025-01-06
  end: 2025-03-24
  source: events
label:
  name: active
  kind: any_event
  source: events
  entity: customer
  horizon: 7d
model:
  pilot: pilot.pkl
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the project's folder")
    args = parser.parse_args(argv)
    import lightgbm

    from serving import FEATURES, ensure_model
    from taxiway.cli import main as taxiway

    model = ensure_model()
    out: Path = args.out
    spec = out / "taxiway.yaml"
    columns = [f"f{i}" for i in range(FEATURES)]
    if not (out / "built").exists():
        shutil.rmtree(out, ignore_errors=True)
        (out / "data").mkdir(parents=True)
        profiles = {"customer_id": model.keys}
        for i, name in enumerate(columns):
            profiles[name] = model.rows[:, i].tolist()
        pq.write_table(pa.table(profiles), out / "data" / "profiles.parquet")
        rng = np.random.default_rng(7)
        start = datetime(2025, 1, 1, tzinfo=UTC)
        events = [
            (key, start + timedelta(hours=float(h)))
            for key in model.keys
            for h in rng.uniform(0, 24 * 95, size=rng.integers(2, 12))
        ]
        pq.write_table(
            pa.table(
                {
                    "customer_id": [k for k, _ in events],
                    "at": pa.array([t for _, t in events], pa.timestamp("us", "UTC")),
                }
            ),
            out / "data" / "events.parquet",
        )
        booster = lightgbm.Booster(model_file=str(model.path))
        (out / "pilot.pkl").write_bytes(pickle.dumps(booster))
        names = [f"{VIEW}__{c}" for c in columns]
        (out / "pilot.features.json").write_text(json.dumps(names))
        spec.write_text(SPEC.format(view=VIEW, columns=", ".join(columns)))
        for step in (
            ["train", "-f", str(spec), "--json"],
            ["models", "promote", "1", "-f", str(spec)],
            ["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"],
        ):
            code = taxiway(step)
            if code != 0 and step[0] != "train":  # train exits 1 below the baseline: fine
                print(f"taxiway {' '.join(step)} failed ({code})", file=sys.stderr)
                return 1
        (out / "built").write_text("")
    bodies = out / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"entities": {"customer": k}}) + "\n" for k in model.keys))
    expected = out / "expected.json"
    expected.write_text(json.dumps([float(p) for p in model.expected]))
    print(f"--taxiway-spec {spec} --taxiway-bodies {bodies} --taxiway-expected {expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
