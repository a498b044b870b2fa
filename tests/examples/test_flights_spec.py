"""examples/flights/taxiway.yaml says in its comments what its baseline is, and it is the one
the spec pins (`model.baseline_feature`), which is also the service's fallback."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

SPEC = Path(__file__).resolve().parents[2] / "examples" / "flights" / "taxiway.yaml"


def _comment_above(lines: list[str], key: str) -> str:
    """The comment lines right above the line that sets ``key``, joined."""
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    above: list[str] = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        above.insert(0, line.strip().lstrip("#").strip())
    return " ".join(above)


def test_the_baseline_comment_names_the_pinned_rule_and_the_prior_it_must_beat() -> None:
    text = SPEC.read_text()
    feature = YAML(typ="safe").load(text)["model"]["baseline_feature"]
    comment = _comment_above(text.splitlines(), "baseline_feature")
    assert feature in comment
    assert "prior" in comment  # a pinned rule is kept only if it beats the prior


def test_the_fallback_comment_describes_that_rule() -> None:
    spec = YAML(typ="safe").load(SPEC.read_text())
    assert spec["serving"]["fallback"] == "baseline"
    (line,) = [x for x in SPEC.read_text().splitlines() if x.strip().startswith("fallback:")]
    note = line.partition("#")[2]
    # the rule bins the carrier's recent average delay; it is not a share of the carrier's
    # recent flights that were delayed (the comment said so before)
    assert "rule" in note
    assert "recent share of delayed flights" not in note
