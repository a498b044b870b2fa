"""The optional ranking stage: LightGBM lambdarank over the generators' candidates.

With ``recommend.ranking``, the full pipeline (``stages`` not restricted) becomes retrieve →
filter → rank → order → k:

1. retrieve: every generator gives its own top ``max(its k, k)`` for the user's history as of
   ``at``, the filters' exclusions left out; the candidates are their union, and each keeps as
   ``stage`` the first generator (in the spec's order) that retrieved it;
2. rank: per (user, candidate), the features below go through the fitted ranker; its score
   orders the list and is the score answered;
3. the ordering (at most N per category) and the cut to k follow as without ranking.

Features of a (user, candidate) pair (:class:`FeatureLayout`), all as of ``at``:

- ``<stage>_score`` and ``<stage>_rank`` for each generator (missing when that generator did
  not retrieve the item), and ``retrieved_by`` (how many did);
- ``history_items``: how many distinct items the user's history holds (request items
  included);
- the user's and the item's values: ``item_interactions`` (popularity before ``at``) and the
  spec's feature views, prefixed ``user__``/``item__``, from the newest snapshot taken at or
  before ``at`` (:mod:`~taxiway.recommend.ranking_features`: training, evaluation), or, for
  the views, from the online store at ``at`` when the service attached it
  (:mod:`~taxiway.recommend.ranking_online`).

The fitted booster is saved in LightGBM's own text format (``ranker/model.txt``), the
snapshots as Arrow IPC files, the rest as json: no pickle. Training lives in
:mod:`~taxiway.recommend.ranking_training`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.generators import Generator
from taxiway.recommend.ranking_features import FeatureSnapshot, RankingValues, Snapshots

__all__ = [
    "Candidates",
    "FeatureLayout",
    "OnlineSource",
    "Ranker",
    "candidates",
    "order_by_score",
]

FORMAT = 1


@dataclass(frozen=True)
class FeatureLayout:
    """The ranker's feature columns, fixed at training."""

    stages: tuple[str, ...]
    user_columns: tuple[str, ...]
    item_columns: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """Column names in the order of :attr:`Candidates.features`."""
        out = []
        for stage in self.stages:
            out += [f"{stage}_score", f"{stage}_rank"]
        out += ["retrieved_by", "history_items"]
        out += [f"user__{c}" for c in self.user_columns]
        out += [f"item__{c}" for c in self.item_columns]
        return out

    @classmethod
    def of(cls, stages: Sequence[str], snapshot: RankingValues) -> FeatureLayout:
        """The layout for ``stages`` and a snapshot's columns."""
        return cls(tuple(stages), snapshot.user_columns, snapshot.item_columns)


class OnlineSource(Protocol):
    """Where a served ranker reads its feature views at request time (the online store:
    :class:`~taxiway.recommend.ranking_online.OnlineRankingFeatures`)."""

    def at(
        self,
        at_us: int,
        snapshot: FeatureSnapshot | None,
        users: NDArray[np.object_],
        items: NDArray[np.object_],
    ) -> RankingValues:
        """The values at ``at_us`` for the recommender's ``users`` and ``items`` (ids by code);
        ``snapshot``: the ranker's own as of then (the columns that are no feature view)."""
        ...

    def take_misses(self) -> dict[tuple[str, str], int]:
        """``(view, status)`` → keys read without the view's values since the last call."""
        ...


@dataclass(frozen=True, eq=False)
class Candidates:
    """The union of the generators' candidates for request rows, sorted by row then item."""

    row: NDArray[np.int64]
    item: NDArray[np.int32]
    stage: NDArray[np.int8]
    """The first generator (index into the stages) that retrieved the item."""
    features: NDArray[np.float32]
    """pairs x ``len(layout.names)``."""
    layout: FeatureLayout
    n_rows: int

    @property
    def groups(self) -> NDArray[np.int64]:
        """Candidates per row (LightGBM's query groups), rows without any left out."""
        counts = np.bincount(self.row, minlength=self.n_rows)
        return counts[counts > 0]


def candidates(
    stages: Sequence[tuple[str, Generator]],
    history: sp.csr_matrix,
    excluded: sp.csr_matrix,
    users: NDArray[np.int32],
    snapshot: RankingValues | None,
    layout: FeatureLayout,
    k: int,
) -> Candidates:
    """Retrieve every generator's top ``max(its k, k)`` for each ``history`` row (nothing in
    ``excluded``), unite them and compute the layout's features (``users`` are the rows' user
    codes, ``-1`` unknown: their user values are missing; ``snapshot``: the user and item
    values, a snapshot or the online store's, None: all missing)."""
    n_rows, n_items = history.shape
    if snapshot is not None and (
        snapshot.user_columns != layout.user_columns or snapshot.item_columns != layout.item_columns
    ):
        raise ModelError(
            f"the ranking feature values have columns {snapshot.user_columns} and "
            f"{snapshot.item_columns}, the ranker was trained on {layout.user_columns} and "
            f"{layout.item_columns}",
            fix="train the recommender again",
        )
    keys: list[NDArray[np.int64]] = []
    stage_of: list[NDArray[np.int8]] = []
    scores: list[NDArray[np.float32]] = []
    ranks: list[NDArray[np.float32]] = []
    for index, (_, generator) in enumerate(stages):
        depth = max(generator.k, k)
        got, got_scores = generator.top(history, depth, exclude=excluded)
        got = np.asarray(got, dtype=np.int32)[:, :depth]
        got_scores = np.asarray(got_scores, dtype=np.float32)[:, :depth]
        valid = (got >= 0) & ~_is_in(got, excluded)
        rows, cols = np.nonzero(valid)
        keys.append(rows.astype(np.int64) * n_items + got[rows, cols])
        stage_of.append(np.full(len(rows), index, dtype=np.int8))
        scores.append(got_scores[rows, cols])
        ranks.append(cols.astype(np.float32))
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    stage = np.concatenate(stage_of) if stage_of else np.zeros(0, np.int8)
    order = np.lexsort((stage, key))
    key, stage = key[order], stage[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    pair = np.cumsum(first) - 1
    n_pairs = int(first.sum())
    n_stages = len(stages)
    by_stage = np.full((n_pairs, 2 * n_stages), np.nan, dtype=np.float32)
    if len(key):
        by_stage[pair, 2 * stage] = np.concatenate(scores)[order]
        by_stage[pair, 2 * stage + 1] = np.concatenate(ranks)[order]
    unique = key[first]
    row = unique // n_items
    item = (unique % n_items).astype(np.int32)
    retrieved_by = np.bincount(pair, minlength=n_pairs).astype(np.float32)
    history_items = np.diff(history.indptr).astype(np.float32)[row]
    user_part = np.full((n_pairs, len(layout.user_columns)), np.nan, dtype=np.float32)
    item_part = np.full((n_pairs, len(layout.item_columns)), np.nan, dtype=np.float32)
    if snapshot is not None:
        code = users[row]
        known = code >= 0
        user_part[known] = snapshot.for_users(code[known])
        item_part[:] = snapshot.for_items(item)
    features = np.hstack(
        [by_stage, retrieved_by[:, None], history_items[:, None], user_part, item_part]
    ).astype(np.float32)
    return Candidates(
        row=row,
        item=item,
        stage=stage[first],
        features=features,
        layout=layout,
        n_rows=n_rows,
    )


def order_by_score(
    found: Candidates, scores: NDArray[np.float32], depth: int
) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int8]]:
    """Each row's candidates best score first, as rows x ``depth`` lists (``-1`` padding)."""
    n = found.n_rows
    items = np.full((n, depth), -1, dtype=np.int32)
    out_scores = np.zeros((n, depth), dtype=np.float32)
    stage = np.full((n, depth), -1, dtype=np.int8)
    if not len(found.row):
        return items, out_scores, stage
    # ties keep the candidates' order (row, then item), so a list is reproducible
    order = np.lexsort((-scores.astype(np.float64), found.row))
    row = found.row[order]
    starts = np.searchsorted(row, np.arange(n))
    position = np.arange(len(row)) - starts[row]
    keep = position < depth
    picked = order[keep]
    items[row[keep], position[keep]] = found.item[picked]
    out_scores[row[keep], position[keep]] = scores[picked]
    stage[row[keep], position[keep]] = found.stage[picked]
    return items, out_scores, stage


@dataclass(eq=False)
class Ranker:
    """The fitted ranking stage: a LightGBM booster, its feature layout and the snapshots of
    user and item features it reads (the newest at or before the asked time), unless it is
    served with an ``online`` source (the service attaches the online store: the feature
    views are then read there at the request time)."""

    booster: Any
    """A ``lightgbm.Booster``."""
    layout: FeatureLayout
    snapshots: Snapshots
    facts: dict[str, Any] = field(default_factory=dict)
    """What training measured (times, groups, fit seconds...), saved with the ranker."""
    online: OnlineSource | None = None
    """Where the feature views are read at serving (not saved: the service attaches it)."""

    def values_at(
        self, at_us: int, users: NDArray[np.object_], items: NDArray[np.object_]
    ) -> RankingValues | None:
        """The user and item values the ranker reads at ``at_us``: the online store's when
        attached, else the newest snapshot at or before then (None: all missing)."""
        snapshot = self.snapshots.at(at_us)
        if self.online is None:
            return snapshot
        return self.online.at(at_us, snapshot, users, items)

    def score(self, found: Candidates) -> NDArray[np.float32]:
        """The ranker's score of each candidate (higher is better)."""
        if not len(found.row):
            return np.zeros(0, dtype=np.float32)
        got = self.booster.predict(found.features, num_threads=1)
        return np.asarray(got, dtype=np.float32)

    def save(self, folder: Path) -> None:
        """``model.txt`` (LightGBM's text format), ``ranker.json`` and the snapshots."""
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.txt"))
        index = self.snapshots.save(folder / "snapshots")
        meta = {
            "format": FORMAT,
            "kind": "lambdarank",
            "stages": list(self.layout.stages),
            "user_columns": list(self.layout.user_columns),
            "item_columns": list(self.layout.item_columns),
            "snapshots": index,
            "facts": self.facts,
        }
        (folder / "ranker.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Ranker:
        """The ranker :meth:`save` wrote in ``folder``."""
        import lightgbm

        path = folder / "ranker.json"
        try:
            meta = json.loads(path.read_text())
            booster = lightgbm.Booster(model_file=str(folder / "model.txt"))
        except (OSError, ValueError, lightgbm.basic.LightGBMError) as error:
            raise ModelError(
                f"cannot read the ranker in {folder}: {error}", fix="train the recommender again"
            ) from error
        if meta.get("format") != FORMAT:
            raise ModelError(
                f"{path} has format {meta.get('format')}, this taxiway reads {FORMAT}",
                fix="train the recommender again with this taxiway",
            )
        layout = FeatureLayout(
            tuple(meta["stages"]), tuple(meta["user_columns"]), tuple(meta["item_columns"])
        )
        snapshots = Snapshots.load(folder / "snapshots", meta["snapshots"])
        return cls(booster, layout, snapshots, dict(meta.get("facts", {})))


def _is_in(items: NDArray[np.int32], mask: sp.csr_matrix) -> NDArray[np.bool_]:
    """Whether each ``items[r, j]`` is a non-zero of row ``r`` of ``mask``."""
    coo = mask.tocoo()
    n_items = mask.shape[1]
    keys = coo.row.astype(np.int64) * n_items + coo.col.astype(np.int64)
    asked = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + items
    return np.isin(asked, keys) & (items >= 0)
