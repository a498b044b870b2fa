"""The fitted recommender: retrieve → filter → order → top k, one code path for evaluation and
the service.

For users at time ``at`` (each user's history as of ``at`` plus the request's recent items,
:mod:`~taxiway.recommend.history`):

1. the filters build one exclusion mask from those histories and the catalog as of ``at``
   (:mod:`~taxiway.recommend.filters`);
2. the generators are asked in order (the first is the primary model) for ``depth``
   candidates each, excluding the mask and what earlier generators already gave: the primary
   fills the list, the next ones fill what it could not (a user the model knows nothing about,
   a catalog filtered bare), and each item's ``stage`` names the generator that produced it.
   ``depth`` is ``k``, or the largest generator ``k`` when an ordering may drop candidates.
   Every answer is checked against the mask again: no filtered item is ever returned;
3. the ordering keeps at most N per category (the catalog's category as of ``at``);
4. the list is cut to ``k`` (it may be shorter when every stage ran out).

With a ranking stage (``ranker``, :mod:`~taxiway.recommend.ranking`) and no ``stages``
restriction, step 2 becomes: every generator retrieves its own top ``max(its k, k)``, the union
is scored by the ranker (as of ``at``) and ordered by that score; ``stage`` still names the
generator that retrieved the item. A restricted call (the service's fallbacks, popularity in
the evaluation) never ranks.

The popularity stage (the spec's, else one over all history added last) is always there: it
fills lists the model leaves short and is the baseline evaluation compares against
(``stages=[recommender.popularity_stage]``), through these same filters and ordering.
:attr:`Recommender.fallback_stages` is the service's chain after the model: item-to-item (an
``itemknn`` stage), popularity in the user's segment (a ``segment_popularity`` stage, added by
training when the catalog has categories), global popularity; each step filled by the later.

On disk (no pickle: json, npz and Arrow IPC files)::

    recommender.json          k, ordering, filters (item ids), stages, vocabulary sizes
    items.arrow, users.arrow  ids by code
    catalog.arrow             the catalog's rows (a history when it has times)
    history.arrow             every user's interactions (for as-of histories at serving)
    generators/<n>-<stage>/   each generator's own save()
    ranker/                   the ranking stage, when there is one (LightGBM text format)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.catalog import Catalog, CatalogState
from taxiway.recommend.filters import (
    ExclusionFilter,
    FilterInputs,
    exclusion_mask,
    filter_from_json,
)
from taxiway.recommend.generators import Generator, load_generator
from taxiway.recommend.history import Histories, HistoryRows
from taxiway.recommend.ordering import compact, max_per_category
from taxiway.recommend.ranking import (
    Candidates,
    FeatureLayout,
    Ranker,
    candidates,
    order_by_score,
)
from taxiway.recommend.ranking_features import RankingValues
from taxiway.recommend.split import to_micros

__all__ = ["Ranked", "Recommendation", "Recommender"]

FORMAT = 1
BATCH_ROWS = 1024
"""Rows scored at once: bounds the dense rows x items score matrices of exact generators."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: its id, the score its stage gave, and the stage's name."""

    item: str
    score: float
    stage: str


@dataclass(frozen=True, eq=False)
class Ranked:
    """Lists as codes: ``items`` (rows x k, ``-1`` padding), their ``scores`` and ``stage``
    (index into ``stages``, ``-1`` padding)."""

    items: NDArray[np.int32]
    scores: NDArray[np.float32]
    stage: NDArray[np.int8]
    stages: tuple[str, ...]


class Recommender:
    """The fitted whole: generators (first = primary), filters, ordering, catalog, histories.

    Used by evaluation and by the service alike (:meth:`ranked` is the one code path).
    """

    def __init__(
        self,
        stages: Sequence[tuple[str, Generator]],
        *,
        filters: Sequence[ExclusionFilter],
        catalog: Catalog,
        histories: Histories,
        items: NDArray[np.object_],
        users: NDArray[np.object_],
        events: tuple[str, ...],
        k: int,
        popularity_stage: str,
        max_per_category: int | None = None,
        ranker: Ranker | None = None,
    ) -> None:
        names = [name for name, _ in stages]
        if len(set(names)) != len(names):
            raise ModelError(f"stage names repeat: {names}", fix="name each stage once")
        if popularity_stage not in names:
            raise ModelError(
                f"the popularity stage {popularity_stage!r} is not one of the stages {names}",
                fix="add a popularity generator",
            )
        self.stages = list(stages)
        self.filters = list(filters)
        self.catalog = catalog
        self.histories = histories
        self.items = items
        self.users = users
        self.events = events
        self.k = k
        self.popularity_stage = popularity_stage
        self.max_per_category = max_per_category
        self.ranker = ranker
        if ranker is not None and ranker.layout.stages != tuple(names):
            raise ModelError(
                f"the ranker was trained on stages {list(ranker.layout.stages)}, the "
                f"recommender has {names}",
                fix="train the ranker with the recommender's stages",
            )
        self._user_codes = {str(u): code for code, u in enumerate(users.tolist())}
        self._item_codes = {str(i): code for code, i in enumerate(items.tolist())}

    @property
    def generators(self) -> list[str]:
        """The stage names, primary first (each a generator's kind)."""
        return [name for name, _ in self.stages]

    @property
    def fallback_stages(self) -> list[tuple[str, tuple[str, ...]]]:
        """The fallback chain after the full pipeline, in order: ``(path, stages asked)``.

        ``fallback:itemknn`` (with an itemknn stage), ``fallback:segment_popularity`` (with a
        segment_popularity stage), then ``fallback:popularity``; each step's stages are its own
        followed by the later steps', which fill what it leaves (the last is popularity alone).
        """
        popularity = self.popularity_stage
        kinds = {name: generator.kind for name, generator in self.stages}
        later: list[str] = [popularity]
        chain: list[tuple[str, tuple[str, ...]]] = [(f"fallback:{popularity}", (popularity,))]
        for kind in ("segment_popularity", "itemknn"):
            name = next((n for n, of in kinds.items() if of == kind and n != popularity), None)
            if name is not None:
                later.insert(0, name)
                chain.insert(0, (f"fallback:{name}", tuple(later)))
        return chain

    def user_codes(self, users: Sequence[str]) -> NDArray[np.int32]:
        """Codes of user ids (``-1`` for a user unknown at training)."""
        return np.array([self._user_codes.get(str(u), -1) for u in users], dtype=np.int32)

    def item_codes(self, items: Sequence[str]) -> list[int]:
        """Codes of item ids, unknown ones left out."""
        codes = (self._item_codes.get(str(i), -1) for i in items)
        return [code for code in codes if code >= 0]

    # ----------------------------------------------------------------- the one code path

    def recommend(
        self,
        users: Sequence[str],
        at: datetime,
        k: int | None = None,
        *,
        recent: Sequence[Sequence[str]] | None = None,
        stages: Sequence[str] | None = None,
    ) -> list[list[Recommendation]]:
        """The top ``k`` (default: the spec's) for each user at ``at``, best first.

        ``recent`` holds each user's items from the request (they join the history at ``at``);
        ``stages`` restricts the stages asked (the service's fallbacks), in this order.
        """
        codes = None if recent is None else [self.item_codes(items) for items in recent]
        ranked = self.ranked(
            self.user_codes(users), to_micros(at), k or self.k, recent=codes, stages=stages
        )
        out: list[list[Recommendation]] = []
        for row in range(len(users)):
            answer = []
            for item, score, stage in zip(
                ranked.items[row], ranked.scores[row], ranked.stage[row], strict=True
            ):
                if item < 0:
                    break
                answer.append(
                    Recommendation(str(self.items[item]), float(score), ranked.stages[stage])
                )
            out.append(answer)
        return out

    def ranked(
        self,
        users: NDArray[np.int32],
        at_us: int,
        k: int,
        *,
        recent: Sequence[Sequence[int]] | None = None,
        stages: Sequence[str] | None = None,
    ) -> Ranked:
        """:meth:`recommend` on codes: ``users`` (``-1`` unknown) at ``at_us``, in batches."""
        chosen = self._chosen(stages)
        rank = self.ranker is not None and stages is None
        names = tuple(self.generators)
        parts = [
            (
                np.zeros((0, k), dtype=np.int32),
                np.zeros((0, k), dtype=np.float32),
                np.zeros((0, k), dtype=np.int8),
            )
        ]
        for start in range(0, len(users), BATCH_ROWS):
            stop = start + BATCH_ROWS
            part_recent = None if recent is None else recent[start:stop]
            batch = self._ranked_batch if rank else self._batch
            parts.append(batch(users[start:stop], at_us, k, part_recent, chosen))
        items = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        stage = np.concatenate([p[2] for p in parts])
        return Ranked(items=items, scores=scores, stage=stage, stages=names)

    def _chosen(self, stages: Sequence[str] | None) -> list[int]:
        names = self.generators
        if stages is None:
            return list(range(len(names)))
        unknown = [s for s in stages if s not in names]
        if unknown:
            raise ModelError(
                f"the recommender has no stage {', '.join(unknown)} (its stages: "
                f"{', '.join(names)})",
                fix="ask for one of its stages",
            )
        return [names.index(s) for s in stages]

    def _batch(
        self,
        users: NDArray[np.int32],
        at_us: int,
        k: int,
        recent: Sequence[Sequence[int]] | None,
        chosen: list[int],
    ) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int8]]:
        seen, state, excluded = self._inputs(users, at_us, recent)
        history = seen.matrix()
        depth = self._depth(k, chosen)
        n, n_items = len(users), len(self.items)
        items = np.full((n, depth), -1, dtype=np.int32)
        scores = np.zeros((n, depth), dtype=np.float32)
        stage = np.full((n, depth), -1, dtype=np.int8)
        filled = np.zeros(n, dtype=np.int64)
        for index in chosen:
            need = np.flatnonzero(filled < depth)
            if not len(need):
                break
            # every row still open (always so for the first stage): no slicing of the inputs
            every = len(need) == n
            rows_history = history if every else history[need]
            rows_excluded = excluded if every else excluded[need]
            if filled[need].any():  # what earlier stages gave is excluded too
                taken = _mask_of(items[need], n_items)
                banned = sp.csr_matrix(rows_excluded + taken)
            else:
                banned = rows_excluded
            got, got_scores = self.stages[index][1].top(rows_history, depth, exclude=banned)
            got = np.asarray(got, dtype=np.int32)[:, :depth]
            got_scores = np.asarray(got_scores, dtype=np.float32)[:, :depth]
            valid = (got >= 0) & ~_is_in(got, banned)
            got, got_scores = compact(valid, got, got_scores)
            slot = filled[need][:, None] + np.arange(got.shape[1])
            place = (got >= 0) & (slot < depth)
            rows = np.repeat(need[:, None], got.shape[1], axis=1)[place]
            items[rows, slot[place]] = got[place]
            scores[rows, slot[place]] = got_scores[place]
            stage[rows, slot[place]] = index
            filled[need] += place.sum(axis=1)
        return self._order(items, scores, stage, state.category, k)

    def _inputs(
        self, users: NDArray[np.int32], at_us: int, recent: Sequence[Sequence[int]] | None
    ) -> tuple[HistoryRows, CatalogState, sp.csr_matrix]:
        """The users' histories and the catalog as of ``at_us``, and the filters' exclusions
        then."""
        seen = self.histories.as_of(users, at_us, recent)
        state = self.catalog.as_of(at_us)
        return seen, state, exclusion_mask(self.filters, FilterInputs(seen, state, self.events))

    def _depth(self, k: int, chosen: list[int]) -> int:
        """How many candidates a list keeps before the ordering (which may drop some)."""
        if self.max_per_category is None:
            return k
        return max([k] + [self.stages[i][1].k for i in chosen])

    def _order(
        self,
        items: NDArray[np.int32],
        scores: NDArray[np.float32],
        stage: NDArray[np.int8],
        category: NDArray[np.int32],
        k: int,
    ) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int8]]:
        if self.max_per_category is not None:
            keep = max_per_category(items, category, self.max_per_category)
            items, scores, stage = compact(keep, items, scores, stage)
        return items[:, :k], scores[:, :k], stage[:, :k]

    # ----------------------------------------------------------------- the ranking stage

    def candidates(
        self,
        users: NDArray[np.int32],
        at_us: int,
        k: int,
        *,
        snapshot: RankingValues | None = None,
        recent: Sequence[Sequence[int]] | None = None,
    ) -> Candidates:
        """Every generator's filtered candidates for ``users`` at ``at_us`` and their ranking
        features (``snapshot``: the user and item values; default the ranker's as of
        ``at_us``: its online store's when served with one, else its snapshot). What the
        ranker scores at serving, and what it is trained on."""
        if snapshot is None and self.ranker is None:
            raise ModelError(
                "candidates need a feature snapshot or a ranker",
                fix="pass snapshot= (ranking_features.popularity_snapshot at the least)",
            )
        seen, _, excluded = self._inputs(users, at_us, recent)
        if snapshot is None:
            assert self.ranker is not None  # nosec B101
            snapshot = self.ranker.values_at(at_us, self.users, self.items)
            layout = self.ranker.layout
        else:
            layout = (
                self.ranker.layout if self.ranker else FeatureLayout.of(self.generators, snapshot)
            )
        return candidates(self.stages, seen.matrix(), excluded, users, snapshot, layout, k)

    def _ranked_batch(
        self,
        users: NDArray[np.int32],
        at_us: int,
        k: int,
        recent: Sequence[Sequence[int]] | None,
        chosen: list[int],
    ) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int8]]:
        assert self.ranker is not None  # nosec B101
        found = self.candidates(users, at_us, k, recent=recent)
        items, scores, stage = order_by_score(
            found, self.ranker.score(found), self._depth(k, chosen)
        )
        return self._order(items, scores, stage, self.catalog.as_of(at_us).category, k)

    # ----------------------------------------------------------------- save and load

    def save(self, folder: Path) -> None:
        """Write the whole recommender into ``folder`` (see the module's layout)."""
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for number, (name, generator) in enumerate(self.stages):
            where = f"generators/{number}-{name}"
            generator.save(folder / where)
            saved.append({"name": name, "kind": generator.kind, "folder": where})
        meta: dict[str, Any] = {
            "format": FORMAT,
            "k": self.k,
            "max_per_category": self.max_per_category,
            "popularity_stage": self.popularity_stage,
            "stages": saved,
            "filters": [f.to_json(self.items) for f in self.filters],
            "events": list(self.events),
            "categories": list(self.catalog.categories),
            "n_users": len(self.users),
            "n_items": len(self.items),
        }
        if self.ranker is not None:
            self.ranker.save(folder / "ranker")
            meta["ranker"] = "ranker"
        (folder / "recommender.json").write_text(json.dumps(meta, indent=2) + "\n")
        _write_arrow(folder / "items.arrow", pa.table({"id": pa.array(self.items, pa.string())}))
        _write_arrow(folder / "users.arrow", pa.table({"id": pa.array(self.users, pa.string())}))
        _write_arrow(folder / "catalog.arrow", self.catalog.to_arrow())
        _write_arrow(folder / "history.arrow", self.histories.to_arrow())

    @classmethod
    def load(cls, folder: Path) -> Recommender:
        """The recommender :meth:`save` wrote in ``folder``."""
        path = folder / "recommender.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ModelError(
                f"cannot read {path}: {error}", fix="train the recommender again"
            ) from error
        if meta.get("format") != FORMAT:
            raise ModelError(
                f"{path} has format {meta.get('format')}, this taxiway reads {FORMAT}",
                fix="train the recommender again with this taxiway",
            )
        items = _ids(_read_arrow(folder / "items.arrow"))
        users = _ids(_read_arrow(folder / "users.arrow"))
        stages = [(s["name"], load_generator(folder / s["folder"])) for s in meta["stages"]]
        return cls(
            stages,
            filters=[filter_from_json(f, items) for f in meta["filters"]],
            catalog=Catalog.from_arrow(
                _read_arrow(folder / "catalog.arrow"),
                categories=tuple(meta["categories"]),
                n_items=len(items),
            ),
            histories=Histories.from_arrow(
                _read_arrow(folder / "history.arrow"), n_users=len(users), n_items=len(items)
            ),
            items=items,
            users=users,
            events=tuple(meta["events"]),
            k=int(meta["k"]),
            popularity_stage=str(meta["popularity_stage"]),
            max_per_category=meta["max_per_category"],
            ranker=Ranker.load(folder / meta["ranker"]) if meta.get("ranker") else None,
        )


def _mask_of(items: NDArray[np.int32], n_items: int) -> sp.csr_matrix:
    """Rows x items, 1 where the row's list (``-1`` padding) holds the item.

    Built as CSR directly (row-major order of ``items`` is CSR order): no COO sort.
    """
    real = items >= 0
    indptr = np.zeros(items.shape[0] + 1, dtype=np.int64)
    np.cumsum(real.sum(axis=1), out=indptr[1:])
    data = np.ones(int(indptr[-1]), dtype=np.float32)
    return sp.csr_matrix((data, items[real], indptr), shape=(items.shape[0], n_items))


def _is_in(items: NDArray[np.int32], mask: sp.csr_matrix) -> NDArray[np.bool_]:
    """Whether each ``items[r, j]`` is a non-zero of row ``r`` of ``mask``.

    With each row's columns sorted, the keys ``row * n_items + column`` of the CSR are sorted
    as they lie, so one binary search per asked item answers: no sort of the (millions of)
    keys, which ``np.isin`` paid on every call (it dominated evaluation at 100k items).

    >>> mask = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=np.float32))
    >>> _is_in(np.array([[3, 2, -1], [0, 1, 3]], dtype=np.int32), mask).tolist()
    [[True, False, False], [True, False, False]]
    """
    if not mask.has_sorted_indices:
        mask = mask.sorted_indices()
    n_items = np.int64(mask.shape[1])
    rows = np.repeat(np.arange(mask.shape[0], dtype=np.int64), np.diff(mask.indptr))
    nonzero = mask.data != 0
    keys = rows[nonzero] * n_items + mask.indices[nonzero]
    asked = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + items
    if not keys.size:
        return np.zeros(items.shape, dtype=bool)
    at = np.minimum(np.searchsorted(keys, asked), keys.size - 1)
    found: NDArray[np.bool_] = (keys[at] == asked) & (items >= 0)
    return found


def _write_arrow(path: Path, table: pa.Table) -> None:
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> pa.Table:
    try:
        with pa.OSFile(str(path), "rb") as source:
            return ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        raise ModelError(
            f"cannot read {path}: {error}", fix="train the recommender again"
        ) from error


def _ids(table: pa.Table) -> NDArray[np.object_]:
    return np.array(table["id"].to_pylist(), dtype=object)
