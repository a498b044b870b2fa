"""The keys that pick a view or spine kind are read from spec/models.py, not listed twice."""

from __future__ import annotations

import pytest

from taxiway.errors import SpecError
from taxiway.spec.loader import load_spec_text
from taxiway.spec.yaml import IDENTIFYING_KEYS

SPEC = (
    "name: demo\nentities: {customer: customer_id}\n"
    "sources: {orders: {kind: file, path: orders.parquet, timestamp: at}}\n"
    "features: {last: {source: orders, entity: customer, latest: [amount], tll: 3h}}\n"
)


def test_the_identifying_keys_are_those_the_discriminators_read() -> None:
    assert {"aggregate", "latest", "static", "every"} == IDENTIFYING_KEYS


def test_a_typo_in_a_latest_view_is_matched_against_the_latest_views_keys() -> None:
    # ttl belongs to the latest view alone: the view is recognised by its `latest:` key
    with pytest.raises(SpecError) as caught:
        load_spec_text(SPEC, "taxiway.yaml")
    [issue] = caught.value.issues
    assert issue.path == "features.last.tll"
    assert issue.suggestion == "did you mean `ttl`?"
