"""`taxiway features skew`: the online vector against the offline value at the same time.

For a sample of entity keys, the offline value is recomputed at T with the training-set SQL and
compared with what the online store serves for T. Any difference is a mismatch, reported
with both values; there should be none, since both come from one definition.

A tiled view (``tiles:``) is served from its time tiles, computed at the lookup's time, not
from its materialized snapshot: its online value is the lookup at T (tiles merged over the
windows ending at T), so the check covers the tiles, and a tile whose state no longer matches
the history (a bad stream write, a tampered store) shows as skew.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.engines.duckdb import quote_identifier as q
from taxiway.features.definitions import view_columns
from taxiway.features.lookup import FeatureValue, lookup
from taxiway.features.materialize import encode_key, plain_value
from taxiway.features.online.base import OnlineStore
from taxiway.features.pit import compute_view, interval
from taxiway.features.spine import as_of_spine
from taxiway.features.tiles import tiled_views
from taxiway.spec.project import Project

__all__ = ["REL_TOL", "Mismatch", "SkewReport", "check_skew", "same_value"]

REL_TOL = 1e-9
"""How far apart (relative) two numbers may be and still be one value: both sides are float64
computed by the same SQL, so only DuckDB's summation order can move them, by about n x 2e-16
for a window of n rows (1e-13 at 1,000 rows); 1e-9 leaves four orders of margin and still
catches a changed amount of one cent in a million."""


@dataclass(frozen=True)
class Mismatch:
    """One feature whose online and offline values differ."""

    entity: str
    key: str
    feature: str
    online: Any
    offline: Any
    reason: str


@dataclass
class SkewReport:
    """The result of a skew check."""

    as_of: datetime
    compared: int = 0
    entities: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "as_of": self.as_of.isoformat(),
            "entities": self.entities,
            "compared": self.compared,
            "mismatches": [m.__dict__ for m in self.mismatches],
        }


def check_skew(
    project: Project, store: OnlineStore, *, as_of: datetime, sample: int = 100, seed: int = 0
) -> SkewReport:
    """Compare ``sample`` keys per entity (a deterministic sample) online versus offline."""
    spec = project.spec
    moment = as_of.astimezone(UTC)
    report = SkewReport(as_of=moment)
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        sources = sorted({v.source for v in spec.features.values()}, key=list(spec.sources).index)
        staged = stage_sources(
            project, con, sources, run_id=run_id, as_of=moment, keep_quarantine=False
        )
        for entity in dict.fromkeys(v.entity for v in spec.features.values()):
            keys = spec.entity_keys(entity)
            views = {n: v for n, v in spec.features.items() if v.entity == entity}
            key_sources = [
                (
                    staged[v.source].view,
                    spec.sources[v.source].timestamp,
                    interval(spec.sources[v.source].available_after),
                )
                for v in views.values()
            ]
            spine = f"__skew_{entity}"
            as_of_spine(con, key_sources, keys, moment, spine)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {q(spine)} AS SELECT * FROM {q(spine)} "  # nosec B608
                f"ORDER BY hash(__sid + {int(seed)}) LIMIT {int(sample)}"
            )
            offline: dict[str, dict[str, Any]] = {}
            for view_name, view in views.items():
                names = [c.name for c in view_columns(view_name, view)]
                compute_view(con, spec, view_name, staged[view.source].view, spine, "__skew_f")
                key_list = ", ".join(f"s.{q(k)}" for k in keys)
                rows = con.execute(
                    f"SELECT {key_list}, {', '.join(f'f.{q(n)}' for n in names)} "  # nosec B608
                    f"FROM {q(spine)} AS s JOIN __skew_f AS f USING (__sid)"
                ).fetchall()
                for row in rows:
                    values = offline.setdefault(encode_key(tuple(row[: len(keys)])), {})
                    values.update(dict(zip(names, row[len(keys) :], strict=True)))
            online = store.read(entity, list(offline))
            at_tiles = _tiled_at(project, store, entity, list(offline), moment)
            report.entities += len(offline)
            for key, expected in offline.items():
                served = {
                    name: value for v in online.get(key, []) for name, value in v.values.items()
                }
                as_of_by_view = {v.view: v.as_of for v in online.get(key, [])}
                for name, value in expected.items():
                    report.compared += 1
                    view_name = name.split("__", 1)[0]
                    tiled = at_tiles.get(key, {}).get(name)
                    if tiled is not None:
                        mismatch = _tiled_mismatch(entity, key, name, tiled, value)
                        if mismatch is not None:
                            report.mismatches.append(mismatch)
                    elif name not in served:
                        report.mismatches.append(
                            Mismatch(
                                entity,
                                key,
                                name,
                                None,
                                plain_value(value),
                                "not in the online store",
                            )
                        )
                    elif not same_value(served[name], value):
                        when = as_of_by_view.get(view_name)
                        reason = (
                            "values differ"
                            if when is None or when >= moment
                            else f"online values are as of {when.isoformat()}, older than T"
                        )
                        report.mismatches.append(
                            Mismatch(entity, key, name, served[name], plain_value(value), reason)
                        )
    finally:
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    return report


def _tiled_at(
    project: Project, store: OnlineStore, entity: str, keys: list[str], moment: datetime
) -> dict[str, dict[str, FeatureValue]]:
    """Key → each feature of ``entity``'s tiled views as a lookup at ``moment`` serves it
    (from the tiles); empty when the entity has no tiled view or the store keeps no tiles
    (its tiled views then serve their snapshot, compared as any other view's)."""
    tiled = set(tiled_views(project.spec, entity))
    if not tiled or not keys or getattr(store, "tiles", None) is None:
        return {}
    return {
        found.key: {
            name: value for name, value in found.features.items() if name.split("__", 1)[0] in tiled
        }
        for found in lookup(project.spec, store, entity, keys, now=moment)
    }


def _tiled_mismatch(
    entity: str, key: str, name: str, served: FeatureValue, offline: Any
) -> Mismatch | None:
    """The mismatch of one tiled feature served at T against its offline value, if any."""
    if served.status != "present":
        return Mismatch(
            entity,
            key,
            name,
            None,
            plain_value(offline),
            "no tile in range and not in the online store "
            "(run `taxiway features materialize` or `taxiway features compact`)",
        )
    if same_value(served.value, offline):
        return None
    return Mismatch(
        entity,
        key,
        name,
        served.value,
        plain_value(offline),
        "the tiles' value at T differs (rebuild them: `taxiway features compact`)",
    )


def same_value(online: Any, offline: Any) -> bool:
    """Whether a served value and an offline one are the same value: numbers within
    :data:`REL_TOL` (relative), anything else exactly (after :func:`plain_value`, so a
    timestamp compares as its text); None only equals None.

    >>> same_value(3, 3.0), same_value(0.1 + 0.2, 0.3), same_value("a", "b"), same_value(None, 0)
    (True, True, False, False)
    """
    offline = plain_value(offline)
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(online, int | float) and isinstance(offline, int | float):
        return math.isclose(float(online), float(offline), rel_tol=REL_TOL, abs_tol=1e-12)
    return bool(online == offline)
