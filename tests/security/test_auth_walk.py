"""Auth on every endpoint of both services but health, metadata and metrics: the OpenAPI
document and the route table walked, with and without a key; keys rotated without a restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from tests.serving.conftest import serving, variant
from tests.serving.recommend_world import copy_world

from taxiway.serving.app import build_app
from taxiway.serving.recommend_app import build_recommend_app
from taxiway.serving.recommend_service import RecommendService
from taxiway.serving.service import Service
from taxiway.spec.project import Project

# The endpoints that answer without a key, each with its reason (docs/security.md).
OPEN = {
    "/v2/health/live": "health",
    "/v2/health/ready": "health",
    "/v2/models/{model_name}/ready": "health",
    "/v2": "metadata",
    "/v2/models/{model_name}": "metadata",
    "/openapi.json": "metadata",
    "/metrics": "metrics",
    "/v1/rollout/verdict": "metrics (the rollout's verdict, read by Flagger's webhook)",
    "/dashboard": "metrics (the monitor's page)",
    "/dashboard/": "metrics (the monitor's page)",
    "/dashboard/data.json": "metrics (the monitor's page)",
    "/dashboard/dashboard.js": "metrics (the page's script)",
    "/dashboard/dashboard.css": "metrics (the page's style)",
}
KEY = "walk-admin-key-0123456789"


class InProcess:
    """The app in process on its own event loop (the service started, as a server would)."""

    def __init__(self, service: Service | RecommendService, app: Any) -> None:
        self.service, self.app = service, app
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(service.start())
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30.0
        )

    def request(self, method: str, path: str, key: str | None = None) -> int:
        headers = {"X-API-Key": key} if key else {}
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        response = self.loop.run_until_complete(
            self.http.request(method, path, headers=headers, content=body)
        )
        return response.status_code

    def openapi(self) -> dict[str, Any]:
        document = self.loop.run_until_complete(self.http.get("/openapi.json"))
        assert document.status_code == 200
        body: dict[str, Any] = document.json()
        return body

    def routes(self) -> list[tuple[str, str]]:
        """Every (path, method) of the app's route table, documented or not."""
        table: list[tuple[str, str]] = []
        for route in self.app.app.routes:
            assert isinstance(route, Route)
            table.extend((route.path, m) for m in sorted(route.methods or ()) if m != "HEAD")
        return table

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.run_until_complete(self.service.stop())
        self.loop.close()


def _concrete(path: str, name: str) -> str:
    return path.replace("{model_name}", name).replace("{source}", "orders")


def _walk(client: InProcess, endpoints: list[tuple[str, str]], name: str) -> list[str]:
    """The endpoints that break the rule: open without being in OPEN, or refusing a valid key."""
    broken: list[str] = []
    for path, method in endpoints:
        target = _concrete(path, name)
        anonymous = client.request(method, target)
        if path in OPEN:
            if anonymous in (401, 403):
                broken.append(f"{method} {path} refuses without a key, but is {OPEN[path]}")
            continue
        if anonymous != 401:
            broken.append(f"{method} {path} answered {anonymous} without a key")
        if client.request(method, target, "wrong-key-0123456789abc") != 401:
            broken.append(f"{method} {path} took a wrong key")
        if client.request(method, target, KEY) in (401, 403):
            broken.append(f"{method} {path} refused the admin key")
    return broken


def _documented(client: InProcess) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = client.openapi()["paths"]
    assert paths, "the OpenAPI document lists no path"
    return [(path, method.upper()) for path, item in paths.items() for method in item]


@pytest.fixture
def prediction(shop: Path, tmp_path: Path) -> Iterator[InProcess]:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} admin\n")
    spec = variant(shop, tmp_path, serving=f"  auth: {{keys_file: {keys}}}\n")
    service = Service(Project.load(spec, shop.parent / ".taxiway"), reload_interval_s=0)
    client = InProcess(service, build_app(service))
    yield client
    client.close()


@pytest.fixture
def recommender(trained_world: Path, tmp_path: Path) -> Iterator[InProcess]:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} admin\n")
    project = copy_world(
        trained_world, tmp_path, serving=f"serving:\n  auth: {{keys_file: {keys}}}\n"
    )
    service = RecommendService(project, reload_interval_s=0)
    client = InProcess(service, build_recommend_app(service))
    yield client
    client.close()


@pytest.mark.slow
def test_every_documented_endpoint_of_the_prediction_service_needs_a_key(
    prediction: InProcess,
) -> None:
    endpoints = _documented(prediction)
    assert ("/v1/predict", "POST") in endpoints
    assert _walk(prediction, endpoints, prediction.service.name) == []


@pytest.mark.slow
def test_every_route_of_the_prediction_service_needs_a_key(prediction: InProcess) -> None:
    endpoints = prediction.routes()
    assert ("/v1/outcomes", "POST") in endpoints
    assert _walk(prediction, endpoints, prediction.service.name) == []


@pytest.mark.slow
def test_every_endpoint_of_the_recommender_needs_a_key(recommender: InProcess) -> None:
    endpoints = sorted(set(_documented(recommender)) | set(recommender.routes()))
    assert ("/v1/recommend", "POST") in endpoints
    assert _walk(recommender, endpoints, recommender.service.name) == []


@pytest.mark.slow
def test_keys_rotate_without_a_restart(shop: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old, new = "rotate-old-key-0123456789", "rotate-new-key-0123456789"
    keys.write_text(f"{old} predict\n")
    spec = variant(shop, tmp_path, serving=f"  auth: {{keys_file: {keys}}}\n")
    body = {"entities": {"customer": "100017"}}
    with (
        serving(spec, "--state-dir", str(shop.parent / ".taxiway")) as server,
        server.client() as client,
    ):

        def status(key: str) -> int:
            return client.post("/v1/predict", json=body, headers={"X-API-Key": key}).status_code

        assert status(old) == 200
        assert status(new) == 401
        staged = tmp_path / "keys.new"
        staged.write_text(f"{new} predict\n")
        os.replace(staged, keys)  # the rotation: a new file renamed over the old
        deadline = time.monotonic() + 10
        while status(new) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status(new) == 200
        assert status(old) == 401
        keys.write_text("not a key line\n")  # a broken file keeps the keys in force
        time.sleep(1.5)
        assert status(new) == 200
        assert server.process.poll() is None  # the process that started: no restart
    output = server.output()
    assert "kept the previous API keys" in output
    assert "0123456789" not in output
