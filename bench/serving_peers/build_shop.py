"""Build the retail example as a served project, for measuring the real `taxiway serve`.

    .venv/bin/python bench/serving_peers/build_shop.py [--customers 5000]

Into ``bench/.data/serving/shop/``: the retail example's data (``examples/retail/simulate.py``),
its spec and contracts, then ``taxiway train``, ``taxiway models promote 1`` and ``taxiway
features materialize --as-of 2025-12-31`` (as tests/serving/conftest.py does), and
``bodies.jsonl``: one ``{"entities": {"customer": "<id>"}}`` request a line for 256 customers
of the store. Prints the two paths to give bench/serving.py:

    .venv/bin/python bench/serving.py --targets taxiway-retail

``--redis URL`` builds the same project with its online store in Redis (kind redis, url
``${REDIS_URL}``, prefix ``bench:<folder name>``; default folder
``bench/.data/serving/shop-redis/``), served by ``bench/serving.py --targets
taxiway-retail-redis`` (which sets ``REDIS_URL`` from its ``--redis``).

This is not the benchmark's model (the retail model has its own features and trees): its
rows say what taxiway's whole request path costs, not how it compares on the same model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "retail"
SHOP = ROOT / "bench" / ".data" / "serving" / "shop"
FIRST_CUSTOMER = 100_001  # examples/retail/simulate.py numbers customers from here


# A benchmark shop has no sign-offs: its promotion overrides the gate, recorded as such.
FORCE = ["--force", "--reason", "benchmark shop: no sign-offs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=256, help="distinct request bodies")
    parser.add_argument(
        "--trees", type=int, default=None, help="model.params.n_estimators (default: taxiway's)"
    )
    parser.add_argument("--out", type=Path, default=None, help="the project's folder")
    parser.add_argument("--redis", help="a Redis URL: the online store in Redis, not SQLite")
    args = parser.parse_args(argv)
    shop: Path = args.out or (SHOP.with_name("shop-redis") if args.redis else SHOP)
    if args.redis:
        os.environ["REDIS_URL"] = args.redis
    from taxiway.cli import main as taxiway

    spec = shop / "taxiway.yaml"
    if not (shop / "built").exists():
        shutil.rmtree(shop, ignore_errors=True)
        shop.mkdir(parents=True)
        loaded = importlib.util.spec_from_file_location("retail_sim", EXAMPLE / "simulate.py")
        assert loaded is not None
        assert loaded.loader is not None
        module = importlib.util.module_from_spec(loaded)
        sys.modules["retail_sim"] = module  # its dataclasses look their module up
        loaded.loader.exec_module(module)
        module.simulate(shop / "data", customers=args.customers)
        text = (EXAMPLE / "taxiway.yaml").read_text()
        if args.trees:
            text = text.replace(
                "\nmodel:\n", f"\nmodel:\n  params: {{n_estimators: {args.trees}}}\n"
            )
        if args.redis:
            store = (  # block style: `${...}` is not valid inside a YAML flow mapping
                "online_store:\n  kind: redis\n  url: ${REDIS_URL}\n"
                f"  prefix: 'bench:{shop.name}'\n"
            )
            text = text.replace("\nspine:\n", f"\n{store}\n\nspine:\n", 1)
        spec.write_text(text)
        shutil.copytree(EXAMPLE / "contracts", shop / "contracts")
        for step in (
            ["train", "-f", str(spec), "--json"],
            ["models", "promote", "1", "-f", str(spec), *FORCE],
            ["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"],
        ):
            if taxiway(step) != 0:
                print(f"taxiway {' '.join(step)} failed", file=sys.stderr)
                return 1
        (shop / "built").write_text("")
    step = max(args.customers // args.requests, 1)
    keys = [FIRST_CUSTOMER + i * step for i in range(min(args.requests, args.customers))]
    bodies = shop / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"entities": {"customer": str(k)}}) + "\n" for k in keys))
    print(f"--taxiway-spec {spec} --taxiway-bodies {bodies}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
