"""Phase 2 for a ``recommend:`` spec: the recommender trained on its time split and judged
against popularity (:func:`taxiway.recommend.training.train_recommender`, which registers the
candidate), then the recommender's handoff audit
(:func:`taxiway.recommend.audit.run_recommend_audit`: leakage, filters parity, coverage,
latency).

The checks say what was measured, never what was declared:

- **the time split**: training and test interactions, the users judged, and the cold users
  and items counted apart (they are not in the metric);
- **the model against popularity**: the declared metric for the model and for popularity
  through the same filters and ordering, the other metrics beside them in ``facts.recommend``;
  a model that does not beat popularity blocks (a capability: its data or framing carries no
  signal popularity lacks), with the fix;
- **the ceiling**, when the data's simulator wrote a ``truth.json`` beside the interactions
  (``examples/shop-recs``): the best recall a model could expect from the true preferences,
  shown beside the model (from that file, on its own split: a reference, not a gate);
- **the online store**: materialized when ``recommend.ranking.features`` names views (the
  ranking stage reads them there at serving); otherwise a recommender reads none, so nothing
  is materialized (skipped, saying why);
- **the audit**: its four checks, each with its blocker, as for a classifier's audit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.features.materialize import materialize
from taxiway.features.online import open_online_store
from taxiway.models.registry import open_registry
from taxiway.recommend.training import RecommendTraining, train_recommender
from taxiway.spec.models import FileSource
from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check, Phase, blocker
from taxiway.sprint.phases.running import _State, _step

__all__ = [
    "LOAD_USERS",
    "recommend_sources",
    "recommend_training_checks",
    "train_recommender_step",
    "truth_ceiling",
]

LOAD_USERS = 256
"""How many users with a history the integration phase's requests name (a fixed sample)."""


def recommend_sources(project: Project) -> set[str]:
    """The sources a recommender reads: interactions, catalog and each deny list."""
    recommend = project.spec.recommend
    if recommend is None:
        return set()
    deny = {getattr(f, "source", None) for f in recommend.filters}
    return {recommend.interactions.source, recommend.catalog.source} | {
        s for s in deny if isinstance(s, str)
    }


def recommend_training_checks(result: RecommendTraining, spec_path: Path) -> list[Check]:
    """The time split, and the model against popularity on the declared metric.

    A model that does not beat popularity is a blocker: the sprint measured it, on the same
    split and through the same filters and ordering popularity went through.
    """
    split, evaluation, v = result.split, result.evaluation, result.version
    metric = evaluation.metric
    split_detail = split.describe()
    checks = [
        Check(
            "time split",
            "pass",
            split_detail,
            result.timings.get("sources", 0.0),
            data=split.as_dict(),
        )
    ]
    ours, theirs = evaluation.model.get(metric), evaluation.popularity.get(metric)
    others = [
        f"{name} {evaluation.model[name]:.4f} vs {evaluation.popularity.get(name, float('nan')):.4f}"
        for name in evaluation.model
        if name != metric and name != "users" and name in evaluation.popularity
    ][:3]
    detail = (
        f"{metric}: model {_fmt(ours)} vs popularity {_fmt(theirs)} ({v.algorithm}, "
        f"v{v.version}, {evaluation.users:,} users judged at the cutoff)"
        + (f"; {', '.join(others)}" if others else "")
    )
    data = {"version": v.version, "algorithm": v.algorithm, "metric": metric, "model": ours,
            "baseline": theirs, "beats_baseline": result.beats_baseline}  # fmt: skip
    seconds = sum(result.training_seconds.values())
    if result.beats_baseline:
        checks.append(Check("model beats popularity", "pass", detail, seconds, data=data))
        return checks
    checks.append(
        Check(
            "model beats popularity",
            "fail",
            detail,
            seconds,
            data=data,
            blocker=blocker(
                "model_development",
                "capability",
                "the recommender does not beat popularity",
                evidence=detail,
                fix=(
                    f"ship popularity itself (it already answers as the fallback), or give the "
                    f"model signal popularity lacks: another primary generator in "
                    f"recommend.candidates (ease, itemknn, als, bpr) or other parameters, "
                    f"longer history or more event types in the interactions; then `taxiway "
                    f"train -f {spec_path}` until it beats popularity on {metric}"
                ),
                kind="new_signal",
            ),
        )
    )
    return checks


def truth_ceiling(project: Project) -> dict[str, Any] | None:
    """``truth.json`` beside the interactions' file, when the data's simulator wrote one:
    the best achievable metrics from the true preferences (``ceiling``, and
    ``ceiling_ordered`` with the example's ordering) and popularity's on the simulator's own
    split. ``None`` when there is no such file (real data has none)."""
    recommend = project.spec.recommend
    if recommend is None:
        return None
    source = project.spec.sources.get(recommend.interactions.source)
    if not isinstance(source, FileSource):
        return None
    path = (project.base_dir / source.path).parent / "truth.json"
    if not path.is_file():
        return None
    try:
        truth = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(truth, dict) or not isinstance(truth.get("ceiling"), dict):
        return None
    keys = ("ceiling", "ceiling_ordered", "popularity", "cutoff", "users_evaluated",
            "max_per_category")  # fmt: skip
    found = {k: truth[k] for k in keys if k in truth}
    ordering = recommend.ordering.max_per_category if recommend.ordering else None
    ordered = ordering is not None and ordering == truth.get("max_per_category")
    found["applies"] = "ceiling_ordered" if ordered and "ceiling_ordered" in truth else "ceiling"
    found["file"] = str(path)
    return found


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def _load_users(result: RecommendTraining, n: int = LOAD_USERS) -> list[str]:
    """Up to ``n`` users with a history before the cutoff, a fixed sample."""
    train = result.split.train
    codes = np.unique(train.user)
    if len(codes) > n:
        codes = np.sort(np.random.default_rng(0).choice(codes, n, replace=False))
    return [str(train.users[c]) for c in codes]


def train_recommender_step(state: _State, phase: Phase) -> None:
    """Train and judge the recommender (the phase's checks and facts); on success
    ``state.candidate`` is the registered version and ``state.bodies`` the integration
    phase's requests (users drawn from the data)."""
    project = state.project
    spec_path = project.spec_path
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        with _step(state, phase, "train", f"run `taxiway train -f {spec_path}` and fix what "
                   "it reports"):  # fmt: skip
            began = time.perf_counter()
            result = train_recommender(
                project,
                as_of=state.options.as_of,
                registry=registry,
                progress=lambda what: state.say("model_development", what),
                created_by="taxiway sprint",
            )
            phase.checks.extend(recommend_training_checks(result, spec_path))
            state.candidate = result.version
            _record_training(state, result, time.perf_counter() - began)
    finally:
        registry.close()
    if state.candidate is None:
        return
    ranking = project.spec.recommend.ranking if project.spec.recommend else None
    if ranking is None or not ranking.features:
        phase.checks.append(
            Check("online store materialized", "skip",
                  "a recommender without ranking features reads no online store: its "
                  "histories are in the artifact")
        )  # fmt: skip
        return
    # the ranking stage reads its feature views from the online store at serving
    with _step(state, phase, "materialize the online store", "run `taxiway features "
               "materialize` and fix what it reports"):  # fmt: skip
        began = time.perf_counter()
        store = open_online_store(
            project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
        )
        try:
            done = materialize(project, store, as_of=state.options.as_of)
        finally:
            store.close()
        phase.checks.append(
            Check(
                "online store materialized",
                "pass",
                f"{len(done.views)} views as of {done.as_of.isoformat()} (the ranking's "
                "features at serving)",
                time.perf_counter() - began,
                data=done.as_dict(),
            )
        )
        state.observed["online_store_used"] = True


def _record_training(state: _State, result: RecommendTraining, seconds: float) -> None:
    v, evaluation, split = result.version, result.evaluation, result.split
    metric = evaluation.metric
    state.facts["model"] = {
        "version": v.version,
        "algorithm": v.algorithm,
        "metric": metric,
        "model": evaluation.model.get(metric),
        "baseline": evaluation.popularity.get(metric),
        "beats_baseline": result.beats_baseline,
        "baseline_description": "popularity through the same filters and ordering",
        "training_s": round(seconds, 3),
    }
    state.facts["recommend"] = {
        "metric": metric,
        "k": evaluation.k,
        "model": evaluation.model,
        "popularity": evaluation.popularity,
        "evaluated_users": evaluation.users,
        "split": split.as_dict(),
        "cold_users": split.cold_users,
        "cold_items": split.cold_items,
        "stage_share": evaluation.stage_share,
        "training_seconds": result.training_seconds,
        "generators": list(v.metrics.get("generators") or []),
        "truth": truth_ceiling(state.project),
    }
    state.bodies = [{"user": user, "k": evaluation.k} for user in _load_users(result)]
    sources = v.training.get("sources") or {}
    state.observed["lineage_recorded"] = (
        bool(sources),
        f"the version records the sources it read: {', '.join(sorted(sources))}"
        if sources
        else "the version records no source",
    )
