"""The smallest honest prediction endpoint: Starlette + orjson + one LightGBM row per request.

The server stacks of bench/serving.py (uvicorn, granian...) all serve this same app, so the
differences they show are the server's. ``BENCH_MODEL`` names the LightGBM text model.

    POST /predict  {"features": [20 numbers]}  ->  {"score": p}
    GET  /ready                                 ->  {"ready": true}
"""

from __future__ import annotations

import os

import lightgbm
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BOOSTER = lightgbm.Booster(model_file=os.environ["BENCH_MODEL"])
WIDTH = BOOSTER.num_feature()


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def predict(request: Request) -> Response:
    try:
        features = orjson.loads(await request.body())["features"]
        row = np.asarray(features, dtype=np.float64).reshape(1, WIDTH)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        return _json({"error": str(error)}, 422)
    # num_threads=1: one row needs no OpenMP team, and idle team threads would spin on the
    # core the other worker needs
    return _json({"score": float(BOOSTER.predict(row, num_threads=1)[0])})


async def ready(_: Request) -> Response:
    return _json({"ready": True})


app = Starlette(
    routes=[Route("/predict", predict, methods=["POST"]), Route("/ready", ready, methods=["GET"])]
)
