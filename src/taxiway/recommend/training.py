"""`taxiway train` on a `recommend:` spec: sources → split → fit → evaluate → registered version.

1. The interactions, catalog and deny sources are staged as for any training set
   (:func:`taxiway.data.stage.stage_sources`): each source's contract applies, bad rows are
   quarantined, a blocking contract stops the run. An interaction's time is when it is known:
   its ``timestamp`` plus the source's ``available_after`` (the catalog's rows likewise), and
   with ``as_of`` only what was known by then is read.
2. The interactions are split at ``recommend.split.cutoff`` (default: the last 10% of the time
   range, :mod:`~taxiway.recommend.split`).
3. Every generator is fitted on the training side alone (seconds recorded per generator); a
   popularity stage over all history is added last when the spec has none: it fills short
   lists and is the baseline. When the catalog has categories and the spec no
   ``segment_popularity``, one is added just before popularity (the fallback chain's
   popularity in the user's segment), segmenting by the categories as of the cutoff.
4. :func:`~taxiway.recommend.evaluation.evaluate` judges the model and popularity through the
   same pipeline and filters at the cutoff. The version stores what the monitor compares the
   served mix with: the share of the evaluated lists' slots per stage (``stage_share``) and per
   item-popularity decile (``popularity_deciles``: items ranked by their interactions in the
   stored history, as the monitor labels served items; with the interactions' share and the
   counts per decile).
   With ``recommend.ranking``, the ranking stage is trained first on the past alone
   (:mod:`~taxiway.recommend.ranking_training`; its LightGBM fit seconds are reported as
   ``training_seconds["ranker"]``) and the evaluation also scores the lists without it.
5. The recommender, fitted before the cutoff (the one that was judged) and holding every
   user's history up to the newest interaction (so serving uses what happened since), is saved
   and registered with ``task: recommend``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import StagedSource, stage_sources
from taxiway.engines.duckdb import connect, quote_identifier
from taxiway.errors import ModelError
from taxiway.models.card import build_card, write_card
from taxiway.models.provenance import git_commit, jsonable, spec_hash, user
from taxiway.models.registry import ModelVersion, NewVersion, Registry, open_registry
from taxiway.monitoring.recs.measures import decile_mix
from taxiway.recommend.catalog import Catalog, catalog_from_table
from taxiway.recommend.evaluation import Evaluation, evaluate, lists_at_cutoff
from taxiway.recommend.filters import AlreadySeen, Deny, ExclusionFilter, Unavailable
from taxiway.recommend.generators import Generator, generator_for
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.generators.segment_popularity import SegmentPopularity
from taxiway.recommend.history import Histories
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.ranking import Ranker
from taxiway.recommend.ranking_training import train_spec_ranker
from taxiway.recommend.split import RecommendSplit, from_micros, time_split, to_micros
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project
from taxiway.spec.recommend import (
    AlreadySeenFilter,
    DenyFilter,
    PopularityGenerator,
    RecommendSpec,
    SegmentPopularityGenerator,
    UnavailableFilter,
)

__all__ = ["TASK", "RecommendData", "RecommendTraining", "load_recommend_data", "train_recommender"]

TASK = "recommend"
"""The registry's ``task`` of a recommender version (a classifier's is ``classification``)."""

Progress = Callable[[str], None]
_MICROS = 1_000_000


@dataclass
class RecommendTraining:
    """What `taxiway train` did on a recommend spec, and the registered version."""

    version: ModelVersion
    evaluation: Evaluation
    split: RecommendSplit
    training_seconds: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool:
        """Whether the model scored strictly higher than popularity on the spec's metric."""
        return self.evaluation.beats_baseline

    @property
    def cold_users(self) -> int:
        """Users with interactions after the cutoff only (counted apart)."""
        return self.split.cold_users

    @property
    def cold_items(self) -> int:
        """Items interacted with after the cutoff only (counted apart)."""
        return self.split.cold_items

    def as_dict(self) -> dict[str, Any]:
        """The `taxiway train --json` document, with the classifier's keys where they exist."""
        v = self.version
        return {
            "name": v.name,
            "version": v.version,
            "stage": v.stage,
            "algorithm": v.algorithm,
            "task": v.task,
            "metric": self.evaluation.metric,
            "metrics": {"model": self.evaluation.model, "baseline": self.evaluation.popularity},
            "baseline": "popularity through the same filters and ordering",
            "beats_baseline": self.beats_baseline,
            "split": self.split.as_dict(),
            "generators": v.metrics.get("generators"),
            "training_seconds": self.training_seconds,
            "stage_share": self.evaluation.stage_share,
            "artifact_dir": v.artifact_dir,
            "timings_s": self.timings,
        }


@dataclass(frozen=True, eq=False)
class RecommendData:
    """The use case's data, read through its sources and contracts."""

    interactions: Interactions
    catalog: Catalog
    denied: list[str]
    sources: dict[str, dict[str, Any]]


def train_recommender(
    project: Project,
    *,
    as_of: datetime | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    created_by: str | None = None,
) -> RecommendTraining:
    """Train, evaluate and register the spec's recommender (see the module's steps)."""
    spec = project.spec
    recommend = _recommend_spec(spec)
    say = progress or (lambda _: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    say("reading interactions, catalog and deny lists through their contracts")
    data = load_recommend_data(project, as_of=as_of)
    lap("sources")
    cutoff = _cutoff(recommend.split.cutoff)
    split = time_split(data.interactions, cutoff)
    say(f"split: {split.describe()}")
    stages = _generators(recommend, data.catalog.as_of(split.cutoff_us).category)
    seconds: dict[str, float] = {}
    for name, generator in stages:
        say(f"fitting {name} on {len(split.train):,} interactions")
        began = time.perf_counter()
        generator.fit(split.train)
        seconds[name] = round(time.perf_counter() - began, 3)
    ranker = None
    if recommend.ranking is not None:
        say("training the ranking stage on candidates before the cutoff (LightGBM lambdarank)")
        ranker = train_spec_ranker(
            project,
            recommend,
            lambda at_us: _generators(recommend, data.catalog.as_of(at_us).category),
            data.interactions,
            split.cutoff_us,
            filters=_filters(recommend, data),
            catalog=data.catalog,
            as_of=as_of,
        )
        seconds["ranker"] = float(ranker.facts["fit_seconds"])
    lap("fit")
    recommender = Recommender(
        stages,
        filters=_filters(recommend, data),
        catalog=data.catalog,
        histories=Histories.of(data.interactions),
        items=data.interactions.items,
        users=data.interactions.users,
        events=data.interactions.events,
        k=recommend.k,
        popularity_stage="popularity",
        max_per_category=recommend.ordering.max_per_category if recommend.ordering else None,
        ranker=ranker,
    )
    say(f"evaluating on {len(split.evaluated_users):,} users against popularity")
    evaluation = evaluate(recommender, split, recommend.metric)
    deciles = _popularity_deciles(recommender, split, data.interactions)
    lap("evaluate")
    own = registry is None
    store = registry or open_registry(spec.registry, state_dir=project.state_dir)
    root = project.state_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="taxiway-recommender-", dir=root))
    try:
        say("saving and registering the recommender")
        recommender.save(folder)
        new = _new_version(
            project,
            recommend,
            data,
            split,
            evaluation,
            seconds,
            created_by,
            as_of=as_of,
            ranker=ranker,
            popularity_deciles=deciles,
        )
        version = store.register(new, folder)
        write_card(build_card(spec, version), version.artifact_dir)
        lap("register")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if own:
            store.close()
    return RecommendTraining(version, evaluation, split, seconds, timings)


def load_recommend_data(project: Project, *, as_of: datetime | None = None) -> RecommendData:
    """The interactions, catalog and deny lists of ``project``, staged with their contracts
    (bad rows quarantined, a blocking contract raising ContractViolation)."""
    spec = project.spec
    recommend = _recommend_spec(spec)
    denies = [f for f in recommend.filters if isinstance(f, DenyFilter)]
    names = list(
        dict.fromkeys(
            [recommend.interactions.source, recommend.catalog.source] + [f.source for f in denies]
        )
    )
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        staged = stage_sources(project, con, names, run_id=run_id, as_of=as_of)
        catalog_table = _read(
            con,
            spec,
            staged,
            recommend.catalog.source,
            [recommend.catalog.item, recommend.catalog.available, recommend.catalog.category],
        )
        seen = recommend.interactions
        table = _read(
            con, spec, staged, seen.source, [seen.user, seen.item, seen.weight, seen.event_type]
        )
        denied: list[str] = []
        for deny in denies:
            column = deny.item or recommend.catalog.item
            listed = _read(con, spec, staged, deny.source, [column])
            denied += [str(v) for v in listed[column].to_pylist() if v is not None]
    except duckdb.Error as error:
        raise ModelError(
            f"the recommendation data cannot be read: {str(error).splitlines()[0]}",
            fix="check the columns recommend: names against the sources (`taxiway check`)",
        ) from None
    finally:
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    item_ids = sorted(
        {str(v) for v in catalog_table[recommend.catalog.item].to_pylist() if v is not None}
    )
    if not item_ids:
        raise ModelError(
            f"the catalog source `{recommend.catalog.source}` lists no item",
            fix="check the catalog source and its contract's quarantine",
        )
    interactions = Interactions.from_arrow(
        table,
        user=seen.user,
        item=seen.item,
        at="__known_at",
        weight=seen.weight,
        event=seen.event_type,
        items=item_ids,
    )
    if as_of is not None:
        interactions = interactions.where(interactions.at <= to_micros(as_of))
    catalog_at = "__known_at" if "__known_at" in catalog_table.column_names else None
    catalog = catalog_from_table(
        catalog_table,
        items=interactions.items,
        item=recommend.catalog.item,
        at=catalog_at,
        available=recommend.catalog.available,
        category=recommend.catalog.category,
    )
    if as_of is not None:
        catalog = catalog.known_by(to_micros(as_of))
    return RecommendData(
        interactions=interactions,
        catalog=catalog,
        denied=denied,
        sources={name: source.manifest() for name, source in staged.items()},
    )


def _recommend_spec(spec: TaxiwaySpec) -> RecommendSpec:
    recommend = spec.recommend
    if recommend is None:
        raise ModelError("the spec has no `recommend:` section", fix="add one (see docs/spec.md)")
    return recommend


def _read(
    con: duckdb.DuckDBPyConnection,
    spec: TaxiwaySpec,
    staged: dict[str, StagedSource],
    name: str,
    columns: list[str | None],
) -> pa.Table:
    """The named columns of a staged source, with ``__known_at`` (timestamp plus
    ``available_after``) when it has a timestamp."""
    q = quote_identifier
    declared = spec.sources[name]
    picked = [f"{q(c)}" for c in dict.fromkeys(c for c in columns if c is not None)]
    if declared.timestamp is not None:
        lag = int(declared.available_after.total_seconds() * _MICROS)
        picked.append(f"({q(declared.timestamp)} + to_microseconds({lag})) AS __known_at")
    table: pa.Table = con.sql(
        f"SELECT {', '.join(picked)} FROM {q(staged[name].view)}"  # nosec B608
    ).to_arrow_table()
    return table


def _cutoff(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _generators(
    recommend: RecommendSpec, categories: NDArray[np.int32]
) -> list[tuple[str, Generator]]:
    """The spec's generators by kind, primary first; popularity over all history added last
    when the spec has none, and segment popularity just before it (after the primary) when the
    spec has none and ``categories`` (each item's, -1 for none) names some."""
    declared = recommend.candidates
    named = categories if recommend.catalog.category is not None else None
    stages: list[tuple[str, Generator]] = [
        (g.kind, generator_for(g, categories=named)) for g in declared
    ]
    if not any(isinstance(g, PopularityGenerator) for g in declared):
        stages.append(("popularity", Popularity(k=max(recommend.k, 200))))
    if (
        named is not None
        and (named >= 0).any()
        and not any(isinstance(g, SegmentPopularityGenerator) for g in declared)
    ):
        # before popularity, never first: a spec whose primary is popularity keeps it primary
        at = max(1, [name for name, _ in stages].index("popularity"))
        segment = SegmentPopularity(k=max(recommend.k, 200), categories=categories)
        stages.insert(at, (SegmentPopularity.kind, segment))
    return stages


def _filters(recommend: RecommendSpec, data: RecommendData) -> list[ExclusionFilter]:
    out: list[ExclusionFilter] = []
    items = data.interactions
    for declared in recommend.filters:
        if isinstance(declared, AlreadySeenFilter):
            lookback = declared.lookback
            out.append(
                AlreadySeen(
                    lookback_us=None
                    if lookback is None
                    else int(lookback.total_seconds() * _MICROS),
                    event_types=tuple(declared.event_types) if declared.event_types else None,
                )
            )
        elif isinstance(declared, UnavailableFilter):
            out.append(Unavailable())
        elif isinstance(declared, DenyFilter):
            codes = {items.item_code(i) for i in data.denied} - {-1}
            out.append(Deny(items=np.array(sorted(codes), dtype=np.int32)))
    return out


def _popularity_deciles(
    recommender: Recommender, split: RecommendSplit, interactions: Interactions
) -> dict[str, Any]:
    """The evaluated model lists' slots (top ``k`` at the cutoff) per item-popularity decile,
    items ranked by their interactions in the history the version stores (the monitor's
    labelling of served items), with the interactions' own shares and counts per decile."""
    lists = lists_at_cutoff(recommender, split, recommender.k)
    counts = np.bincount(interactions.item, minlength=interactions.n_items)
    return decile_mix(lists.items[:, : recommender.k], counts, interactions.items.tolist())


def _new_version(
    project: Project,
    recommend: RecommendSpec,
    data: RecommendData,
    split: RecommendSplit,
    evaluation: Evaluation,
    seconds: dict[str, float],
    created_by: str | None,
    *,
    as_of: datetime | None = None,
    ranker: Ranker | None = None,
    popularity_deciles: dict[str, Any] | None = None,
) -> NewVersion:
    spec = project.spec
    interactions = data.interactions
    metrics = {
        "metric": evaluation.metric,
        "k": evaluation.k,
        "model": evaluation.model,
        "baseline": evaluation.popularity,
        "baseline_description": "popularity through the same filters and ordering",
        "beats_baseline": evaluation.beats_baseline,
        "split": split.as_dict(),
        "cold_users": split.cold_users,
        "cold_items": split.cold_items,
        "evaluated_users": evaluation.users,
        "stage_share": evaluation.stage_share,
        "popularity_deciles": popularity_deciles or {},
        "training_seconds": seconds,
        "generators": [g.kind for g in recommend.candidates],
    }
    if evaluation.unranked is not None:
        metrics["unranked"] = evaluation.unranked
    if ranker is not None:
        metrics["ranking"] = ranker.facts
    return NewVersion(
        name=spec.name,
        created_by=created_by or user(),
        algorithm=recommend.primary.kind,
        task=TASK,
        metrics=jsonable(metrics),
        features=[],
        definitions_hash="",
        spec_hash=spec_hash(project.spec_path),
        git_commit=git_commit(project.spec_path),
        training=jsonable(
            {
                "sources": data.sources,
                "interactions": len(interactions),
                "users": interactions.n_users,
                "items": interactions.n_items,
                "recommend": recommend.model_dump(mode="json"),
                "cutoff": from_micros(split.cutoff_us).isoformat(),
                "train_interactions": len(split.train),
                "train_max_at": (
                    from_micros(int(split.train.at.max())).isoformat() if len(split.train) else None
                ),
                "as_of": as_of.isoformat() if as_of else None,
            }
        ),
        lineage={},
        profile={},
        serving={"chosen": "recommender", "k": recommend.k},
    )
