"""An implicit ALS recommender as a BentoML service, written the way BentoML's guides and
implicit's README write one: the model's ``recommend`` for the user's row, with the items the
user already has filtered (``filter_already_liked_items=True``) and the unavailable and denied
items filtered with ``filter_items=``.

    bentoml serve bentoml_recommend:Recommender --host 127.0.0.1 --port 3000
    POST /recommend  {"user": "u000017", "k": 10, "context": {}}
        ->  {"items": [{"item": "p001234", "position": 1, "score": 0.81}, ...]}
    GET /readyz

``BENCH_PEER_MODEL`` names the npz bench/recommend_serve.py exports from taxiway's fitted ALS
stage (``item_factors``; ``users`` and ``items``, the ids; every user's history row as CSR
``indptr``/``indices``/``data``; ``banned``, the item numbers out of stock or denied) and
``BENCH_ALS`` the ALS parameters as JSON; ``BENCH_WORKERS`` the number of workers. The user's
vector is recomputed from their row (``recalculate_user=True``), as taxiway's ALS does, and
every item is scored (implicit's exact top-k).
"""

from __future__ import annotations

import json
import os
from typing import Any

import bentoml
import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")))
class Recommender:
    def __init__(self) -> None:
        arrays = np.load(os.environ["BENCH_PEER_MODEL"], allow_pickle=False)
        self.items = arrays["items"]
        self.user_rows = {str(u): n for n, u in enumerate(arrays["users"].tolist())}
        self.history = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]),
            shape=(arrays["users"].size, arrays["items"].size),
        )
        self.banned = arrays["banned"]
        params = json.loads(os.environ["BENCH_ALS"])
        with threadpool_limits(1):  # implicit warns when BLAS has a thread pool of its own
            self.model = AlternatingLeastSquares(**params, num_threads=1, random_state=0)
        self.model.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)

    @bentoml.api
    def recommend(
        self, user: str, k: int = 10, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        row = self.user_rows.get(user)
        if row is None:  # a user unknown to the model: nothing to personalise from
            return {"items": [], "user": user}
        ids, scores = self.model.recommend(
            row,
            self.history[row],
            N=k,
            filter_already_liked_items=True,
            filter_items=self.banned,
            recalculate_user=True,
        )
        return {
            "items": [
                {"item": str(self.items[i]), "position": n, "score": float(s)}
                for n, (i, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True), start=1)
            ],
            "user": user,
        }
