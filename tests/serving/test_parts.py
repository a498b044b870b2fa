"""The service's parts on their own: input contract, breaker, fallback chain, API keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.errors import ServingError
from taxiway.serving.auth import load_keys
from taxiway.serving.breaker import CircuitBreaker
from taxiway.serving.fallback import Step, parse_chain
from taxiway.serving.inputs import FieldRule, InputContract, RequestError
from taxiway.spec.models import AuthSpec

CONTRACT = InputContract(
    entities={"customer": ("customer_id",), "store_product": ("store_id", "product_id")},
    fields={
        "distance": FieldRule("distance", "numeric", minimum=17, maximum=4983),
        "dest": FieldRule("dest", "categorical", allowed=("BOS", "LAX")),
        "member": FieldRule("member", "boolean"),
    },
)


def test_a_valid_item_is_parsed_and_flagged_out_of_range() -> None:
    parsed = CONTRACT.parse(
        {
            "entities": {"customer": 7, "store_product": {"store_id": 1, "product_id": "x"}},
            "features": {"distance": 9000, "dest": "SFO", "member": True},
            "unit": "u-1",
        }
    )
    assert parsed.keys == {"customer": "7", "store_product": "1|x"}
    assert parsed.values == {"distance": 9000, "dest": "SFO", "member": True}
    assert sorted(parsed.out_of_range) == ["dest", "distance"]
    assert parsed.unit == "u-1"


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        ({"dest": 5}, ("features.dest", "expected a string")),
        ({"dest": True}, ("features.dest", "expected a string")),
        ({"distance": "1400"}, ("features.distance", "expected a number")),
        ({"member": "yes"}, ("features.member", "expected true or false")),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_never_converted(
    features: dict[str, object], problem: tuple[str, str]
) -> None:
    item = {"entities": {"customer": 7, "store_product": {"store_id": 1, "product_id": 2}}}
    with pytest.raises(RequestError) as error:
        CONTRACT.parse({**item, "features": features})
    assert error.value.problems == [problem]


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(RequestError) as error:
        CONTRACT.parse(
            {
                "entities": {"customer": True, "store_product": {"store_id": 1}},
                "features": {"distance": "far", "member": 1, "colour": "red"},
            }
        )
    located = dict(error.value.problems)
    assert set(located) == {
        "entities.customer",
        "entities.store_product",
        "features.distance",
        "features.member",
        "features.colour",
    }
    assert located["entities.store_product"] == "missing key column product_id"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_value_is_parsed_or_refused_never_crashes(value: object) -> None:
    try:
        CONTRACT.parse(value)
    except RequestError as error:
        problems = error.problems
    else:
        problems = [("", "parsed")]
    assert problems


@given(st.lists(st.booleans(), max_size=60))
def test_the_breaker_opens_after_consecutive_failures_only(outcomes: list[bool]) -> None:
    breaker = CircuitBreaker("x", failures=3, reset_after_s=1e9)
    streak = 0
    for ok in outcomes:
        state = breaker.state  # a local: mypy keeps narrowing breaker.state past failure()
        if state == "open":
            assert not breaker.allow()
            break
        assert breaker.allow()
        if ok:
            breaker.success()
            streak = 0
        else:
            breaker.failure()
            streak += 1
        assert (breaker.state == "open") == (streak >= 3)


def test_a_failed_probe_reopens_the_breaker() -> None:
    now = [0.0]
    breaker = CircuitBreaker("x", failures=1, reset_after_s=5, clock=lambda: now[0])
    breaker.failure()
    now[0] = 6
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_count == 2


def test_fallback_chain() -> None:
    assert parse_chain("baseline") == [Step("baseline")]
    assert [s.label for s in parse_chain(["previous", "0.25"])] == ["previous", "constant:0.25"]
    with pytest.raises(ServingError, match="unknown fallback `zero`"):
        parse_chain(["zero"])


def test_keys_from_a_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\nabcdefghijklmnop-1 predict\n")
    monkeypatch.setenv("ADMIN_KEY", "zyxwvutsrqponmlk-admin")
    keys = load_keys(AuthSpec(keys_file=str(path), key_env="ADMIN_KEY"))
    assert keys.roles_of("abcdefghijklmnop-1") == {"predict"}
    assert keys.roles_of("zyxwvutsrqponmlk-admin") == {"predict", "outcomes", "admin"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short predict\n", "at least 16 characters"),
        ("abcdefghijklmnop-1 predict,root\n", "unknown role root"),
        ("abcdefghijklmnop-1\n", "expected `<key> <role>"),
    ],
)
def test_bad_key_files_name_the_line_and_never_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ServingError, match=message) as error:
        load_keys(AuthSpec(keys_file=str(path)))
    assert f"{path}:1" in str(error.value)
    assert "abcdefghijklmnop" not in str(error.value)


def test_pii_columns_come_from_the_contracts(shop: Path) -> None:
    from taxiway.serving.service import _pii_columns
    from taxiway.spec.project import Project

    assert "email" in _pii_columns(Project.load(shop))  # customers.yaml: classification pii
