"""Each user's interactions as of a time: what generators score from and filters look at.

Semantics:

- a user's history as of ``at`` is their interactions strictly before ``at`` (the split's
  training side is exactly the history as of the cutoff), plus the request's ``recent`` items,
  which count as interactions at ``at`` with weight 1 and no event type (event code ``-1``:
  an ``already_seen`` filter restricted to event types does not match them, one over every
  event does).
- an unknown user (code ``-1``) has no history: only their recent items, if any.
- the history matrix sums the weights of repeated (user, item) pairs, as ``Interactions.matrix``
  does for training.

>>> import numpy as np
>>> from taxiway.recommend.interactions import Interactions
>>> data = Interactions(user=np.array([1, 0, 0], np.int32), item=np.array([2, 0, 1], np.int32),
...     at=np.array([5, 10, 20], np.int64), weight=np.ones(3, np.float32),
...     event=np.zeros(3, np.int8), users=np.array(["a", "b"], object),
...     items=np.array(["x", "y", "z"], object), events=("",))
>>> histories = Histories.of(data)
>>> rows = histories.as_of(np.array([0, -1], np.int32), 15, recent=[[], [2]])
>>> rows.row.tolist(), rows.item.tolist(), rows.event.tolist()
([0, 1], [0, 2], [0, -1])
>>> rows.matrix().toarray().tolist()
[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
>>> histories.has_before(0, 15), histories.has_before(0, 10), histories.has_before(-1, 15)
(True, False, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.recommend.interactions import Interactions

__all__ = ["RECENT_EVENT", "Histories", "HistoryRows"]

RECENT_EVENT = -1
"""The event code of an item sent with a request (``recent``): no event type."""


@dataclass(frozen=True, eq=False)
class HistoryRows:
    """The interactions of ``n_rows`` requested users as of one time, by request row."""

    n_rows: int
    n_items: int
    at_us: int
    row: NDArray[np.int32]
    item: NDArray[np.int32]
    at: NDArray[np.int64]
    weight: NDArray[np.float32]
    event: NDArray[np.int8]

    def matrix(self, keep: NDArray[np.bool_] | None = None) -> sp.csr_matrix:
        """Rows x items, the weights of the kept interactions summed (all when ``keep`` is
        None)."""
        pick = slice(None) if keep is None else keep
        row, item = self.row[pick], self.item[pick]
        weight = np.asarray(self.weight[pick], dtype=np.float32)
        # what scipy's COO to CSR does (entries of a row in their order, then repeated pairs
        # summed), built directly: scipy's checks cost more than the work for one user
        order = np.argsort(row, kind="stable")
        counts = np.bincount(row, minlength=self.n_rows)
        index = np.int32 if len(row) < np.iinfo(np.int32).max else np.int64
        indptr = np.zeros(self.n_rows + 1, dtype=index)
        np.cumsum(counts, out=indptr[1:])
        matrix = sp.csr_matrix(
            (weight[order], item[order].astype(index), indptr),
            shape=(self.n_rows, self.n_items),
        )
        matrix.sum_duplicates()
        return matrix


@dataclass(frozen=True, eq=False)
class Histories:
    """Every user's interactions sorted by user then time, for as-of lookups by user code."""

    indptr: NDArray[np.int64]
    """User ``u``'s interactions are ``[indptr[u], indptr[u + 1])``."""
    item: NDArray[np.int32]
    at: NDArray[np.int64]
    weight: NDArray[np.float32]
    event: NDArray[np.int8]
    n_items: int

    @classmethod
    def of(cls, data: Interactions) -> Histories:
        """The histories of every user of ``data`` (its user codes)."""
        order = np.lexsort((data.at, data.user))
        counts = np.bincount(data.user, minlength=data.n_users)
        indptr = np.zeros(data.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr=indptr,
            item=data.item[order],
            at=data.at[order],
            weight=data.weight[order],
            event=data.event[order],
            n_items=data.n_items,
        )

    @property
    def n_users(self) -> int:
        """How many users have a history slot (every coded user)."""
        return int(self.indptr.shape[0] - 1)

    def has_before(self, user: int, at_us: int) -> bool:
        """Whether ``user`` (a code, ``-1`` unknown) has an interaction strictly before
        ``at_us``: their first one is (each user's interactions are sorted by time)."""
        if not 0 <= user < self.n_users:
            return False
        start = int(self.indptr[user])
        return start < int(self.indptr[user + 1]) and int(self.at[start]) < at_us

    def as_of(
        self,
        users: NDArray[np.int32],
        at_us: int,
        recent: Sequence[Sequence[int]] | None = None,
    ) -> HistoryRows:
        """The histories of ``users`` (codes, ``-1`` unknown) strictly before ``at_us``, plus
        each row's ``recent`` item codes (negative codes ignored) at ``at_us``."""
        users = np.asarray(users, dtype=np.int64)
        known = (users >= 0) & (users < self.n_users)
        safe = np.where(known, users, 0)
        starts = np.where(known, self.indptr[safe], 0)
        lengths = np.where(known, self.indptr[safe + 1] - self.indptr[safe], 0)
        rows = np.repeat(np.arange(len(users), dtype=np.int32), lengths)
        offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        index = np.repeat(starts, lengths) + offsets
        before = self.at[index] < np.int64(at_us)
        index, rows = index[before], rows[before]
        row, item = rows, self.item[index]
        at, weight, event = self.at[index], self.weight[index], self.event[index]
        if recent is not None:
            if len(recent) != len(users):
                raise ValueError(f"{len(recent)} recent lists for {len(users)} users")
            extra_rows = np.repeat(
                np.arange(len(users), dtype=np.int32), [len(items) for items in recent]
            )
            extra_items = np.fromiter(
                (code for items in recent for code in items), dtype=np.int64, count=len(extra_rows)
            )
            valid = (extra_items >= 0) & (extra_items < self.n_items)
            extra_rows, extra_items = extra_rows[valid], extra_items[valid].astype(np.int32)
            row = np.concatenate([row, extra_rows])
            item = np.concatenate([item, extra_items])
            at = np.concatenate([at, np.full(len(extra_rows), at_us, dtype=np.int64)])
            weight = np.concatenate([weight, np.ones(len(extra_rows), dtype=np.float32)])
            event = np.concatenate([event, np.full(len(extra_rows), RECENT_EVENT, dtype=np.int8)])
        return HistoryRows(
            n_rows=len(users),
            n_items=self.n_items,
            at_us=int(at_us),
            row=row,
            item=item,
            at=at,
            weight=weight,
            event=event,
        )

    def to_arrow(self) -> pa.Table:
        """One row per interaction: ``user`` (code), ``item``, ``at``, ``weight``, ``event``."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))
        return pa.table(
            {
                "user": pa.array(users),
                "item": pa.array(self.item),
                "at": pa.array(self.at),
                "weight": pa.array(self.weight),
                "event": pa.array(self.event),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table, *, n_users: int, n_items: int) -> Histories:
        """The inverse of :meth:`to_arrow` (rows already sorted by user then time)."""
        user = np.asarray(table["user"].to_numpy(), dtype=np.int32)
        counts = np.bincount(user, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr=indptr,
            item=np.asarray(table["item"].to_numpy(), dtype=np.int32),
            at=np.asarray(table["at"].to_numpy(), dtype=np.int64),
            weight=np.asarray(table["weight"].to_numpy(), dtype=np.float32),
            event=np.asarray(table["event"].to_numpy(), dtype=np.int8),
            n_items=n_items,
        )
