"""The ranking stage's user and item features, point in time: snapshots taken at given times.

A :class:`FeatureSnapshot` holds, as of one time ``at_us``, a row of numbers per user code and
per item code: the items' popularity (interactions strictly before ``at_us``) and the values
of the spec's feature views (``recommend.ranking.features``) computed by taxiway's offline
path (:func:`taxiway.features.pit.compute_view` over an as-of spine, exactly as
``taxiway features materialize`` computes them: a row counts once ``timestamp +
available_after <= at``). A view keyed by the interactions' user column is a user view, one
keyed by the catalog's (or the interactions') item column an item view.

The ranker reads the newest snapshot taken at or before the time it is asked about
(:meth:`Snapshots.at`): at the training times, at the cutoff (evaluation) and at the end of
training (serving), so no value from after ``at`` is ever read. A time before every snapshot
reads missing values (LightGBM's NaN), never a later one.

>>> import numpy as np
>>> from taxiway.recommend.interactions import Interactions
>>> data = Interactions(user=np.array([0, 1, 1], np.int32), item=np.array([1, 1, 0], np.int32),
...     at=np.array([5, 10, 20], np.int64), weight=np.ones(3, np.float32),
...     event=np.zeros(3, np.int8), users=np.array(["a", "b"], object),
...     items=np.array(["x", "y"], object), events=("",))
>>> snapshot = popularity_snapshot(data, 15)
>>> snapshot.item_columns, snapshot.item_values[:, 0].tolist()
(('item_interactions',), [0.0, 2.0])
>>> Snapshots([snapshot]).at(14) is None, Snapshots([snapshot]).at(15) is snapshot
(True, True)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from numpy.typing import NDArray

from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.engines.duckdb import quote_identifier as q
from taxiway.errors import FeatureError, ModelError
from taxiway.features.pit import compute_view, interval
from taxiway.features.spine import as_of_spine
from taxiway.recommend.interactions import Interactions
from taxiway.spec.project import Project
from taxiway.spec.recommend import RecommendSpec

__all__ = [
    "FeatureSnapshot",
    "FeaturesAt",
    "RankingValues",
    "Snapshots",
    "ViewSides",
    "popularity_snapshot",
    "snapshot_builder",
    "view_sides",
    "view_values",
]

POPULARITY_COLUMNS = ("item_interactions",)


class RankingValues(Protocol):
    """User and item feature values as of one time, by code: a :class:`FeatureSnapshot`
    (training, evaluation) or the online store's values at a request
    (:mod:`~taxiway.recommend.ranking_online`). NaN is missing."""

    @property
    def user_columns(self) -> tuple[str, ...]:
        """The user columns, in the ranker's order."""
        ...

    @property
    def item_columns(self) -> tuple[str, ...]:
        """The item columns, in the ranker's order."""
        ...

    def for_users(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """len(codes) x len(user_columns): each (known, ``>= 0``) user code's row."""
        ...

    def for_items(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """len(codes) x len(item_columns): each item code's row."""
        ...


@dataclass(frozen=True, eq=False)
class FeatureSnapshot:
    """User and item features as of ``at_us`` (µs since the epoch, UTC); NaN is missing."""

    at_us: int
    user_columns: tuple[str, ...]
    user_values: NDArray[np.float32]
    """n_users x len(user_columns)."""
    item_columns: tuple[str, ...]
    item_values: NDArray[np.float32]
    """n_items x len(item_columns)."""

    def for_users(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """The rows of user ``codes`` (:class:`RankingValues`)."""
        return self.user_values[codes]

    def for_items(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """The rows of item ``codes`` (:class:`RankingValues`)."""
        return self.item_values[codes]

    def to_arrow(self) -> tuple[pa.Table, pa.Table]:
        """The user and item tables (one float32 column per feature)."""
        users = (
            pa.table({c: pa.array(self.user_values[:, i]) for i, c in enumerate(self.user_columns)})
            if self.user_columns
            else pa.table({"__rows": pa.array(np.zeros(len(self.user_values)))})
        )
        items = pa.table(
            {c: pa.array(self.item_values[:, i]) for i, c in enumerate(self.item_columns)}
        )
        return users, items


FeaturesAt = Callable[[int], FeatureSnapshot]
"""A snapshot builder: the features as of a time in µs."""


class Snapshots:
    """Snapshots sorted by time; :meth:`at` picks the one valid at a time."""

    def __init__(self, snapshots: Sequence[FeatureSnapshot]) -> None:
        self.snapshots = sorted(snapshots, key=lambda s: s.at_us)

    def at(self, at_us: int) -> FeatureSnapshot | None:
        """The newest snapshot taken at or before ``at_us`` (None when all are later)."""
        times = [s.at_us for s in self.snapshots]
        index = int(np.searchsorted(times, at_us, side="right")) - 1
        return self.snapshots[index] if index >= 0 else None

    def save(self, folder: Path) -> list[dict[str, Any]]:
        """Write each snapshot as two Arrow IPC files; returns their index for a json file."""
        folder.mkdir(parents=True, exist_ok=True)
        index = []
        for number, snapshot in enumerate(self.snapshots):
            users, items = snapshot.to_arrow()
            _write(folder / f"{number}-users.arrow", users)
            _write(folder / f"{number}-items.arrow", items)
            index.append(
                {
                    "at_us": snapshot.at_us,
                    "at": datetime.fromtimestamp(snapshot.at_us / 1e6, UTC).isoformat(),
                    "users": f"{number}-users.arrow",
                    "items": f"{number}-items.arrow",
                    "user_columns": list(snapshot.user_columns),
                    "item_columns": list(snapshot.item_columns),
                }
            )
        return index

    @classmethod
    def load(cls, folder: Path, index: list[dict[str, Any]]) -> Snapshots:
        """The snapshots :meth:`save` wrote in ``folder`` with that ``index``."""
        out = []
        for entry in index:
            users, items = _read(folder / entry["users"]), _read(folder / entry["items"])
            user_columns = tuple(entry["user_columns"])
            item_columns = tuple(entry["item_columns"])
            out.append(
                FeatureSnapshot(
                    at_us=int(entry["at_us"]),
                    user_columns=user_columns,
                    user_values=_matrix(users, user_columns),
                    item_columns=item_columns,
                    item_values=_matrix(items, item_columns),
                )
            )
        return cls(out)


def popularity_snapshot(interactions: Interactions, at_us: int) -> FeatureSnapshot:
    """Each item's interaction count strictly before ``at_us`` (no user feature)."""
    before = interactions.at < at_us
    counts = np.bincount(interactions.item[before], minlength=interactions.n_items)
    return FeatureSnapshot(
        at_us=at_us,
        user_columns=(),
        user_values=np.zeros((interactions.n_users, 0), dtype=np.float32),
        item_columns=POPULARITY_COLUMNS,
        item_values=counts.astype(np.float32)[:, None],
    )


ViewValues = Callable[
    [int], tuple[tuple[str, ...], NDArray[np.float32], tuple[str, ...], NDArray[np.float32]]
]
"""Feature views as of a time: user columns, user values, item columns, item values."""


def snapshot_builder(interactions: Interactions, views: ViewValues | None = None) -> FeaturesAt:
    """Snapshots from ``interactions`` (popularity, each read strictly before the time) and
    ``views`` (the spec's feature views as of the time, :func:`view_values`)."""

    def build(at_us: int) -> FeatureSnapshot:
        base = popularity_snapshot(interactions, at_us)
        if views is None:
            return base
        user_columns, user_values, item_columns, item_values = views(at_us)
        return FeatureSnapshot(
            at_us=at_us,
            user_columns=user_columns,
            user_values=user_values,
            item_columns=base.item_columns + item_columns,
            item_values=np.hstack([base.item_values, item_values]).astype(np.float32),
        )

    return build


@dataclass(frozen=True)
class ViewSides:
    """The ranking's feature views split by whom they describe."""

    user: tuple[str, ...]
    item: tuple[str, ...]


def view_sides(project: Project, recommend: RecommendSpec) -> ViewSides:
    """Which of ``recommend.ranking.features`` describe users and which items, by their
    entity's key column; any other view is refused with the fix."""
    spec = project.spec
    names = recommend.ranking.features if recommend.ranking is not None else []
    user_column = recommend.interactions.user
    item_columns = {recommend.catalog.item, recommend.interactions.item}
    users: list[str] = []
    items: list[str] = []
    for name in names:
        view = spec.features.get(name)
        if view is None:
            raise ModelError(
                f"recommend.ranking.features names `{name}`, which is not a feature view",
                fix="declare it under `features:` or remove it (`taxiway check` lists both)",
            )
        keys = spec.entity_keys(view.entity)
        if keys == (user_column,):
            users.append(name)
        elif len(keys) == 1 and keys[0] in item_columns:
            items.append(name)
        else:
            raise ModelError(
                f"feature view `{name}` is keyed by entity `{view.entity}` "
                f"({', '.join(keys)}), neither the user (`{user_column}`) nor the item "
                f"(`{recommend.catalog.item}`): the ranker cannot join it to a (user, item) pair",
                fix=f"key `{name}` by an entity whose key is `{user_column}` or "
                f"`{recommend.catalog.item}`, or drop it from recommend.ranking.features",
            )
    return ViewSides(tuple(users), tuple(items))


def view_values(
    project: Project,
    sides: ViewSides,
    *,
    users: NDArray[np.object_],
    items: NDArray[np.object_],
    moments: Sequence[int],
    as_of: datetime | None = None,
) -> ViewValues:
    """The views' values at each of ``moments`` (µs), computed now through taxiway's offline
    feature path (sources staged with their contracts, as of ``as_of``), then answered from
    memory: the returned function accepts only those moments."""
    spec = project.spec
    views = list(sides.user) + list(sides.item)
    computed: dict[int, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
    user_columns: list[str] = []
    item_columns: list[str] = []
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        sources = list(dict.fromkeys(spec.features[v].source for v in views))
        staged = stage_sources(
            project, con, sources, run_id=run_id, as_of=as_of, keep_quarantine=False
        )
        for moment in dict.fromkeys(moments):
            when = datetime.fromtimestamp(moment / 1e6, UTC)
            blocks: dict[str, list[NDArray[np.float32]]] = {"user": [], "item": []}
            names: dict[str, list[str]] = {"user": [], "item": []}
            for side, ids, side_views in (
                ("user", users, sides.user),
                ("item", items, sides.item),
            ):
                codes = {str(v): code for code, v in enumerate(ids.tolist())}
                for name in side_views:
                    columns, values = _view_at(
                        con, project, name, staged[spec.features[name].source].view, when, codes
                    )
                    names[side] += columns
                    blocks[side].append(values)
            user_columns, item_columns = names["user"], names["item"]
            computed[moment] = (
                _stack(blocks["user"], len(users)),
                _stack(blocks["item"], len(items)),
            )
    except duckdb.Error as error:
        raise FeatureError(
            f"the ranking's feature views cannot be computed: {str(error).splitlines()[0]}",
            fix="check the views recommend.ranking.features names (`taxiway check`)",
        ) from None
    finally:
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)

    def at(
        moment: int,
    ) -> tuple[tuple[str, ...], NDArray[np.float32], tuple[str, ...], NDArray[np.float32]]:
        if moment not in computed:
            raise ModelError(
                f"the feature views were computed at {sorted(computed)}, not at {moment}",
                fix="pass every moment the ranker needs to view_values",
            )
        user_values, item_values = computed[moment]
        return tuple(user_columns), user_values, tuple(item_columns), item_values

    return at


def _view_at(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    name: str,
    source_view: str,
    when: datetime,
    codes: dict[str, int],
) -> tuple[list[str], NDArray[np.float32]]:
    """One view's columns as of ``when`` for every key known then, as a dense matrix by code."""
    spec = project.spec
    view = spec.features[name]
    source = spec.sources[view.source]
    keys = spec.entity_keys(view.entity)
    spine = f"__rank_spine_{name}"
    as_of_spine(
        con,
        [(source_view, source.timestamp, interval(source.available_after))],
        keys,
        when,
        spine,
    )
    columns = compute_view(con, spec, name, source_view, spine, f"__rank_f_{name}")
    wanted = [c.name for c in columns]
    picked = ", ".join(f"f.{q(c)}" for c in wanted)
    table = con.sql(
        f"SELECT s.{q(keys[0])} AS __key, {picked} FROM {q(spine)} AS s "  # nosec B608
        f"JOIN {q(f'__rank_f_{name}')} AS f USING (__sid)"
    ).to_arrow_table()
    out = np.full((len(codes), len(wanted)), np.nan, dtype=np.float32)
    rows = np.array([codes.get(str(k), -1) for k in table["__key"].to_pylist()], dtype=np.int64)
    known = rows >= 0
    for index, column in enumerate(wanted):
        out[rows[known], index] = _numbers(table[column], name, column)[known]
    return wanted, out


def _numbers(column: pa.ChunkedArray[Any], view: str, name: str) -> NDArray[np.float32]:
    """A feature column as float32 (booleans 0/1, times as epoch seconds, null as NaN)."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        column = pc.divide(pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64()), pa.scalar(1e6))
    elif not any(
        test(kind)
        for test in (
            pa.types.is_boolean,
            pa.types.is_decimal,
            pa.types.is_integer,
            pa.types.is_floating,
        )
    ):
        raise FeatureError(
            f"feature `{name}` of view `{view}` is {kind}: the ranker takes numbers, booleans "
            "and times",
            fix=f"rank on a numeric column (a count, a flag) instead of `{name}`, or drop "
            f"`{view}` from recommend.ranking.features",
        )
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32)


def _stack(blocks: list[NDArray[np.float32]], rows: int) -> NDArray[np.float32]:
    if not blocks:
        return np.zeros((rows, 0), dtype=np.float32)
    return np.hstack(blocks).astype(np.float32)


def _matrix(table: pa.Table, columns: tuple[str, ...]) -> NDArray[np.float32]:
    if not columns:
        return np.zeros((table.num_rows, 0), dtype=np.float32)
    return np.column_stack([table[c].to_numpy(zero_copy_only=False) for c in columns]).astype(
        np.float32
    )


def _write(path: Path, table: pa.Table) -> None:
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def _read(path: Path) -> pa.Table:
    try:
        with pa.OSFile(str(path), "rb") as source:
            return ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        raise ModelError(
            f"cannot read {path}: {error}", fix="train the recommender again"
        ) from error
