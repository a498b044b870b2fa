"""governance.opt_out at serving, through a real `taxiway serve`: an opted-out unit gets the
control answer (``path: opt_out``), the model never scores it, and a changed list is followed
without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from taxiway.serving.log import read_predictions

from .conftest import Server, serving, variant

LISTED = ["100017", "100042"]


def _write_list(path: Path, keys: list[str]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(["customer_id", *keys]) + "\n")
    temporary.replace(path)  # the service never reads a half-written list


@pytest.fixture(scope="module")
def opted(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("opt-out")
    text = shop.read_text().replace(
        "\nsources:\n", "\nsources:\n  opted_out:\n    kind: file\n    path: opted_out.csv\n", 1
    )
    text = text.replace(
        "\ngovernance:\n", "\ngovernance:\n  opt_out: {source: opted_out, refresh: 1s}\n", 1
    )
    _write_list(folder / "opted_out.csv", LISTED)
    logs = folder / "predictions"
    spec = variant(shop, folder, text, serving=f"  log:\n    path: {logs}\n")
    state = str(shop.parent / ".taxiway")  # the shop's model and store; the log of its own
    with serving(spec, "--state-dir", state) as server:
        yield server, folder


def _baseline(shop: Path, customer: str) -> float:
    from taxiway.features.lookup import lookup
    from taxiway.features.online import open_online_store
    from taxiway.models.artifact import load_model
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(shop)
    store = open_online_store(None, state_dir=project.state_dir, namespace=project.spec.name)
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        model = load_model(registry.get("retail_churn", 1).artifact_dir)
        values = lookup(project.spec, store, "customer", [customer])[0].values()
    finally:
        store.close()
        registry.close()
    return model.baseline_one(values)


def _ask(server: Server, customer: str | int, **extra: object) -> dict[str, object]:
    with server.client() as client:
        response = client.post("/v1/predict", json={"entities": {"customer": customer}, **extra})
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_an_opted_out_unit_gets_the_control_answer_never_the_models(
    opted: tuple[Server, Path], shop: Path
) -> None:
    server, _ = opted
    for customer in ("100017", 100042):  # a key as text or as a number: one unit
        answer = _ask(server, customer, explain=True)
        assert answer["path"] == "opt_out"
        assert answer["arm"] == "opt_out"  # a rollout counts it in neither arm
        assert answer["model_version"] is None
        assert answer["degraded"] is False
        assert answer["explanation"] is None
        assert answer["prediction"] == pytest.approx(_baseline(shop, str(customer)), abs=1e-12)
    other = _ask(server, "100101")
    assert (other["path"], other["model_version"]) == ("model", 1)


def test_the_log_marks_the_opted_out_answers(opted: tuple[Server, Path]) -> None:
    server, folder = opted
    asked = _ask(server, "100017")["request_id"]
    con = duckdb.connect()
    read_predictions(con, folder / "predictions")
    rows = con.execute(
        "SELECT path, arm, model_version FROM predictions WHERE request_id = ?", [asked]
    ).fetchall()
    assert rows == [("opt_out", "opt_out", None)]


def _until(server: Server, customer: str, path: str, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        answer = _ask(server, customer)
        if answer["path"] == path or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_changed_list_is_followed_without_a_restart(opted: tuple[Server, Path]) -> None:
    server, folder = opted
    assert _ask(server, "100250")["path"] == "model"
    _write_list(folder / "opted_out.csv", [*LISTED, "100250"])
    assert _until(server, "100250", "opt_out")["path"] == "opt_out"
    _write_list(folder / "opted_out.csv", LISTED[1:])  # 100017 and 100250 opt back in
    assert _until(server, "100017", "model")["path"] == "model"
    assert _ask(server, "100250")["path"] == "model"
    assert _ask(server, "100042")["path"] == "opt_out"
    assert server.process.poll() is None  # the same process throughout: no restart


def test_a_service_whose_list_cannot_be_read_does_not_start(shop: Path, tmp_path: Path) -> None:
    text = shop.read_text().replace(
        "\nsources:\n", "\nsources:\n  opted_out:\n    kind: file\n    path: missing.csv\n", 1
    )
    text = text.replace("\ngovernance:\n", "\ngovernance:\n  opt_out: {source: opted_out}\n", 1)
    spec = variant(shop, tmp_path, text, serving=f"  log:\n    path: {tmp_path / 'logs'}\n")
    with (
        pytest.raises(AssertionError, match="opt-out list cannot be read"),
        serving(spec, "--state-dir", str(shop.parent / ".taxiway"), ready_timeout=30),
    ):
        pass


def test_a_rollout_counts_opted_out_answers_in_neither_arm(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.rollout.traffic import answer, write

    from taxiway.rollout.units import update_units
    from taxiway.serving.predictor import OPT_OUT

    start = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    write(
        tmp_path / "predictions",
        [
            answer(start + timedelta(minutes=1), "u1", "control", version=1),
            answer(start + timedelta(minutes=2), "u2", "candidate", version=2),
            answer(start + timedelta(minutes=3), "u3", OPT_OUT, version=None, path=OPT_OUT),
        ],
    )
    state = update_units(
        tmp_path / "rollout" / "1",
        tmp_path / "predictions",
        salt="s1",
        started_at=start,
        boundaries=[(start, 0)],
        names=["churned"],
        latency_limit_ms=50.0,
    )
    assert (state.arms["control"].answers, state.arms["candidate"].answers) == (1, 1)
    assert state.arms["candidate"].fallbacks == 0
    assert sorted(state.units.unit.to_pylist()) == ["u1", "u2"]
