"""The global time split of interactions: train on the past, judge on what happened next.

Semantics (one cutoff for every user, so no user's future informs another's past):

- ``train`` holds the interactions strictly before the cutoff; ``test`` those at or after it.
  A training interaction at or after the cutoff never exists (a property test holds it).
- the default cutoff is the start of the last 10% of the interaction time range:
  ``first + 0.9 * (last - first)`` in microseconds, floored.
- evaluated users are those with at least one training interaction and at least one test
  interaction: the lists are judged at the cutoff on their test items.
- cold users (test interactions only, nobody knew them at the cutoff) are counted apart, as
  are cold items (interacted with after the cutoff, never before it): no model can have
  learnt them, so they are stated rather than averaged in.

>>> import numpy as np
>>> from taxiway.recommend.interactions import Interactions
>>> data = Interactions(user=np.array([0, 0, 1, 2], np.int32), item=np.array([0, 1, 1, 2], np.int32),
...     at=np.array([0, 100, 50, 95], np.int64), weight=np.ones(4, np.float32),
...     event=np.zeros(4, np.int8), users=np.array(["a", "b", "c"], object),
...     items=np.array(["x", "y", "z"], object), events=("",))
>>> split = time_split(data)
>>> split.cutoff_us, len(split.train), len(split.test), split.evaluated_users.tolist()
(90, 2, 2, [0])
>>> split.cold_users, split.cold_items
(1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.interactions import Interactions

__all__ = [
    "DEFAULT_TEST_SHARE",
    "RecommendSplit",
    "default_cutoff",
    "from_micros",
    "time_split",
    "to_micros",
]

DEFAULT_TEST_SHARE = 0.1
"""The share of the interaction time range after the default cutoff."""


@dataclass(frozen=True, eq=False)
class RecommendSplit:
    """Interactions split at one cutoff, with who is judged and who is cold."""

    cutoff_us: int
    train: Interactions
    test: Interactions
    evaluated_users: NDArray[np.int32]
    """Codes of the users with interactions both before and after the cutoff, ascending."""
    cold_users: int
    """Users with interactions after the cutoff only."""
    cold_items: int
    """Items interacted with after the cutoff, never before it."""

    @property
    def cutoff(self) -> datetime:
        """The cutoff as a UTC datetime."""
        return from_micros(self.cutoff_us)

    def relevant(self) -> sp.csr_matrix:
        """Evaluated users (rows, in ``evaluated_users`` order) x items: 1 where the user
        interacted with the item at or after the cutoff."""
        matrix = self.test.matrix()[self.evaluated_users]
        matrix.data = np.ones_like(matrix.data)
        return sp.csr_matrix(matrix)

    def describe(self) -> str:
        """One line for progress and reports."""
        return (
            f"cutoff {self.cutoff.isoformat()}: {len(self.train):,} training / "
            f"{len(self.test):,} test interactions, {len(self.evaluated_users):,} users judged, "
            f"{self.cold_users:,} cold users and {self.cold_items:,} cold items apart"
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready facts of the split (the registry records them)."""
        return {
            "cut": self.cutoff.isoformat(),
            "train_rows": len(self.train),
            "valid_rows": len(self.test),
            "evaluated_users": len(self.evaluated_users),
            "cold_users": self.cold_users,
            "cold_items": self.cold_items,
        }


def to_micros(moment: datetime) -> int:
    """A datetime as µs since the epoch; a naive one is read as UTC (as the interactions are).

    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1))
    1000000
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(at_us: int) -> datetime:
    """µs since the epoch as a UTC datetime (the inverse of :func:`to_micros`)."""
    seconds, micros = divmod(int(at_us), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def default_cutoff(at: NDArray[np.int64], test_share: float = DEFAULT_TEST_SHARE) -> int:
    """The start of the last ``test_share`` of the time range of ``at`` (µs)."""
    if not len(at):
        raise ModelError(
            "there are no interactions to split", fix="check the interactions source and its filter"
        )
    first, last = int(at.min()), int(at.max())
    return first + int((last - first) * (1.0 - test_share))


def time_split(data: Interactions, cutoff: datetime | int | None = None) -> RecommendSplit:
    """Split ``data`` at ``cutoff`` (a datetime, µs, or None for :func:`default_cutoff`).

    ModelError when nothing is left on one side or no user is in both: the evaluation would
    judge nobody.
    """
    if cutoff is None:
        cut = default_cutoff(data.at)
    elif isinstance(cutoff, datetime):
        cut = to_micros(cutoff)
    else:
        cut = int(cutoff)
    before = data.at < np.int64(cut)
    train, test = data.where(before), data.where(~before)
    trained_users = np.zeros(data.n_users, dtype=bool)
    trained_users[train.user] = True
    tested_users = np.zeros(data.n_users, dtype=bool)
    tested_users[test.user] = True
    trained_items = np.zeros(data.n_items, dtype=bool)
    trained_items[train.item] = True
    tested_items = np.zeros(data.n_items, dtype=bool)
    tested_items[test.item] = True
    split = RecommendSplit(
        cutoff_us=cut,
        train=train,
        test=test,
        evaluated_users=np.flatnonzero(trained_users & tested_users).astype(np.int32),
        cold_users=int((tested_users & ~trained_users).sum()),
        cold_items=int((tested_items & ~trained_items).sum()),
    )
    if not len(train) or not len(split.evaluated_users):
        raise ModelError(
            f"the split at {split.cutoff.isoformat()} leaves {len(train):,} training "
            f"interactions and {len(split.evaluated_users):,} users seen on both sides: "
            "nothing can be judged",
            fix="move recommend.split.cutoff inside the interactions' time range, "
            "or leave it out for the last 10%",
        )
    return split
