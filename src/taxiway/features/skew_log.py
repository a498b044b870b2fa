"""`taxiway features skew --from-log`: what the service used, against training's value at that time.

`taxiway features skew` compares the online store with the offline SQL at one time; this
compares real answers. For a sample of the prediction log's answers on the ``model`` path, the
spine is (entity keys, ``ts``) of each answer, every feature of the answer's entities is
recomputed with the training set's point-in-time SQL (:func:`taxiway.features.pit.compute_view`)
at exactly ``ts``, and compared with the value the service logged as used:

- numbers within :data:`~taxiway.features.skew.REL_TOL` (relative), anything else exactly
  (:func:`~taxiway.features.skew.same_value`); null only equals null;
- a value served as null because the key was unknown online (``missing``) equals an offline
  value of a key that nothing known at ``ts`` mentions either (no row of any of the entity's
  sources is known then); when the offline side knows the key (its counts are 0, its profile
  is there), the online store was behind and the value is *different*;
- a ``stale`` value (served as null: older than the view's ttl at lookup) equals an offline
  null (training also sees nothing younger than the ttl at ``ts``), and differs from an offline
  value (a row the store never got).

The lookup's status of each value is taken from the record's ``unavailable`` mapping when the
service logs one, else from its ``reason`` (``online features missing: a; stale: b``, the text
:mod:`taxiway.serving.predictor` writes); either way it only explains a difference, since the
rules above decide on the values.

Skipped, with the reason, never compared: request fields (the caller's, not the store's), PII
(masked in the log; the offline value is not printed either), features of a view whose
definition changed since the online store was materialized (its ``definition`` hash in
``materialized.json`` differs from the spec's: the served values come from the old one),
features the logged answer lacks (a view added since), and every feature of an answer whose
entity key was masked or not logged. Values of a key that nothing known at the answer's time
mentions are compared as the missing rule says.

Sampling is deterministic: the ``sample`` answers with the smallest hash of their request id,
so a rerun on the same log compares the same answers, and a uniform sample of the log.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import shutil
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from taxiway.data.contracts.loader import load_contract
from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.engines.duckdb import quote_identifier as q
from taxiway.errors import TaxiwayError
from taxiway.features.definitions import view_columns
from taxiway.features.materialize import STATE_FILE, encode_key, plain_value, view_hash
from taxiway.features.pit import compute_view, interval
from taxiway.features.skew import REL_TOL, same_value
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project

__all__ = [
    "EXAMPLES",
    "Difference",
    "FeatureSkew",
    "LogSkewReport",
    "LoggedAnswer",
    "check_skew_from_log",
    "logged_statuses",
    "pii_columns",
    "sample_answers",
]

EXAMPLES = 5
"""Differences kept per feature as examples."""

SKIP_PII = "PII (masked in the log; neither compared nor printed)"
SKIP_REQUEST = "request field (sent by the caller, not read from the online store)"
SKIP_KEY_MASKED = "entity key masked in the log (PII)"
SKIP_NOT_LOGGED = "not in the logged answer (a view added since it was served)"
SKIP_NOT_IN_SPEC = "not a feature of the spec now (a view or feature removed since)"

_PATH_MODEL = re.compile(rb'"path"\s*:\s*"model"')
_EVERY_MISSING = "every online feature is missing"
_SOME = "online features "


@dataclass(frozen=True)
class LoggedAnswer:
    """One answer of the log, as the comparison needs it."""

    request_id: str
    ts: datetime
    entities: dict[str, Any]  # entity -> its logged key (text, number or {column: value})
    values: dict[str, Any]  # every value the service used: request fields and online features
    request: frozenset[str]  # the request fields' names
    statuses: dict[str, str]  # feature -> missing | stale (others were present)
    every_missing: bool  # the service found nothing at all for the answer's keys


@dataclass(frozen=True)
class Difference:
    """One served value that is not training's value at the answer's time."""

    request_id: str
    entity: str
    key: str
    ts: str
    served: Any
    offline: Any
    status: str  # the lookup's: present, missing or stale
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class FeatureSkew:
    """One feature's tally over the sampled answers."""

    compared: int = 0
    equal: int = 0
    different: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # compared values served missing/stale
    examples: list[Difference] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> answers

    def skip(self, reason: str) -> None:
        """Count one answer skipped for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "compared": self.compared,
            "equal": self.equal,
            "different": self.different,
            "statuses": self.statuses,
            "examples": [e.as_dict() for e in self.examples],
            "skipped": self.skipped,
        }


@dataclass
class LogSkewReport:
    """The result of comparing a sample of logged answers with the offline values."""

    since: datetime | None
    answers: int = 0  # answers on the model path (since ``since``) in the log
    sampled: int = 0
    first: datetime | None = None
    last: datetime | None = None
    features: dict[str, FeatureSkew] = field(default_factory=dict)

    @property
    def compared(self) -> int:
        """Values compared, over every feature."""
        return sum(f.compared for f in self.features.values())

    @property
    def different(self) -> int:
        """Values that differ, over every feature."""
        return sum(f.different for f in self.features.values())

    def feature(self, name: str) -> FeatureSkew:
        """The tally of ``name`` (created on first use)."""
        found = self.features.get(name)
        if found is None:
            found = self.features[name] = FeatureSkew()
        return found

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "answers": self.answers,
            "sampled": self.sampled,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "tolerance": REL_TOL,
            "compared": self.compared,
            "different": self.different,
            "features": {name: f.as_dict() for name, f in self.features.items()},
        }


def pii_columns(spec: TaxiwaySpec) -> set[str]:
    """Columns marked PII in any source's contract, and the feature columns built from them
    (``<view>__<column>``): the names the prediction log masks."""
    pii: set[str] = set()
    for source in spec.sources.values():
        if source.contract is None:
            continue
        try:
            contract = load_contract(source.contract)
        except TaxiwayError:
            continue
        for obj in contract.schema_:
            pii.update(prop.name for prop in obj.properties if prop.pii)
    for name, view in spec.features.items():
        pii.update(c for c in view.output_names(name) if any(c.endswith(f"__{p}") for p in pii))
    return pii


def logged_statuses(record: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
    """The lookup statuses an answer's record states: (feature → missing/stale, whether every
    online feature was missing). From ``unavailable`` when logged, else from ``reason``.

    >>> logged_statuses({"reason": "online features missing: a__x, a__y; stale: b__z"})
    ({'a__x': 'missing', 'a__y': 'missing', 'b__z': 'stale'}, False)
    >>> logged_statuses({"reason": "every online feature is missing (no stored features for c 1)"})
    ({}, True)
    >>> logged_statuses({"unavailable": {"a__x": "stale"}, "reason": None})
    ({'a__x': 'stale'}, False)
    """
    given = record.get("unavailable")
    if isinstance(given, Mapping):
        return {str(k): str(v) for k, v in given.items()}, False
    if isinstance(given, list):
        return {str(pair[0]): str(pair[1]) for pair in given if len(pair) == 2}, False
    reason = record.get("reason")
    if not isinstance(reason, str):
        return {}, False
    if reason.startswith(_EVERY_MISSING):
        return {}, True
    if not reason.startswith(_SOME):
        return {}, False
    statuses: dict[str, str] = {}
    for part in reason.removeprefix(_SOME).split("; "):
        status, _, names = part.partition(": ")
        if status in ("missing", "stale"):
            statuses.update(dict.fromkeys((n.strip() for n in names.split(",")), status))
    return statuses, False


def sample_answers(
    paths: Iterable[Path], *, sample: int, since: datetime | None = None
) -> tuple[list[LoggedAnswer], int]:
    """(the sampled answers, how many answers on the model path since ``since`` were read)
    from the JSON-lines log files ``paths``: the ``sample`` with the smallest request-id hash.

    Torn or foreign lines are skipped, as every log reader does.
    """
    counted = [0]

    def answers() -> Iterator[tuple[bytes, LoggedAnswer]]:
        for path in paths:
            try:
                handle = path.open("rb")
            except OSError:  # deleted by retention meanwhile
                continue
            with handle:
                for line in handle:
                    if not _PATH_MODEL.search(line):
                        continue
                    answer = _answer_of(line, since)
                    if answer is not None:
                        counted[0] += 1
                        digest = hashlib.blake2b(answer.request_id.encode(), digest_size=8)
                        yield digest.digest(), answer

    chosen = heapq.nsmallest(max(0, sample), answers(), key=lambda pair: pair[0])
    picked = sorted((a for _, a in chosen), key=lambda a: (a.ts, a.request_id))
    return picked, counted[0]


def _answer_of(line: bytes, since: datetime | None) -> LoggedAnswer | None:
    try:
        record = orjson.loads(line)
        if not isinstance(record, dict) or record.get("path") != "model":
            return None
        ts = datetime.fromisoformat(str(record["ts"]))
    except (orjson.JSONDecodeError, KeyError, ValueError):
        return None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    entities, values = record.get("entities"), record.get("features")
    if since is not None and ts < since:
        return None
    if not isinstance(entities, dict) or not entities or not isinstance(values, dict):
        return None
    request = record.get("request")
    statuses, every_missing = logged_statuses(record)
    return LoggedAnswer(
        request_id=str(record.get("request_id")),
        ts=ts,
        entities=entities,
        values=values,
        request=frozenset(request) if isinstance(request, dict) else frozenset(),
        statuses=statuses,
        every_missing=every_missing,
    )


def check_skew_from_log(
    project: Project,
    paths: Iterable[Path],
    *,
    sample: int = 1000,
    since: datetime | None = None,
    mask: str = "***",
    pii: Collection[str] | None = None,
) -> LogSkewReport:
    """Compare a sample of the answers logged in ``paths`` with the offline values at their
    times (see the module's text). ``mask`` is the text the log writes for a PII value and
    ``pii`` the masked names (default: :func:`pii_columns` of the spec)."""
    spec = project.spec
    moment = None if since is None else since.astimezone(UTC)
    answers, read = sample_answers(paths, sample=sample, since=moment)
    report = LogSkewReport(since=moment, answers=read, sampled=len(answers))
    if not answers:
        return report
    report.first, report.last = answers[0].ts, answers[-1].ts
    hidden = set(pii_columns(spec) if pii is None else pii)
    state = _materialized(project)
    changed = {
        name
        for name in spec.features
        if state.get(name, {}).get("definition") not in (None, view_hash(spec, name))
    }
    plan = _plan(spec, answers, hidden, changed, mask, report)
    if not plan:
        return report
    offline, known = _offline(project, spec, answers, plan, changed, report.last)
    for (index, entity), names in plan.items():
        answer = answers[index]
        for name in names:
            served = answer.values[name]
            value = offline[index].get(name)
            status = "missing" if answer.every_missing else answer.statuses.get(name, "present")
            tally = report.feature(name)
            tally.compared += 1
            if status != "present":
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if (served is None and not known[index, entity]) or same_value(served, value):
                tally.equal += 1
                continue
            tally.different += 1
            if len(tally.examples) < EXAMPLES:
                tally.examples.append(
                    Difference(
                        request_id=answer.request_id,
                        entity=entity,
                        key=_key_text(spec, entity, answer.entities[entity]),
                        ts=answer.ts.isoformat(),
                        served=served,
                        offline=plain_value(value),
                        status=status,
                        note=_note(state, name, answer.ts, known[index, entity]),
                    )
                )
    return report


def _plan(
    spec: TaxiwaySpec,
    answers: list[LoggedAnswer],
    hidden: set[str],
    changed: set[str],
    mask: str,
    report: LogSkewReport,
) -> dict[tuple[int, str], list[str]]:
    """(answer index, entity) → the features to compare; every other logged value is counted
    as skipped with its reason."""
    outputs = {
        entity: {
            column: view_name
            for view_name, view in spec.features.items()
            if view.entity == entity
            for column in view.output_names(view_name)
        }
        for entity in spec.entities
    }
    every_output = {c for columns in outputs.values() for c in columns}
    plan: dict[tuple[int, str], list[str]] = {}
    for index, answer in enumerate(answers):
        seen: set[str] = set()
        for entity, logged in answer.entities.items():
            columns = outputs.get(entity, {})
            masked = _masked(logged, mask)
            for name, view_name in columns.items():
                seen.add(name)
                tally = report.feature(name)
                if name in hidden:
                    tally.skip(SKIP_PII)
                elif masked:
                    tally.skip(SKIP_KEY_MASKED)
                elif view_name in changed:
                    tally.skip(
                        f"the view `{view_name}` changed since it was materialized (definitions "
                        "hash): the values served come from its old definition"
                    )
                elif name not in answer.values:
                    tally.skip(SKIP_NOT_LOGGED)
                else:
                    plan.setdefault((index, entity), []).append(name)
        for name in answer.values:
            if name in seen:
                continue
            if name in answer.request or name not in every_output:
                reason = SKIP_REQUEST if name in answer.request else SKIP_NOT_IN_SPEC
                report.feature(name).skip(SKIP_PII if name in hidden else reason)
    return plan


def _masked(logged: Any, mask: str) -> bool:
    if isinstance(logged, dict):
        return any(v == mask for v in logged.values())
    return bool(logged == mask)


def _key_columns(spec: TaxiwaySpec, entity: str, logged: Any) -> tuple[str | None, ...]:
    """The key columns' values as text (the spine's type; sources' keys are cast to it)."""
    columns = spec.entity_keys(entity)
    if isinstance(logged, dict):
        return tuple(None if logged.get(c) is None else str(logged[c]) for c in columns)
    return (None if logged is None else str(logged),)


def _key_text(spec: TaxiwaySpec, entity: str, logged: Any) -> str:
    return encode_key(_key_columns(spec, entity, logged))


def _materialized(project: Project) -> dict[str, dict[str, str]]:
    """``materialized.json``: per view, the definition hash and time of the last run."""
    try:
        loaded = json.loads((project.state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return (
        {k: v for k, v in loaded.items() if isinstance(v, dict)} if isinstance(loaded, dict) else {}
    )


def _note(state: dict[str, dict[str, str]], name: str, ts: datetime, known: bool) -> str:
    """Why the values may differ, when the store's own state says so."""
    if not known:
        return "nothing known offline at this time mentions this key"
    as_of = state.get(name.split("__", 1)[0], {}).get("as_of")
    if as_of is None:
        return ""
    when = datetime.fromisoformat(as_of)
    if when < ts:
        return f"the view was last materialized at {when.isoformat()}, before the answer"
    return ""


def _offline(
    project: Project,
    spec: TaxiwaySpec,
    answers: list[LoggedAnswer],
    plan: dict[tuple[int, str], list[str]],
    changed: set[str],
    last: datetime | None,
) -> tuple[dict[int, dict[str, Any]], dict[tuple[int, str], bool]]:
    """Each planned answer's offline values at its time, and whether anything known then (a
    row of any source of the entity's views) mentions its key."""
    entities = list(dict.fromkeys(entity for _, entity in plan))
    views = {
        name: view
        for name, view in spec.features.items()
        if view.entity in entities and name not in changed
    }
    sources = [s for s in spec.sources if any(v.source == s for v in views.values())]
    offline: dict[int, dict[str, Any]] = {index: {} for index, _ in plan}
    known: dict[tuple[int, str], bool] = {}
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        staged = stage_sources(
            project, con, sources, run_id=run_id, as_of=last, keep_quarantine=False
        )
        for entity in entities:
            keys = spec.entity_keys(entity)
            rows = [(index, answers[index]) for index, e in plan if e == entity]
            spine = f"__skew_log_{entity}"
            columns: dict[str, list[Any]] = {"__sid": [i for i, _ in rows]}
            for position, key in enumerate(keys):
                columns[key] = [
                    _key_columns(spec, entity, a.entities[entity])[position] for _, a in rows
                ]
            columns["__t"] = [a.ts.replace(tzinfo=None) for _, a in rows]
            table = pa.table(
                {
                    "__sid": pa.array(columns["__sid"], pa.int64()),
                    **{k: pa.array(columns[k], pa.string()) for k in keys},
                    "__t": pa.array(columns["__t"], pa.timestamp("us")),
                }
            )
            con.register("__skew_log_rows", table)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {q(spine)} AS SELECT * FROM __skew_log_rows")  # nosec B608
            con.unregister("__skew_log_rows")
            entity_views = {n: v for n, v in views.items() if v.entity == entity}
            for view_name, view in entity_views.items():
                names = [c.name for c in view_columns(view_name, view)]
                compute_view(con, spec, view_name, staged[view.source].view, spine, "__skew_log_f")
                fetched = con.execute(
                    f"SELECT __sid, {', '.join(q(n) for n in names)} FROM __skew_log_f"  # nosec B608
                ).fetchall()
                for row in fetched:
                    offline[int(row[0])].update(zip(names, row[1:], strict=True))
            known_sources = [
                (
                    staged[s].view,
                    spec.sources[s].timestamp,
                    interval(spec.sources[s].available_after),
                )
                for s in dict.fromkeys(v.source for v in entity_views.values())
            ]
            for index, flag in _known(con, keys, spine, known_sources):
                known[index, entity] = flag
    finally:
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    return offline, known


def _known(
    con: Any, keys: tuple[str, ...], spine: str, sources: list[tuple[str, str | None, str]]
) -> list[tuple[int, bool]]:
    """(spine row, whether a row of any of ``sources`` known at its time has its key)."""
    key_list = ", ".join(q(k) for k in keys)
    cast = ", ".join(f"CAST({q(k)} AS VARCHAR) AS {q(k)}" for k in keys)
    present = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
    parts = []
    for view, timestamp, available_after in sources:
        first = (
            f"CAST({q(timestamp)} AS TIMESTAMP) + {available_after}"
            if timestamp
            else "TIMESTAMP '-infinity'"
        )
        parts.append(f"SELECT {cast}, {first} AS __first FROM {q(view)} WHERE {present}")  # nosec B608
    union = " UNION ALL ".join(parts)
    on = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in keys)
    rows = con.execute(
        f"WITH f AS (SELECT {key_list}, min(__first) AS __first FROM ({union}) "  # nosec B608
        f"SEMI JOIN {q(spine)} USING ({key_list}) GROUP BY ALL) "
        f"SELECT s.__sid, coalesce(f.__first <= s.__t, false) FROM {q(spine)} AS s "
        f"LEFT JOIN f ON {on}"
    ).fetchall()
    return [(int(sid), bool(flag)) for sid, flag in rows]
