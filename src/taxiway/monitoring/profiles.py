"""Mergeable profiles of one column: what the monitor keeps instead of the rows.

A profile is built once per column from the training data (``reference``) and once per window
of the prediction log (``empty_like`` then ``update``); any period is a ``merge`` of windows, so
no run reads the rows again. Every profile is JSON-able (``to_dict`` / :func:`profile_from_dict`).

Numbers (:class:`NumericProfile`) keep exact counts on 100 *fine bins* cut at the reference's
1st..99th percentiles (duplicate edges are kept, so fine bins ``10 i .. 10 i + 9`` always form
decile ``i``, even for a column with a point mass), the count below / above the reference's
range, sum, sum of squares, min and max, and a KLL quantile sketch (k = 200). Categories
(:class:`CategoricalProfile`) keep exact counts of up to 1,000 labels (the rest as
``__other__``) and a frequent-items sketch.

Missing values. For numbers, ``None``, NaN, +/-inf, booleans and strings that do not parse as a
number are all ``missing``; the non-numeric ones among them (booleans, unparseable strings,
other objects, infinities) are also counted in ``invalid`` (so ``invalid <= missing``), which
tells "the field was absent" from "the field came in a wrong format". For categories, ``None``
and NaN are missing and any other value is the category ``str(value)``.

>>> import numpy as np
>>> ref = NumericProfile.reference(np.arange(1_000.0))
>>> ref.rows, ref.missing, ref.edges.size, ref.decile_counts().tolist()
(1000, 0, 99, [100, 100, 100, 100, 100, 100, 100, 100, 100, 100])
>>> window = ref.empty_like()
>>> window.update([5.0, None, "abc", 2_000.0])
>>> window.known, window.missing, window.invalid, window.above
(2, 2, 1, 1)
>>> profile_from_dict(window.to_dict()).to_dict() == window.to_dict()
True
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import datasketches  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError

__all__ = [
    "CATEGORY_CAP",
    "FINE_BINS",
    "KLL_K",
    "OTHER",
    "CategoricalProfile",
    "FineBins",
    "NumericProfile",
    "Profile",
    "parse_numbers",
    "profile_from_dict",
]

FINE_BINS: Final = 100
"""Fine bins per numeric column: cut at the reference's 1st..99th percentiles."""
KLL_K: Final = 200
"""The KLL sketch's size parameter (normalised rank error about 1.3%)."""
LG_MAX_K: Final = 10
"""log2 of the frequent-items sketch's map size."""
CATEGORY_CAP: Final = 1_000
"""Exact counts are kept for this many categories; the rest count as :data:`OTHER`."""
OTHER: Final = "__other__"
"""The category standing for every label beyond :data:`CATEGORY_CAP`."""

Floats = npt.NDArray[np.float64]


def _encode(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _number_or_none(value: float) -> float | None:
    """A float for JSON: None where it is not finite."""
    return float(value) if math.isfinite(value) else None


def _float_or(value: object, default: float) -> float:
    return default if value is None else float(value)  # type: ignore[arg-type]


def _parse_one(value: object) -> tuple[float, bool]:
    """One raw value as (float, invalid): NaN for missing, invalid for non-numbers."""
    if value is None:
        return math.nan, False
    if isinstance(value, bool):
        return math.nan, True
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return (number, False) if not math.isinf(number) else (math.nan, True)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return math.nan, True
        return (number, False) if not math.isinf(number) else (math.nan, True)
    return math.nan, True


def parse_numbers(values: Iterable[object] | npt.ArrayLike) -> tuple[Floats, int]:
    """Raw values as a float array with NaN for missing, and the count of invalid ones.

    A float or integer numpy array takes the fast path (no Python loop); so does a list of
    numbers, None and numeric strings (one scan for booleans first).

    >>> parse_numbers([1, None, "2.5", "x", True, float("inf")])
    (array([1. , nan, 2.5, nan, nan, nan]), 3)
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        floats = np.asarray(values, dtype=np.float64).ravel()
        infinite = int(np.count_nonzero(np.isinf(floats))) if floats.dtype.kind == "f" else 0
        if infinite:
            floats = np.where(np.isinf(floats), np.nan, floats)
        return floats, infinite
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return np.full(values.size, np.nan), int(values.size)
    items: Sequence[object] = (
        values.ravel().tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[arg-type]
    )
    if not any(type(item) is bool or isinstance(item, np.bool_) for item in items):
        try:  # numbers, None and numeric strings convert in C; anything else falls through
            floats = np.asarray(items, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass
        else:
            if floats.size == len(items):
                infinite = int(np.count_nonzero(np.isinf(floats)))
                if infinite:
                    floats = np.where(np.isinf(floats), np.nan, floats)
                return floats, infinite
    parsed = [_parse_one(item) for item in items]
    floats = np.fromiter((number for number, _ in parsed), dtype=np.float64, count=len(parsed))
    return floats, sum(bad for _, bad in parsed)


LOOKUP_CELLS: Final = 8_192
"""Cells of the uniform grid :class:`FineBins` uses to find a value's fine bin."""


class FineBins:
    """The fine bin of each value, as ``searchsorted(edges, values, side="right")`` gives it.

    A binary search per value is slow on a million of them (branches mispredict), so a uniform
    grid of :data:`LOOKUP_CELLS` cells over the edges' span holds each cell's bin; only values
    in a cell within half a cell of an edge (about 3-10% of them for continuous data; all
    values at a point mass) are searched. Exact: the result equals ``searchsorted``.

    >>> edges = np.array([1.0, 2.0, 2.0, 3.0])
    >>> values = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 9.0])
    >>> FineBins(edges).of(values).tolist() == np.searchsorted(edges, values, "right").tolist()
    True
    """

    def __init__(self, edges: Floats) -> None:
        self.edges = edges
        self.table: npt.NDArray[np.int16] | None = None
        span = float(edges[-1] - edges[0]) if edges.size else 0.0
        if not (math.isfinite(span) and span > 0):
            return  # no span (a constant or empty reference): binary search only
        width = span / (LOOKUP_CELLS - 4)
        self.origin = float(edges[0]) - 2 * width
        self.scale = 1.0 / width
        centres = self.origin + (np.arange(LOOKUP_CELLS) + 0.5) * width
        table = np.searchsorted(edges, centres, side="right").astype(np.int16)
        near = (edges - self.origin) * self.scale
        for start, stop in zip(np.floor(near - 0.5), np.floor(near + 0.5), strict=True):
            table[max(int(start), 0) : min(int(stop), LOOKUP_CELLS - 1) + 1] = -1
        self.table = table

    def of(self, values: Floats) -> npt.NDArray[np.int16] | npt.NDArray[np.intp]:
        """The fine-bin index of each (finite) value."""
        if self.table is None:
            return np.searchsorted(self.edges, values, side="right")
        cells = np.subtract(values, self.origin)
        cells *= self.scale
        np.clip(cells, 0, LOOKUP_CELLS - 1, out=cells)
        bins = self.table[cells.astype(np.intp)]
        near = bins < 0
        if near.any():
            bins[near] = np.searchsorted(self.edges, values[near], side="right")
        return bins


def _percentiles(ordered: Floats) -> Floats:
    """The 0th..100th percentiles of sorted values, as ``np.percentile`` (linear) gives them,
    without its 99 partitions.

    >>> values = np.random.default_rng(0).normal(size=1_001)
    >>> bool(np.allclose(_percentiles(np.sort(values)), np.percentile(values, np.arange(101))))
    True
    """
    position = np.arange(FINE_BINS + 1) * ((ordered.size - 1) / FINE_BINS)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ordered.size - 1)
    fraction = position - below
    result: Floats = ordered[below] + (ordered[above] - ordered[below]) * fraction
    return result


def _new_kll() -> datasketches.kll_doubles_sketch:
    return datasketches.kll_doubles_sketch(KLL_K)


class NumericProfile:
    """One numeric column: fine-bin counts on the reference's percentiles, moments, a sketch.

    Build the reference with :meth:`reference`, a window with :meth:`empty_like` and
    :meth:`update`. ``counts[j]`` counts known values ``v`` with
    ``searchsorted(edges, v, side="right") == j``: bin 0 is below the 1st percentile, bin 99
    at or above the 99th.

    >>> ref = NumericProfile.reference([1.0, 2.0, 3.0, 4.0, float("nan")])
    >>> ref.low, ref.high, ref.missing, round(ref.quantiles([0.5])[0], 1)
    (1.0, 4.0, 1, 3.0)
    """

    kind: Final[Literal["numeric"]] = "numeric"

    def __init__(
        self,
        edges: Floats,
        low: float,
        high: float,
        *,
        counts: npt.NDArray[np.int64] | None = None,
        missing: int = 0,
        invalid: int = 0,
        below: int = 0,
        above: int = 0,
        total: float = 0.0,
        total_sq: float = 0.0,
        minimum: float = math.inf,
        maximum: float = -math.inf,
        sketch: datasketches.kll_doubles_sketch | None = None,
    ) -> None:
        self.edges: Floats = np.asarray(edges, dtype=np.float64)
        self.low = float(low)
        self.high = float(high)
        self.counts: npt.NDArray[np.int64] = (
            np.zeros(self.edges.size + 1, dtype=np.int64)
            if counts is None
            else np.asarray(counts, dtype=np.int64)
        )
        if self.counts.size != self.edges.size + 1:
            raise MonitoringError(
                f"a numeric profile has {self.counts.size} counts for {self.edges.size} edges",
                fix="rebuild the reference profile: counts must have one more entry than edges",
            )
        self.missing = int(missing)
        self.invalid = int(invalid)
        self.below = int(below)
        self.above = int(above)
        self.sum = float(total)
        self.sum_sq = float(total_sq)
        self.min = float(minimum)
        self.max = float(maximum)
        self.sketch: datasketches.kll_doubles_sketch = _new_kll() if sketch is None else sketch
        self._bins: FineBins | None = None

    @classmethod
    def reference(cls, values: Iterable[object] | npt.ArrayLike) -> NumericProfile:
        """The profile of training values; its percentiles become the fine-bin edges.

        A column with no known value gets no edges (one bin) and NaN for low / high.

        >>> NumericProfile.reference([None, None]).edges.size
        0
        """
        floats, invalid = parse_numbers(values)
        known = floats[~np.isnan(floats)]
        if known.size:
            ordered = np.sort(known)
            edges = _percentiles(ordered)[1:-1]
            low, high = float(ordered[0]), float(ordered[-1])
        else:
            edges, low, high = np.zeros(0), math.nan, math.nan
        profile = cls(edges, low, high)
        profile._add(floats, invalid)
        return profile

    @property
    def known(self) -> int:
        """Known (finite) values profiled."""
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        """Values profiled, known or missing."""
        return self.known + self.missing

    def empty_like(self) -> NumericProfile:
        """A profile with the same edges and reference range, and nothing counted.

        >>> NumericProfile.reference([1.0, 2.0]).empty_like().rows
        0
        """
        empty = NumericProfile(self.edges, self.low, self.high)
        empty._bins = self._bins  # the same edges: share the lookup grid
        return empty

    def update(self, values: Iterable[object] | npt.ArrayLike) -> None:
        """Count ``values`` in (raw: None / NaN / non-numbers count as missing).

        >>> profile = NumericProfile.reference([0.0, 10.0]).empty_like()
        >>> profile.update(np.array([-1.0, 5.0, np.nan]))
        >>> profile.below, profile.known, profile.missing, profile.min
        (1, 2, 1, -1.0)
        """
        floats, invalid = parse_numbers(values)
        self._add(floats, invalid)

    def _add(self, floats: Floats, invalid: int) -> None:
        nan = np.isnan(floats)
        missing = int(np.count_nonzero(nan))
        known = floats[~nan] if missing else floats
        self.missing += missing
        self.invalid += invalid
        if not known.size:
            return
        if self._bins is None:
            self._bins = FineBins(self.edges)
        self.counts += np.bincount(self._bins.of(known), minlength=self.counts.size)
        low, high = float(known.min()), float(known.max())
        if low < self.low:
            self.below += int(np.count_nonzero(known < self.low))
        if high > self.high:
            self.above += int(np.count_nonzero(known > self.high))
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        self.sum += float(np.sum(known))
        # einsum, not dot: numpy's BLAS spins its threads on dot (~4 s of CPU per 1M records)
        self.sum_sq += float(np.einsum("i,i->", known, known))
        # the sketch refuses a read-only array (Arrow's to_numpy gives those)
        self.sketch.update(known if known.flags.writeable else known.copy())

    def _check_same_reference(self, other: NumericProfile) -> None:
        same = np.array_equal(self.edges, other.edges) and (
            (self.low, self.high) == (other.low, other.high)
            or (math.isnan(self.low) and math.isnan(other.low))
        )
        if not same:
            raise MonitoringError(
                "two numeric profiles of different references cannot be merged or compared",
                fix="profile both windows with empty_like() of the same reference profile",
            )

    def merge(self, other: Profile) -> NumericProfile:
        """A new profile counting both (the edges must be the same reference's).

        >>> ref = NumericProfile.reference([0.0, 1.0])
        >>> a, b = ref.empty_like(), ref.empty_like()
        >>> a.update([0.5]); b.update([2.0, None])
        >>> merged = a.merge(b)
        >>> merged.known, merged.missing, merged.above, merged.sketch.n
        (2, 1, 1, 2)
        """
        if not isinstance(other, NumericProfile):
            raise MonitoringError(
                "a numeric profile cannot be merged with a categorical one",
                fix="merge the profiles of one column only",
            )
        self._check_same_reference(other)
        sketch = _new_kll()
        sketch.merge(self.sketch)
        sketch.merge(other.sketch)
        return NumericProfile(
            self.edges,
            self.low,
            self.high,
            counts=self.counts + other.counts,
            missing=self.missing + other.missing,
            invalid=self.invalid + other.invalid,
            below=self.below + other.below,
            above=self.above + other.above,
            total=self.sum + other.sum,
            total_sq=self.sum_sq + other.sum_sq,
            minimum=min(self.min, other.min),
            maximum=max(self.max, other.max),
            sketch=sketch,
        )

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Approximate quantiles from the KLL sketch (NaN each when nothing is known).

        >>> NumericProfile.reference(np.arange(101.0)).quantiles([0.0, 1.0])
        [0.0, 100.0]
        """
        if self.sketch.is_empty():
            return [math.nan for _ in qs]
        return [float(q) for q in self.sketch.get_quantiles(list(qs))]

    def decile_counts(self) -> npt.NDArray[np.int64]:
        """The 10 coarse counts: fine bins ``10 i .. 10 i + 9`` summed.

        A profile without edges (its reference had no known value) puts everything in the
        first decile.

        >>> NumericProfile.reference(np.arange(100.0)).decile_counts().tolist()
        [10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
        """
        if self.counts.size == FINE_BINS:
            coarse: npt.NDArray[np.int64] = self.counts.reshape(10, FINE_BINS // 10).sum(axis=1)
            return coarse
        first = np.zeros(10, dtype=np.int64)
        first[0] = self.counts.sum()
        return first

    def mean(self) -> float:
        """The mean of the known values (NaN when there are none).

        >>> NumericProfile.reference([1.0, 2.0, 6.0]).mean()
        3.0
        """
        return self.sum / self.known if self.known else math.nan

    def std(self) -> float:
        """The (population) standard deviation of the known values, from the moments.

        >>> NumericProfile.reference([1.0, 3.0]).std()
        1.0
        """
        if not self.known:
            return math.nan
        mean = self.mean()
        return math.sqrt(max(0.0, self.sum_sq / self.known - mean * mean))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite floats as None, the sketch as base64).

        >>> sorted(NumericProfile.reference([1.0]).to_dict())[:4]
        ['above', 'below', 'counts', 'edges']
        """
        return {
            "kind": self.kind,
            "edges": [float(edge) for edge in self.edges],
            "counts": [int(count) for count in self.counts],
            "missing": self.missing,
            "invalid": self.invalid,
            "low": _number_or_none(self.low),
            "high": _number_or_none(self.high),
            "below": self.below,
            "above": self.above,
            "sum": self.sum,
            "sum_sq": self.sum_sq,
            "min": _number_or_none(self.min),
            "max": _number_or_none(self.max),
            "sketch": _encode(self.sketch.serialize()),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericProfile:
        """The profile :meth:`to_dict` wrote."""
        return cls(
            np.asarray(d["edges"], dtype=np.float64),
            _float_or(d["low"], math.nan),
            _float_or(d["high"], math.nan),
            counts=np.asarray(d["counts"], dtype=np.int64),
            missing=int(d["missing"]),
            invalid=int(d.get("invalid", 0)),
            below=int(d["below"]),
            above=int(d["above"]),
            total=float(d["sum"]),
            total_sq=float(d["sum_sq"]),
            minimum=_float_or(d["min"], math.inf),
            maximum=_float_or(d["max"], -math.inf),
            sketch=datasketches.kll_doubles_sketch.deserialize(_decode(d["sketch"])),
        )

    def __repr__(self) -> str:
        return (
            f"NumericProfile(known={self.known}, missing={self.missing}, "
            f"low={self.low}, high={self.high})"
        )


def _new_frequent() -> datasketches.frequent_strings_sketch:
    return datasketches.frequent_strings_sketch(LG_MAX_K)


def _is_missing_label(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


class CategoricalProfile:
    """One categorical column: exact counts per label (capped), missing, a frequent-items sketch.

    >>> ref = CategoricalProfile.reference(["a", "b", "a", None])
    >>> ref.counts, ref.missing, ref.rows
    ({'a': 2, 'b': 1}, 1, 4)
    """

    kind: Final[Literal["categorical"]] = "categorical"

    def __init__(
        self,
        counts: dict[str, int] | None = None,
        *,
        missing: int = 0,
        sketch: datasketches.frequent_strings_sketch | None = None,
    ) -> None:
        self.counts: dict[str, int] = dict(counts or {})
        self.missing = int(missing)
        self.sketch: datasketches.frequent_strings_sketch = (
            _new_frequent() if sketch is None else sketch
        )

    @classmethod
    def reference(cls, values: Iterable[object] | npt.ArrayLike) -> CategoricalProfile:
        """The profile of training labels.

        >>> CategoricalProfile.reference(np.array(["x", "y", "x"])).counts
        {'x': 2, 'y': 1}
        """
        profile = cls()
        profile.update(values)
        return profile

    @property
    def known(self) -> int:
        """Values with a label."""
        return sum(self.counts.values())

    @property
    def rows(self) -> int:
        """Values profiled, labelled or missing."""
        return self.known + self.missing

    def empty_like(self) -> CategoricalProfile:
        """A profile with nothing counted.

        >>> CategoricalProfile.reference(["a"]).empty_like().rows
        0
        """
        return CategoricalProfile()

    def update(self, values: Iterable[object] | npt.ArrayLike) -> None:
        """Count raw labels in (None / NaN count as missing, others as ``str(value)``).

        >>> profile = CategoricalProfile()
        >>> profile.update(["a", 1, None, float("nan")])
        >>> profile.counts, profile.missing
        ({'a': 1, '1': 1}, 2)
        """
        items = values.ravel().tolist() if isinstance(values, np.ndarray) else values
        labels: Counter[str] = Counter()
        for value, count in Counter(items).items():  # type: ignore[arg-type]
            if _is_missing_label(value):
                self.missing += count
            else:
                labels[str(value)] += count
        self._add(labels)

    def _add(self, labels: dict[str, int]) -> None:
        # the most frequent first, so the cap keeps the common labels of a batch
        for label, count in sorted(labels.items(), key=lambda item: -item[1]):
            if count <= 0:
                continue
            if label in self.counts or len(self.counts) < CATEGORY_CAP:
                self.counts[label] = self.counts.get(label, 0) + count
            else:
                self.counts[OTHER] = self.counts.get(OTHER, 0) + count
            self.sketch.update(label, count)
        if len(self.counts) > CATEGORY_CAP:
            self._cap()

    def _cap(self) -> None:
        """Keep the most frequent labels; fold the rest into :data:`OTHER`."""
        ranked = sorted(
            ((c, k) for k, c in self.counts.items() if k != OTHER), key=lambda x: (-x[0], x[1])
        )
        kept = {k: c for c, k in ranked[: CATEGORY_CAP - 1]}
        rest = sum(c for c, _ in ranked[CATEGORY_CAP - 1 :]) + self.counts.get(OTHER, 0)
        self.counts = kept | {OTHER: rest}

    def merge(self, other: Profile) -> CategoricalProfile:
        """A new profile counting both.

        >>> a = CategoricalProfile.reference(["a", "b"])
        >>> a.merge(CategoricalProfile.reference(["b", None])).counts
        {'a': 1, 'b': 2}
        """
        if not isinstance(other, CategoricalProfile):
            raise MonitoringError(
                "a categorical profile cannot be merged with a numeric one",
                fix="merge the profiles of one column only",
            )
        sketch = _new_frequent()
        sketch.merge(self.sketch)
        sketch.merge(other.sketch)
        merged = CategoricalProfile(self.counts, missing=self.missing + other.missing)
        for label, count in other.counts.items():
            merged.counts[label] = merged.counts.get(label, 0) + count
        if len(merged.counts) > CATEGORY_CAP:
            merged._cap()
        merged.sketch = sketch
        return merged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the sketch as base64).

        >>> CategoricalProfile.reference(["a"]).to_dict()["counts"]
        {'a': 1}
        """
        return {
            "kind": self.kind,
            "counts": dict(self.counts),
            "missing": self.missing,
            "sketch": _encode(self.sketch.serialize()),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalProfile:
        """The profile :meth:`to_dict` wrote."""
        return cls(
            {str(k): int(v) for k, v in d["counts"].items()},
            missing=int(d["missing"]),
            sketch=datasketches.frequent_strings_sketch.deserialize(_decode(d["sketch"])),
        )

    def __repr__(self) -> str:
        return f"CategoricalProfile(categories={len(self.counts)}, missing={self.missing})"


Profile = NumericProfile | CategoricalProfile


def profile_from_dict(d: dict[str, Any]) -> Profile:
    """The profile a ``to_dict`` wrote, numeric or categorical by its ``kind``.

    >>> profile_from_dict(CategoricalProfile.reference(["a"]).to_dict()).counts
    {'a': 1}
    >>> profile_from_dict({"kind": "text"})
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: a stored profile has kind 'text', not numeric or categorical
      fix: rebuild the version's reference profile (retrain, or run build_reference)
    """
    kind = d.get("kind")
    if kind == "numeric":
        return NumericProfile.from_dict(d)
    if kind == "categorical":
        return CategoricalProfile.from_dict(d)
    raise MonitoringError(
        f"a stored profile has kind {kind!r}, not numeric or categorical",
        fix="rebuild the version's reference profile (retrain, or run build_reference)",
    )
