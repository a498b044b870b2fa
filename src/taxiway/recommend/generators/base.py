"""The candidate generator's role, and the factory from a spec's ``candidates:`` entry.

Every generator fits on training :class:`~taxiway.recommend.interactions.Interactions` and
answers ``top(history, k, exclude)`` for rows of histories coded with the same items. The rules
all of them keep (tests/recommend/test_generators.py checks each kind against them):

- ``top`` returns (n x k item codes, n x k float32 scores), best first, ties by the smaller
  item code; fewer than k candidates: item -1 and score -inf fill the tail;
- an item with a non-zero in ``exclude`` never comes back;
- a history row may belong to a user unseen at fit (new users, and interactions since training,
  count at request time); a personalised generator gives a row with no history no item
  (all -1), so the caller's fallback answers (segment_popularity too: no history, no
  segment); popularity ignores history;
- the same fitted generator gives the same answer on every call, and after save/load;
- ``save(folder)`` writes json and npz only (no pickle); ``load_generator(folder)`` reads the
  kind back.

>>> from taxiway.spec.recommend import EaseGenerator
>>> generator = generator_for(EaseGenerator(kind="ease", k=50, l2=100.0))
>>> generator.kind, generator.k
('ease', 50)
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.generators import store
from taxiway.recommend.generators.als import Als
from taxiway.recommend.generators.bpr import Bpr
from taxiway.recommend.generators.ease import Ease
from taxiway.recommend.generators.itemknn import ItemKnn
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.generators.segment_popularity import SegmentPopularity
from taxiway.recommend.interactions import Interactions
from taxiway.spec.recommend import (
    AlsGenerator,
    BprGenerator,
    EaseGenerator,
    ItemKnnGenerator,
    PopularityGenerator,
    SegmentPopularityGenerator,
)
from taxiway.spec.recommend import Generator as GeneratorSpec

__all__ = ["KINDS", "Generator", "generator_for", "load_generator"]


class Generator(Protocol):
    """A candidate generator: fitted on interactions, the k best items per history row."""

    kind: ClassVar[str]
    k: int
    """How many candidates the spec asks it for."""

    def fit(self, train: Interactions) -> None:
        """Learn from ``train`` (raises ModelError when there is nothing to learn from)."""

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Per row of history (n x n_items: a user's weighted interactions as of now, which
        may be a user unseen at fit), the k best item codes (n x k, best first, -1 padding
        when fewer) and their scores. Items with a non-zero in ``exclude`` (n x n_items) are
        never returned."""
        ...

    def save(self, folder: Path) -> None:
        """Write the fitted generator in ``folder`` (json and npz, no pickle)."""

    @classmethod
    def load(cls, folder: Path) -> Self:
        """The generator ``save`` wrote in ``folder``."""
        ...


KINDS: dict[str, type[Generator]] = {
    Popularity.kind: Popularity,
    SegmentPopularity.kind: SegmentPopularity,
    ItemKnn.kind: ItemKnn,
    Ease.kind: Ease,
    Als.kind: Als,
    Bpr.kind: Bpr,
}
"""Each kind's class, by the spec's ``kind``."""


def generator_for(spec: GeneratorSpec, *, categories: NDArray[np.int32] | None = None) -> Generator:
    """An unfitted generator configured by one ``candidates:`` entry of the spec.

    ``categories`` (each item code's category code, -1 for none: the catalog's as of the
    split) is what ``segment_popularity`` segments users by; the other kinds ignore it.
    """
    if isinstance(spec, PopularityGenerator):
        return Popularity(k=spec.k, window=spec.window)
    if isinstance(spec, SegmentPopularityGenerator):
        if categories is None:
            raise ModelError(
                "the segment_popularity generator needs the items' categories",
                fix="declare `category:` in recommend.catalog (in Python: generator_for(spec, "
                "categories=catalog.as_of(cutoff).category))",
            )
        return SegmentPopularity(k=spec.k, window=spec.window, categories=categories)
    if isinstance(spec, ItemKnnGenerator):
        return ItemKnn(k=spec.k, neighbours=spec.neighbours)
    if isinstance(spec, EaseGenerator):
        return Ease(k=spec.k, l2=spec.l2)
    if isinstance(spec, AlsGenerator):
        return Als(
            k=spec.k,
            factors=spec.factors,
            iterations=spec.iterations,
            regularization=spec.regularization,
            alpha=spec.alpha,
            exact_limit=spec.exact_limit,
        )
    if isinstance(spec, BprGenerator):
        return Bpr(
            k=spec.k,
            factors=spec.factors,
            iterations=spec.iterations,
            learning_rate=spec.learning_rate,
            regularization=spec.regularization,
            exact_limit=spec.exact_limit,
        )
    raise ModelError(
        f"no candidate generator of kind {getattr(spec, 'kind', spec)!r}",
        fix=f"use one of: {', '.join(KINDS)}",
    )


def load_generator(folder: Path) -> Generator:
    """The generator saved in ``folder``, whatever its kind."""
    kind = store.saved_kind(folder)
    if kind not in KINDS:
        raise ModelError(
            f"{folder} holds a generator of unknown kind {kind!r}",
            fix="load it with the taxiway version that saved it, or train again",
        )
    return KINDS[kind].load(folder)
