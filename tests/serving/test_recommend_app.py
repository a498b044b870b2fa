"""POST /v1/recommend over HTTP: answers, 4xx for every bad request, outcomes joined to the
impressions they follow, shedding, the OpenAPI document, and a real `taxiway serve`."""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.serving.conftest import promote, serving
from tests.serving.recommend_world import NOW, copy_world

from taxiway.serving.log import PredictionLog
from taxiway.serving.recommend_app import build_recommend_app
from taxiway.serving.recommend_log import IMPRESSION_COLUMNS, join_impressions
from taxiway.serving.recommend_service import RecommendService
from taxiway.spec.project import Project


class Client:
    """A synchronous client of the app in process, on its own event loop; the app's lifespan
    (the service's start and stop) runs around it, as a server would."""

    def __init__(self, service: RecommendService) -> None:
        self.service = service
        self.app = build_recommend_app(service)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(service.start())
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://test",
        )
        self.closed = False

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.post(path, **kwargs))

    def get(self, path: str) -> httpx.Response:
        return self.loop.run_until_complete(self.http.get(path))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.run_until_complete(self.http.aclose())
            self.loop.run_until_complete(self.service.stop())
            self.loop.close()


@pytest.fixture
def project(trained_world: Path, tmp_path: Path) -> Project:
    return copy_world(trained_world, tmp_path)


@pytest.fixture
def client(project: Project) -> Iterator[Client]:
    client = Client(RecommendService(project, clock=lambda: NOW, reload_interval_s=0))
    try:
        yield client
    finally:
        client.close()


def test_a_recommendation_answers_with_the_list_and_how_it_was_made(client: Client) -> None:
    answer = client.post("/v1/recommend", json={"user": "5", "k": 4}).json()
    assert [i["position"] for i in answer["items"]] == [1, 2, 3, 4]
    assert {"item", "score", "stage", "position"} == set(answer["items"][0])
    assert (answer["path"], answer["degraded"], answer["arm"]) == ("model", False, "control")
    assert answer["model_version"] == 1
    assert len(answer["request_id"]) == 32
    # an integer id is the same user (ids are str() of the source's values)
    again = client.post("/v1/recommend", json={"user": 5, "k": 4}).json()
    assert again["items"] == answer["items"]
    default = client.post("/v1/recommend", json={"user": "5"}).json()
    assert len(default["items"]) == 5  # recommend.k


def test_an_unknown_user_is_not_an_error(client: Client) -> None:
    response = client.post("/v1/recommend", json={"user": "never-seen", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["path"] == "fallback:popularity"
    assert body["reason"] == "no history: an unknown user"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "user"),
        ({"k": 5}, "user"),
        ({"user": ""}, "user"),
        ({"user": ["a"]}, "user"),
        ({"user": True}, "user"),
        ({"user": 1.5}, "user"),
        ({"user": "1", "k": 0}, "k"),
        ({"user": "1", "k": -3}, "k"),
        ({"user": "1", "k": 10_000}, "k"),
        ({"user": "1", "k": "5"}, "k"),
        ({"user": "1", "k": True}, "k"),
        ({"user": "1", "k": 2.5}, "k"),
        ({"user": "1", "context": []}, "context"),
        ({"user": "1", "context": {"recent_items": "i1"}}, "context"),
        ({"user": "1", "context": {"recent_items": [{}]}}, "context"),
        ({"user": "1", "context": {"device": "phone"}}, "context"),
        ({"user": "1", "limit": 5}, "limit"),
        ([{"user": "1"}], "body"),
    ],
)
def test_a_bad_request_is_a_422_naming_the_field(client: Client, body: Any, field: str) -> None:
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert field in {problem["loc"][0] for problem in detail}
    assert all(problem["msg"] for problem in detail)


def test_a_body_that_is_not_json_or_too_large_is_a_4xx(client: Client) -> None:
    response = client.post("/v1/recommend", content=b"{not json")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    response = client.post("/v1/recommend", content=b" " * (2 << 20))
    assert response.status_code == 413
    assert client.get("/v1/recommend").status_code == 405
    assert client.get("/nowhere").json()["error"].startswith("no such path")


def test_outcomes_join_the_impressions_they_follow(client: Client, project: Project) -> None:
    first = client.post("/v1/recommend", json={"user": "8", "k": 3}).json()
    second = client.post("/v1/recommend", json={"user": "9", "k": 3}).json()
    clicked = first["items"][1]["item"]
    bought = second["items"][0]["item"]
    posts = [
        {"request_id": first["request_id"], "item": clicked, "name": "click", "value": 1},
        {"request_id": first["request_id"], "item": clicked, "name": "click", "value": True},
        {"request_id": second["request_id"], "item": bought, "name": "purchase", "value": 12.5},
        # not an impression: an item the request did not show, and a request-level outcome
        {"request_id": second["request_id"], "item": "i59x", "name": "click", "value": 1},
        {"request_id": second["request_id"], "name": "click", "value": 1},
        {"unit": "9", "name": "purchase", "value": 3, "timestamp": "2025-03-03T00:00:00+00:00"},
    ]
    for post in posts:
        response = client.post("/v1/outcomes", json=post)
        assert response.status_code == 200, response.text
    bad = client.post(
        "/v1/outcomes", json={"request_id": "r", "item": ["x"], "name": "click", "value": 1}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["item"]
    assert (
        client.post("/v1/outcomes", json={"item": "i1", "name": "c", "value": 1}).status_code == 422
    )
    client.close()  # the lifespan's end closes the logs
    table = join_impressions(project.state_dir / "predictions", project.state_dir / "outcomes")
    rows = table.to_pylist()
    assert len(rows) == 6  # one per item shown
    assert table.schema.names == [*IMPRESSION_COLUMNS.names, "outcome_click", "outcome_purchase"]
    values = {
        (r["request_id"], r["item"]): (r["outcome_click"], r["outcome_purchase"]) for r in rows
    }
    assert values[(first["request_id"], clicked)] == (2.0, None)
    assert values[(second["request_id"], bought)] == (None, 12.5)
    assert sum(v != (None, None) for v in values.values()) == 2
    positions = {(r["request_id"], r["item"]): r["position"] for r in rows}
    assert positions[(first["request_id"], clicked)] == 2


@settings(max_examples=40, deadline=None)
@given(
    lists=st.lists(
        st.lists(st.sampled_from([f"i{n}" for n in range(8)]), min_size=0, max_size=5, unique=True),
        min_size=1,
        max_size=6,
    ),
    posts=st.lists(
        st.tuples(
            st.integers(0, 7),  # request (beyond the lists: an unknown request id)
            st.sampled_from([f"i{n}" for n in range(9)] + [None]),
            st.sampled_from(["click", "purchase"]),
            st.one_of(st.booleans(), st.integers(-3, 3), st.floats(-5, 5, allow_nan=False)),
        ),
        max_size=25,
    ),
)
def test_join_impressions_equals_a_scan_of_every_pair(
    lists: list[list[str]], posts: list[tuple[int, str | None, str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shown_log, outcome_log = Path(tmp) / "predictions", Path(tmp) / "outcomes"
        with PredictionLog(shown_log, worker="w") as log:
            for n, items in enumerate(lists):
                log.append_sync(
                    {
                        "request_id": f"r{n}",
                        "ts": f"2025-01-01T00:00:{n:02d}",
                        "unit": f"u{n}",
                        "arm": "control",
                        "model_version": 1,
                        "path": "model",
                        "degraded": False,
                        "items": [
                            {"item": item, "position": p, "score": 1.0 / p, "stage": "ease"}
                            for p, item in enumerate(items, start=1)
                        ],
                    }
                )
        expected: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        with PredictionLog(outcome_log, worker="w") as log:
            for request, item, name, value in posts:
                log.append_sync(
                    {"request_id": f"r{request}", "item": item, "name": name, "value": value}
                )
                if request < len(lists) and item in lists[request]:
                    cell = expected[(f"r{request}", item)]
                    cell[name] = cell.get(name, 0.0) + float(value)
        table = join_impressions(shown_log, outcome_log)
    rows = table.to_pylist()
    assert [(r["request_id"], r["item"], r["position"]) for r in rows] == [
        (f"r{n}", item, p) for n, items in enumerate(lists) for p, item in enumerate(items, 1)
    ]
    # an outcome without an item joins to no impression: its name gets no column of its own
    names = {name for _, item, name, _ in posts if item is not None}
    for row in rows:
        want = expected.get((row["request_id"], row["item"]), {})
        for name in names:
            got = row[f"outcome_{name}"]
            if name in want:
                assert got == pytest.approx(want[name])
            else:
                assert got is None


def test_join_impressions_of_empty_folders(tmp_path: Path) -> None:
    assert join_impressions(tmp_path / "a", tmp_path / "b").num_rows == 0


def test_over_max_in_flight_is_shed_with_429(trained_world: Path, tmp_path: Path) -> None:
    project = copy_world(trained_world, tmp_path, serving="serving:\n  max_in_flight: 1\n")
    client = Client(RecommendService(project, clock=lambda: NOW, reload_interval_s=0))
    app: Any = client.app
    try:
        app.in_flight = 1  # one request being answered
        response = client.post("/v1/recommend", json={"user": "1"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        app.in_flight = 0
        assert client.post("/v1/recommend", json={"user": "1"}).status_code == 200
        assert b"taxiway_shed_requests_total 1.0" in client.get("/metrics").content
    finally:
        client.close()


def test_health_metrics_and_openapi(client: Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready").json()
    assert ready["ready"] is True
    assert "newest registered (none promoted)" in ready["detail"]
    client.post("/v1/recommend", json={"user": "never-seen"})
    metrics = client.get("/metrics").text
    assert 'taxiway_fallbacks_total{reason="no_history",which="popularity"} 1.0' in metrics
    assert 'taxiway_model_version{name="shop-recs"} 1.0' in metrics
    document = client.get("/openapi.json").json()
    post = document["paths"]["/v1/recommend"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["user"]
    assert schema["properties"]["k"]["maximum"] == 200  # the segment stage training added
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["path"]["enum"] == [
        "model",
        "fallback:itemknn",
        "fallback:segment_popularity",
        "fallback:popularity",
    ]
    assert (
        "item"
        in document["paths"]["/v1/outcomes"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_taxiway_serve_answers_recommendations(
    trained_world: Path, tmp_path: Path, workers: int
) -> None:
    copied = copy_world(trained_world, tmp_path)
    copied.state_dir.rename(copied.spec_path.parent / ".taxiway")  # where `taxiway serve` looks
    project = Project.load(copied.spec_path)
    if workers == 2:  # one worker serves before any promotion: the newest registered version
        promote(project.spec_path, 1)
    with serving(project.spec_path, "--workers", str(workers)) as server, server.client() as http:
        ready = http.get("/v2/health/ready").json()
        assert ("(production)" if workers == 2 else "none promoted") in ready["detail"]
        answers = [http.post("/v1/recommend", json={"user": str(u), "k": 5}) for u in range(6)]
        assert all(a.status_code == 200 for a in answers)
        assert all(len(a.json()["items"]) == 5 for a in answers)
        first = answers[0].json()
        posted = http.post(
            "/v1/outcomes",
            json={
                "request_id": first["request_id"],
                "item": first["items"][0]["item"],
                "name": "click",
                "value": 1,
            },
        )
        assert posted.status_code == 200
        assert http.post("/v1/recommend", json={"user": "1", "k": 0}).status_code == 422
    # acknowledged answers are in the log once the server has stopped
    table = join_impressions(project.state_dir / "predictions", project.state_dir / "outcomes")
    assert table.num_rows == 30
    assert table.to_pylist()[0]["outcome_click"] in (1.0, None)
    assert sum(r["outcome_click"] or 0 for r in table.to_pylist()) == 1.0
