"""Whether a retrained candidate is routine or needs a person again (``retrain.signoff``).

A retrain is *routine* when, compared with the production version (the one the standing
sign-offs cover), the candidate reads no new feature and its feature definitions are the same
(the definitions hash), it was trained on no new source, and its metric on the same validation
rows falls short of production's by at most ``retrain.signoff.max_metric_drop``. Each change the
policy turns off (``on_new_feature: false``, ``on_new_source: false``) is still named, but does
not call a person. Without a production version there is nothing the sign-offs were given for,
so the retrain is never routine.

>>> from taxiway.spec.models import RetrainSignoff
>>> changes = retrain_changes(
...     candidate_features=["a", "b"], production_features=["a"],
...     candidate_sources=["orders"], production_sources=["orders"],
...     candidate_definitions="h1", production_definitions="h1",
...     metric="roc_auc", candidate_score=0.80, production_score=0.81)
>>> decide(RetrainSignoff(max_metric_drop=0.02), changes).reasons
['new features: b']
>>> decide(RetrainSignoff(on_new_feature=False, max_metric_drop=0.02), changes).routine
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taxiway.models.metrics import HIGHER_IS_BETTER
from taxiway.models.registry import ModelVersion
from taxiway.spec.models import RetrainSignoff

__all__ = ["RetrainChanges", "SignoffDecision", "decide", "retrain_changes", "version_changes"]


@dataclass(frozen=True)
class RetrainChanges:
    """What a candidate changes against production (observed, nothing inferred)."""

    new_features: list[str]
    definitions_changed: bool
    new_sources: list[str]
    metric: str | None
    drop: float | None
    """How far the candidate's metric falls short of production's (0 when it is as good or
    better); None when either score is unknown."""
    production: bool = True
    """Whether there is a production version to compare with."""


@dataclass(frozen=True)
class SignoffDecision:
    """``routine`` or not, and each reason a person is needed again."""

    routine: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"routine": self.routine, "reasons": list(self.reasons)}


def retrain_changes(
    *,
    candidate_features: Iterable[str],
    production_features: Iterable[str],
    candidate_sources: Iterable[str],
    production_sources: Iterable[str],
    candidate_definitions: str,
    production_definitions: str,
    metric: str | None,
    candidate_score: float | None,
    production_score: float | None,
) -> RetrainChanges:
    """The changes from production's features, sources, definitions and score."""
    known = set(production_features)
    sources = set(production_sources)
    drop: float | None = None
    if metric is not None and candidate_score is not None and production_score is not None:
        gap = (
            production_score - candidate_score
            if metric in HIGHER_IS_BETTER
            else candidate_score - production_score
        )
        drop = max(0.0, gap)
    return RetrainChanges(
        new_features=[f for f in candidate_features if f not in known],
        definitions_changed=candidate_definitions != production_definitions,
        new_sources=sorted(s for s in set(candidate_sources) if s not in sources),
        metric=metric,
        drop=drop,
    )


def version_changes(
    candidate: ModelVersion,
    production: ModelVersion | None,
    metric: str | None,
    candidate_score: float | None,
    production_score: float | None,
) -> RetrainChanges:
    """:func:`retrain_changes` of two registered versions (their features, the sources their
    training sets read, their definitions hashes)."""
    if production is None:
        return RetrainChanges([], False, [], metric, None, production=False)
    return retrain_changes(
        candidate_features=candidate.features,
        production_features=production.features,
        candidate_sources=(candidate.training.get("sources") or {}).keys(),
        production_sources=(production.training.get("sources") or {}).keys(),
        candidate_definitions=_definitions(candidate, production),
        production_definitions=production.definitions_hash,
        metric=metric,
        candidate_score=candidate_score,
        production_score=production_score,
    )


def _definitions(candidate: ModelVersion, production: ModelVersion) -> str:
    """The candidate's definitions hash, or production's when only the spine's dates differ.

    The definitions hash covers the spine, whose dates a sliding window moves on every
    retrain; then the views each version's lineage records (name, kind, source, entity,
    columns, the columns used) and the label tell whether the definitions
    themselves changed. A change inside a view that keeps its columns' names (a filter, say)
    is not seen then.
    """
    if candidate.definitions_hash == production.definitions_hash:
        return candidate.definitions_hash
    if _shape(candidate) == _shape(production):
        return production.definitions_hash
    return candidate.definitions_hash


def _shape(version: ModelVersion) -> str:
    views = sorted((version.lineage.get("views") or []), key=lambda view: str(view.get("name")))
    label = version.lineage.get("label")
    return json.dumps([views, label, version.training.get("label")], sort_keys=True, default=str)


def decide(policy: RetrainSignoff, changes: RetrainChanges) -> SignoffDecision:
    """Whether ``changes`` are routine under ``policy``, with each reason they are not."""
    reasons: list[str] = []
    if not changes.production:
        reasons.append("no production version: the standing sign-offs cover no model yet")
    if policy.on_new_feature and changes.new_features:
        reasons.append(f"new features: {', '.join(changes.new_features)}")
    if policy.on_new_feature and changes.definitions_changed and not changes.new_features:
        reasons.append("the feature definitions changed (another definitions hash)")
    if policy.on_new_source and changes.new_sources:
        reasons.append(f"new sources: {', '.join(changes.new_sources)}")
    if policy.max_metric_drop is not None and changes.production:
        if changes.drop is None:
            reasons.append(f"the {changes.metric or 'metric'} drop is unknown")
        elif changes.drop > policy.max_metric_drop:
            reasons.append(
                f"{changes.metric} is {changes.drop:.4g} below production's, more than "
                f"retrain.signoff.max_metric_drop ({policy.max_metric_drop:g})"
            )
    return SignoffDecision(routine=not reasons, reasons=reasons)
