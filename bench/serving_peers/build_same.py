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

Beside ``taxiway.yaml`` (``log.sync: interval``, taxiway's default) it writes
``taxiway-always.yaml``: the same project and model, the prediction log synced before each
answer (``log.sync: always``, into its own folder).

``--request-fields`` builds the other request shape, the peers' own: a project with no feature
view at all, whose 20 inputs are ``model.request_fields`` (columns of an event spine's rows),
so each request carries the row (``{"features": {"f0": ..., ...}}``) and taxiway does no
online lookup. Into ``bench/.data/serving/same-request/``.
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
OUT_REQUEST = ROOT / "bench" / ".data" / "serving" / "same-request"
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

# the peers' request shape: the 20 values are request fields, columns of the event spine's rows
REQUEST_SPEC = """\
name: same_model_request
owner: bench
description: The benchmark's LightGBM model, its 20 inputs sent in each request (no lookup).
sources:
  events:
    kind: file
    path: data/events.parquet
    timestamp: at
entities:
  customer: customer_id
spine:
  source: events
label:
  name: active
  kind: any_event
  source: events
  entity: customer
  horizon: 7d
model:
  pilot: pilot.pkl
  request_fields: [{columns}]
"""

ALWAYS = """
serving:
  log:
    sync: always
    path: predictions-always
"""


# A benchmark shop has no sign-offs: its promotion overrides the gate, recorded as such.
FORCE = ["--force", "--reason", "benchmark shop: no sign-offs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="the project's folder")
    parser.add_argument(
        "--request-fields",
        action="store_true",
        help="the 20 values as request fields, no feature view and no lookup",
    )
    args = parser.parse_args(argv)
    import lightgbm
    from serving_model import FEATURES, ensure_model

    from taxiway.cli import main as taxiway

    model = ensure_model()
    out: Path = args.out or (OUT_REQUEST if args.request_fields else OUT)
    spec = out / "taxiway.yaml"
    columns = [f"f{i}" for i in range(FEATURES)]
    if not (out / "built").exists():
        shutil.rmtree(out, ignore_errors=True)
        (out / "data").mkdir(parents=True)
        rng = np.random.default_rng(7)
        start = datetime(2025, 1, 1, tzinfo=UTC)
        events = [
            (index, key, start + timedelta(hours=float(h)))
            for index, key in enumerate(model.keys)
            for h in rng.uniform(0, 24 * 95, size=rng.integers(2, 12))
        ]
        table = {
            "customer_id": [k for _, k, _ in events],
            "at": pa.array([t for _, _, t in events], pa.timestamp("us", "UTC")),
        }
        if args.request_fields:  # each event carries its customer's row
            for i, name in enumerate(columns):
                table[name] = [float(model.rows[index, i]) for index, _, _ in events]
        else:
            profiles = {"customer_id": model.keys}
            for i, name in enumerate(columns):
                profiles[name] = model.rows[:, i].tolist()
            pq.write_table(pa.table(profiles), out / "data" / "profiles.parquet")
        pq.write_table(pa.table(table), out / "data" / "events.parquet")
        booster = lightgbm.Booster(model_file=str(model.path))
        (out / "pilot.pkl").write_bytes(pickle.dumps(booster))
        names = columns if args.request_fields else [f"{VIEW}__{c}" for c in columns]
        (out / "pilot.features.json").write_text(json.dumps(names))
        template = REQUEST_SPEC if args.request_fields else SPEC
        spec.write_text(template.format(view=VIEW, columns=", ".join(columns)))
        steps = [
            ["train", "-f", str(spec), "--json"],
            ["models", "promote", "1", "-f", str(spec), *FORCE],
        ]
        if not args.request_fields:
            steps.append(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"])
        for step in steps:
            code = taxiway(step)
            if code != 0 and step[0] != "train":  # train exits 1 below the baseline: fine
                print(f"taxiway {' '.join(step)} failed ({code})", file=sys.stderr)
                return 1
        (out / "built").write_text("")
    # the same project, the log synced before each answer (its own log folder)
    (out / "taxiway-always.yaml").write_text(spec.read_text() + ALWAYS)
    bodies = out / "bodies.jsonl"
    if args.request_fields:
        lines = [
            json.dumps({"features": dict(zip(columns, row.tolist(), strict=True))})
            for row in model.rows
        ]
    else:
        lines = [json.dumps({"entities": {"customer": k}}) for k in model.keys]
    bodies.write_text("".join(line + "\n" for line in lines))
    expected = out / "expected.json"
    expected.write_text(json.dumps([float(p) for p in model.expected]))
    print(f"--taxiway-spec {spec} --taxiway-bodies {bodies} --taxiway-expected {expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
