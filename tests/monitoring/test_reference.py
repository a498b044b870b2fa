"""The stored reference: the contract's dict, JSON round trip, statistic choice, refusals."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from taxiway.errors import MonitoringError
from taxiway.monitoring.calibration import SIZES
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile
from taxiway.monitoring.reference import OUTPUT, build_reference, load_reference
from taxiway.monitoring.statistics import Kind

ROWS = 5_000


def training() -> tuple[
    dict[str, npt.NDArray[np.generic]], dict[str, Kind], npt.NDArray[np.float64]
]:
    rng = np.random.default_rng(0)
    amount = rng.lognormal(3.0, 1.0, ROWS)
    amount[::50] = np.nan
    city = rng.choice(np.array(["paris", "lyon", "nice", None], dtype=object), ROWS)
    columns = {"amount": amount, "age": rng.normal(40, 12, ROWS), "city": city}
    kinds: dict[str, Kind] = {"amount": "numeric", "age": "numeric", "city": "categorical"}
    return columns, kinds, rng.uniform(size=ROWS)


def test_the_stored_dict_has_the_contract_shape() -> None:
    columns, kinds, output = training()
    stored = build_reference(columns, kinds, output)
    assert stored["format"] == 1
    assert stored["statistic"] == {"numeric": "psi", "categorical": "chi2"}
    assert set(stored["features"]) == {"amount", "age", "city"}
    assert stored["features"]["city"]["kind"] == "categorical"
    assert stored["output"]["kind"] == "numeric"
    assert set(stored["thresholds"]) == {"amount", "age", "city", OUTPUT}
    assert stored["thresholds"]["city"]["statistic"] == "chi2"
    assert list(stored["thresholds"]["age"]["by_size"]) == [str(n) for n in SIZES]
    assert stored["features"]["amount"]["missing"] == ROWS // 50


def test_json_round_trip_gives_the_same_reference() -> None:
    columns, kinds, output = training()
    stored = build_reference(columns, kinds, output)
    reference = load_reference(orjson.loads(orjson.dumps(stored)))
    amount = reference.features["amount"]
    assert isinstance(amount, NumericProfile)
    assert amount.to_dict() == stored["features"]["amount"]
    assert isinstance(reference.features["city"], CategoricalProfile)
    assert reference.profile(OUTPUT) is reference.output
    assert reference.statistic_of("age").name == "psi"
    assert reference.statistic_of("city").name == "chi2"
    assert reference.threshold("age", 200) == stored["thresholds"]["age"]["by_size"]["200"]
    assert reference.threshold("age", 500) < reference.threshold("age", 200)
    with pytest.raises(MonitoringError, match="no feature"):
        reference.profile("height")
    with pytest.raises(MonitoringError, match="no threshold"):
        reference.threshold("height", 10)


@pytest.mark.parametrize(
    ("choice", "numeric", "categorical"),
    [("ks", "ks", "chi2"), ("wasserstein", "wasserstein", "chi2"), ("chi2", "psi", "chi2")],
)
def test_the_spec_choice_applies_where_it_fits(choice: str, numeric: str, categorical: str) -> None:
    columns, kinds, output = training()
    stored = build_reference(columns, kinds, output, statistic=choice, sizes=(200, 10_000))
    assert stored["statistic"] == {"numeric": numeric, "categorical": categorical}
    assert stored["thresholds"]["amount"]["statistic"] == numeric
    assert stored["thresholds"]["city"]["statistic"] == categorical
    assert stored["thresholds"][OUTPUT]["statistic"] == numeric


def test_predicted_labels_are_a_categorical_output() -> None:
    columns, kinds, _ = training()
    labels = np.random.default_rng(1).choice(["yes", "no"], ROWS)
    stored = build_reference(columns, kinds, labels, sizes=(200,))
    assert stored["output"]["kind"] == "categorical"
    assert stored["thresholds"][OUTPUT]["statistic"] == "chi2"


def test_thresholds_do_not_depend_on_the_column_order() -> None:
    columns, kinds, output = training()
    forward = build_reference(columns, kinds, output, sizes=(1_000,))
    backward = build_reference(dict(reversed(columns.items())), kinds, output, sizes=(1_000,))
    assert forward["thresholds"] == backward["thresholds"]


def test_a_column_with_no_known_value_gets_zero_thresholds() -> None:
    stored = build_reference(
        {"empty": np.full(100, np.nan)}, {"empty": "numeric"}, np.zeros(100), sizes=(200,)
    )
    assert stored["thresholds"]["empty"]["by_size"] == {"200": 0.0}
    assert load_reference(stored).features["empty"].known == 0


def test_bad_input_is_refused_with_the_fix() -> None:
    columns, kinds, output = training()
    with pytest.raises(MonitoringError, match="no kind given for column"):
        build_reference(columns, {"age": "numeric"}, output)
    with pytest.raises(MonitoringError, match="one value per row"):
        build_reference(columns, kinds, np.zeros((ROWS, 2)))
    with pytest.raises(MonitoringError, match="numeric or categorical"):
        build_reference({"x": [1.0]}, {"x": "text"}, [1.0])  # type: ignore[dict-item]
    with pytest.raises(MonitoringError, match="format"):
        load_reference({"format": 99})
    stored = build_reference(columns, kinds, output, sizes=(200,))
    del stored["thresholds"]
    with pytest.raises(MonitoringError, match="damaged"):
        load_reference(stored)
