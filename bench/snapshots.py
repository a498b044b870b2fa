"""Training-set snapshots: what a Delta version costs beside the Parquet training set.

    .venv/bin/python bench/snapshots.py [--customers 5000]

Simulates the retail example (``--customers``), builds its training set once as Parquet, then
times writing it as a Delta version, reading the version back, its content hash, and the
comparison `taxiway train --reproduce` makes (identical sets: the cheap path; one value
changed: the per-column path). Prints one line per step.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.features.snapshots import compare_tables, content_hash, read_snapshot, write_snapshot
from taxiway.features.training_set import build_training_set
from taxiway.spec.project import Project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "retail"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="taxiway-bench-snapshots-"))
    try:
        spec = _retail(folder, args.customers)
        out = folder / "training.parquet"
        began = time.perf_counter()
        manifest = build_training_set(Project.load(spec), out)
        _say("build the training set (Parquet)", began, f"{manifest.rows:,} rows")
        table = pq.read_table(out)
        began = time.perf_counter()
        snapshot = write_snapshot(folder / "delta", table)
        _say("write it as a Delta version", began)
        began = time.perf_counter()
        back = read_snapshot(snapshot)
        _say("read the version back", began, f"equal: {back.equals(table)}")
        began = time.perf_counter()
        content_hash(table)
        _say("content hash", began)
        began = time.perf_counter()
        compare_tables(back, table, keys=[*manifest.keys, "timestamp"])
        _say("compare, identical", began)
        column = manifest.features[0]
        index = table.schema.get_field_index(column)
        values = table.column(column).to_pylist()
        values[0] = (values[0] or 0) + 1
        changed = table.set_column(
            index, table.field(index), pa.array(values, table.field(index).type)
        )
        began = time.perf_counter()
        diff = compare_tables(back, changed, keys=[*manifest.keys, "timestamp"])
        _say("compare, one value changed", began, f"{diff.columns_differing}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _retail(folder: Path, customers: int) -> Path:
    spec = importlib.util.spec_from_file_location("retail_sim", EXAMPLE / "simulate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["retail_sim"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    module.simulate(folder / "data", customers=customers)
    shutil.copy(EXAMPLE / "taxiway.yaml", folder / "taxiway.yaml")
    shutil.copytree(EXAMPLE / "contracts", folder / "contracts")
    return folder / "taxiway.yaml"


def _say(step: str, began: float, note: str = "") -> None:
    print(f"{step:<36} {time.perf_counter() - began:7.3f} s  {note}")


if __name__ == "__main__":
    main()
