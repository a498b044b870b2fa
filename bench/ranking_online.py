"""The ranking stage's cost of reading its feature views online, per request.

The world is tests/recommend/test_ranking_online.py's (200 users, 80 items, ItemKNN k=20 and
popularity k=20 retrieving, LightGBM lambdarank over promo, profile and activity views, k=10),
trained as of its serving time. The service's model call, ``Recommender.recommend([user],
at)``, is timed per request in three ways, interleaved user by user so the machine's load falls
on all alike:

- ``snapshot``: the views from the snapshot training took (no store read; what serving did
  before the online store);
- ``sqlite``: from the SQLite online store (materialized at the serving time);
- ``redis``: from Redis on 127.0.0.1:6379 (the same values; left out when Redis is down).

Every list must be the same in the three ways (the store holds the snapshot's values): the
script stops otherwise. Usage::

    .venv/bin/python bench/ranking_online.py --requests 2000 --wait-idle 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

from toolkit import (
    HERE,
    ROOT,
    OtherLoad,
    append_record,
    code_state,
    latency_summary,
    machine,
    markdown_table,
    versions,
    wait_idle,
)

RESULTS = HERE / ".data" / "ranking-online" / "results.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per way")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="wait for a quiet machine")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # the test world lives with its tests
    from tests.recommend.test_ranking_online import SERVE, _project

    from taxiway.features.materialize import materialize
    from taxiway.features.online.sqlite import SqliteStore
    from taxiway.recommend.audit.context import recommender_folder
    from taxiway.recommend.pipeline import Recommender
    from taxiway.recommend.ranking_online import attach_online_features
    from taxiway.recommend.training import train_recommender

    with tempfile.TemporaryDirectory() as folder:
        project = _project(Path(folder))
        version = train_recommender(project, as_of=SERVE).version
        artifact = recommender_folder(version)
        ways: dict[str, Any] = {"snapshot": Recommender.load(artifact)}
        stores: list[Any] = [SqliteStore(Path(folder) / "online.sqlite")]
        try:
            from taxiway.features.online.redis import RedisStore

            redis = RedisStore("redis://127.0.0.1:6379/0", f"tw-bench:{uuid4().hex}", 2_000)
            redis.read("customer", ["0"])
            stores.append(redis)
        except Exception as error:  # Redis is optional here: the figure says it was left out
            print(f"  Redis left out: {error}")
        for store in stores:
            materialize(project, store, as_of=SERVE, full=True)  # each store from scratch
            recommender = Recommender.load(artifact)
            attach_online_features(project, recommender.ranker, store)
            ways["sqlite" if isinstance(store, SqliteStore) else "redis"] = recommender
        users = [str(u) for u in ways["snapshot"].users.tolist()]
        idle = wait_idle(args.wait_idle, say=print)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for recommender in ways.values():  # warm: first calls build caches
            recommender.recommend(users[:5], SERVE)
        load = OtherLoad()
        for n in range(args.requests):
            user = [users[n % len(users)]]
            lists = []
            for name, recommender in ways.items():
                began = time.perf_counter()
                lists.append(recommender.recommend(user, SERVE)[0])
                times[name].append((time.perf_counter() - began) * 1000)
            if any(got != lists[0] for got in lists[1:]):
                raise SystemExit(f"the lists of user {user[0]} differ between {list(ways)}")
        others = load.cores()
        for store in stores:
            store.clear()
            store.close()
    summaries = {name: latency_summary(values) for name, values in times.items()}
    rows = [
        [name, f"{s['p50']:.3f}", f"{s['p99']:.3f}", f"{s['mean']:.3f}", str(int(s["calls"]))]
        for name, s in summaries.items()
    ]
    print(f"{idle}; during the run others used {others:.2f} cores")
    print(markdown_table(["features from", "p50 ms", "p99 ms", "mean ms", "requests"], rows))
    append_record(
        RESULTS,
        {
            "code": code_state(),
            "versions": versions("lightgbm", "numpy", "redis"),
            "idle": str(idle),
            "other_cores": round(others, 2),
            "ms": summaries,
        },
        machine_line=machine(),
    )


if __name__ == "__main__":
    main()
