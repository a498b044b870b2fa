"""spec/yaml.py: the union tags pydantic puts into error locations come from spec/models.py."""

from __future__ import annotations

import pytest
from tests.spec.test_loader import GOOD

from taxiway.errors import SpecError
from taxiway.spec.loader import load_spec_text
from taxiway.spec.yaml import UNION_TAGS


def test_every_kind_of_every_tagged_union_in_the_spec_is_a_union_tag() -> None:
    kinds = {"file", "duckdb", "postgres"}  # sources
    kinds |= {"aggregate", "latest", "static"}  # feature views
    kinds |= {"periodic", "event"}  # spines
    kinds |= {"any_event", "no_event", "count", "sum", "column"}  # labels
    kinds |= {"sqlite", "redis"}  # online stores and registries
    assert kinds <= UNION_TAGS


@pytest.mark.parametrize(
    ("section", "path"),
    [
        (
            "online_store: {kind: redis, url: redis://127.0.0.1:6379/0, prefx: tw}\n",
            "online_store.prefx",
        ),
        ("registry: {kind: sqlite, pathh: registry.db}\n", "registry.pathh"),
    ],
)
def test_an_unknown_key_under_a_tagged_union_is_named_by_its_path_in_the_file(
    section: str, path: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(GOOD + section, "taxiway.yaml")
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.suggestion is not None
