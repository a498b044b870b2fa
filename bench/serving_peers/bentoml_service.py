"""The same LightGBM model as a BentoML service, written the way BentoML's guides write one.

    bentoml serve bentoml_service:Scorer --host 127.0.0.1 --port 3000
    POST /predict  {"features": [20 numbers]}  ->  {"score": p}     GET /readyz

``BENCH_MODEL`` names the LightGBM text model; ``BENCH_WORKERS`` the number of workers.
"""

from __future__ import annotations

import os

import bentoml
import lightgbm
import numpy as np


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")))
class Scorer:
    def __init__(self) -> None:
        self.booster = lightgbm.Booster(model_file=os.environ["BENCH_MODEL"])

    @bentoml.api
    def predict(self, features: list[float]) -> dict[str, float]:
        row = np.asarray(features, dtype=np.float64).reshape(1, -1)
        return {"score": float(self.booster.predict(row)[0])}
