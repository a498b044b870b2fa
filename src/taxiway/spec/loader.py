"""Load ``taxiway.yaml`` into a :class:`TaxiwaySpec`, or fail with every problem located.

>>> spec = load_spec_text("name: demo\\nowner: growth\\n", "taxiway.yaml")
>>> spec.name, spec.owner
('demo', 'growth')
>>> load_spec_text("name: demo\\nownr: growth\\n", "taxiway.yaml")
Traceback (most recent call last):
...
taxiway.errors.SpecError: taxiway.yaml:2:1: ownr: unknown key `ownr`
  expected: one of description, ...
  did you mean `owner`?
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from taxiway.errors import SpecError, SpecIssue
from taxiway.spec.durations import format_duration
from taxiway.spec.models import (
    AggregateView,
    ColumnLabel,
    EventLabel,
    EventSpine,
    LatestView,
    PeriodicSpine,
    PostgresSource,
    StaticView,
    SumLabel,
    TaxiwaySpec,
)
from taxiway.spec.recommend import AlreadySeenFilter, DenyFilter, RecommendSpec, UnavailableFilter
from taxiway.spec.yaml import YamlDocument, did_you_mean, issues_from_validation, parse_yaml

__all__ = ["DEFAULT_SPEC_NAME", "find_spec", "load_spec", "load_spec_text"]

DEFAULT_SPEC_NAME = "taxiway.yaml"


def find_spec(path: str | Path | None = None) -> Path:
    """The spec file to use: ``path`` if given (a file, or a folder holding taxiway.yaml), else
    ``./taxiway.yaml``. Raise :class:`SpecError` with the fix when there is none."""
    candidate = Path(path) if path is not None else Path.cwd() / DEFAULT_SPEC_NAME
    if candidate.is_dir():
        candidate = candidate / DEFAULT_SPEC_NAME
    if not candidate.is_file():
        shown = str(candidate)
        raise SpecError(
            SpecIssue(shown, None, None, "", "spec file not found"),
            fix="run taxiway in the folder that holds taxiway.yaml, or pass -f PATH "
            "(try examples/retail/taxiway.yaml)",
        )
    return candidate


def load_spec(path: str | Path | None = None) -> TaxiwaySpec:
    """Read, validate and cross-check the spec at ``path`` (see :func:`find_spec`)."""
    file = find_spec(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(
            SpecIssue(str(file), None, None, "", f"cannot read the spec: {error}")
        ) from None
    return load_spec_text(text, str(file), base_dir=file.resolve().parent)


def load_spec_text(
    text: str, file: str = DEFAULT_SPEC_NAME, base_dir: Path | None = None
) -> TaxiwaySpec:
    """Validate spec ``text``; ``file`` names it in errors, ``base_dir`` anchors relative paths."""
    document = parse_yaml(text, file)
    if document.data is None:
        raise SpecError(
            SpecIssue(file, 1, 1, "", "the spec is empty"),
            fix="start from examples/retail/taxiway.yaml; at least `name:` is required",
        )
    if not isinstance(document.data, dict):
        raise SpecError(
            SpecIssue(file, 1, 1, "", "the spec must be a mapping of keys such as name:, sources:")
        )
    try:
        spec = TaxiwaySpec.model_validate(document.data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise SpecError(issues_from_validation(error, document, TaxiwaySpec)) from None
    issues = cross_check(spec, document)
    if issues:
        raise SpecError(sorted(issues, key=lambda i: (i.line or 0, i.column or 0)))
    return spec


def cross_check(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """References between sections: every named source and entity exists, views fit sources."""
    issues = _view_issues(spec, doc)
    issues.extend(_split_issues(spec, doc))
    issues.extend(_spine_issues(spec, doc))
    issues.extend(_label_issues(spec, doc))
    issues.extend(_model_issues(spec, doc))
    issues.extend(_serving_issues(spec, doc))
    issues.extend(_column_label_issues(spec, doc))
    issues.extend(_recommend_issues(spec, doc))
    issues.extend(_interleaving_issues(spec, doc))
    issues.extend(_opt_out_issues(spec, doc))
    return issues


def _split_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """A PostgreSQL source split into several JDBC reads names a column to split on."""
    issues = []
    for name, source in spec.sources.items():
        if not isinstance(source, PostgresSource) or (source.partitions or 1) <= 1:
            continue
        if source.partition_column is None and source.timestamp is None:
            issues.append(
                doc.issue(
                    ("sources", name, "partitions"),
                    f"`partitions: {source.partitions}` needs a column to split the read on",
                    expected="`partition_column:` naming a numeric, date or timestamp column "
                    "(or the source's `timestamp:`), or no `partitions:`",
                )
            )
    return issues


def _opt_out_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """The opt-out list's source and entity exist (the entity given, or the spine's)."""
    opt_out = spec.governance.opt_out if spec.governance is not None else None
    if opt_out is None:
        return []
    loc = ("governance", "opt_out")
    issues = _unknown(doc, "source", opt_out.source, spec.sources, (*loc, "source"))
    issues += _unknown(doc, "entity", opt_out.entity, spec.entities, (*loc, "entity"))
    spine = spec.spine
    label_entity = getattr(spec.label, "entity", None)
    if opt_out.entity is None and (spine is None or (spine.entity or label_entity) is None):
        issues.append(
            doc.issue(
                loc,
                "the opt-out list needs the entity whose keys it holds",
                expected="`entity:` naming one of the declared entities",
            )
        )
    return issues


def _unknown(
    doc: YamlDocument,
    kind: str,
    name: str | None,
    known: Mapping[str, object],
    loc: tuple[str | int, ...],
) -> list[SpecIssue]:
    """The issue of a reference to an undeclared ``kind`` (source, entity), if ``name`` is one."""
    if name is None or name in known:
        return []
    plural = "entities" if kind == "entity" else f"{kind}s"
    choices = ", ".join(sorted(known)) or f"none declared: add an `{plural}:` section"
    return [
        doc.issue(
            loc,
            f"unknown {kind} `{name}`",
            expected=f"one of {choices}",
            suggestion=did_you_mean(name, known),
        )
    ]


def _view_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """Each view's source and entity exist, and the source has the event times it needs."""
    issues: list[SpecIssue] = []
    sources = spec.sources
    for view_name, view in spec.features.items():
        base = ("features", view_name)
        unknown_source = _unknown(doc, "source", view.source, sources, (*base, "source"))
        issues += unknown_source
        issues += _unknown(doc, "entity", view.entity, spec.entities, (*base, "entity"))
        if unknown_source:
            continue
        source = sources[view.source]
        if isinstance(view, StaticView) and source.timestamp is not None:
            issues.append(
                doc.issue(
                    (*base, "static"),
                    f"a static view needs a source without timestamps, but `{view.source}` has "
                    f"`timestamp: {source.timestamp}`",
                    suggestion="use `latest:` with a `ttl:` for time-stamped attributes",
                )
            )
        if isinstance(view, AggregateView) and source.timestamp is None:
            issues.append(
                doc.issue(
                    (*base, "aggregate"),
                    f"window aggregates need event times, but source `{view.source}` declares no "
                    "`timestamp`",
                    suggestion=f"add `timestamp: <column>` to sources.{view.source}",
                )
            )
        if isinstance(view, AggregateView):
            for index, window in enumerate(view.windows):
                if window <= source.available_after:
                    issues.append(
                        doc.issue(
                            (*base, "windows", index),
                            f"window {format_duration(window)} is not longer than source "
                            f"`{view.source}`'s available_after "
                            f"({format_duration(source.available_after)}), so it never holds a "
                            "known row",
                            suggestion="use a longer window, or drop it",
                        )
                    )
        if isinstance(view, LatestView) and view.ttl is not None and source.timestamp is None:
            issues.append(
                doc.issue(
                    (*base, "ttl"),
                    f"`ttl` needs event times, but source `{view.source}` declares no `timestamp`",
                )
            )
    return issues


def _spine_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """The spine's source and entity exist, and the source has event times."""
    spine, sources = spec.spine, spec.sources
    if spine is None:
        return []
    issues = _unknown(doc, "source", spine.source, sources, ("spine", "source"))
    issues += _unknown(doc, "entity", spine.entity, spec.entities, ("spine", "entity"))
    if spine.source in sources and sources[spine.source].timestamp is None:
        issues.append(
            doc.issue(
                ("spine", "source"),
                f"the spine needs event times, but source `{spine.source}` declares no `timestamp`",
            )
        )
    return issues


def _label_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """A forward-looking label's source and entity exist with event times; the label's name
    is no other column's; a periodic spine is keyed by the label's entity."""
    issues: list[SpecIssue] = []
    sources, entities = spec.sources, spec.entities
    label = spec.label
    if label is not None and not isinstance(label, ColumnLabel):
        issues += _unknown(doc, "source", label.source, sources, ("label", "source"))
        issues += _unknown(doc, "entity", label.entity, entities, ("label", "entity"))
        if label.source in sources and sources[label.source].timestamp is None:
            issues.append(
                doc.issue(
                    ("label", "source"),
                    f"a forward-looking label needs event times, but source `{label.source}` "
                    "declares no `timestamp`",
                )
            )
    if label is not None:
        taken = {"timestamp"} | {k for name in entities for k in spec.entity_keys(name)}
        taken |= {c for name, view in spec.features.items() for c in view.output_names(name)}
        if label.name in taken:
            issues.append(
                doc.issue(
                    ("label", "name"),
                    f"label name `{label.name}` is already a column of the training set "
                    "(the timestamp, a key or a feature)",
                    suggestion="give the label its own name, e.g. `churned`",
                )
            )
    if (
        isinstance(spec.spine, PeriodicSpine)
        and spec.spine.entity is not None
        and isinstance(label, EventLabel | SumLabel)
        and label.entity != spec.spine.entity
    ):
        issues.append(
            doc.issue(
                ("spine", "entity"),
                f"the spine is keyed by `{spec.spine.entity}` but the label looks at "
                f"`{label.entity}`: each prediction needs the label's entity",
                suggestion=f"use `entity: {label.entity}` or drop `spine.entity`",
            )
        )
    return issues


def _column_label_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """A `column` label needs an event spine."""
    label = spec.label
    if (
        isinstance(label, ColumnLabel)
        and spec.spine is not None
        and not isinstance(spec.spine, EventSpine)
    ):
        return [
            doc.issue(
                ("label", "kind"),
                "a `column` label is an expression on the spine row, so it needs an event spine "
                "(`spine: {source: ...}` without `every`)",
            )
        ]
    return []


def _model_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """`model:` names features, views and request fields that must exist."""
    model = spec.model
    if model is None:
        return []
    issues: list[SpecIssue] = []
    columns = {c: name for name, view in spec.features.items() for c in view.output_names(name)}
    if model.request_fields and not isinstance(spec.spine, EventSpine):
        issues.append(
            doc.issue(
                ("model", "request_fields"),
                "request fields are columns of the spine's row, so they need an event spine "
                "(`spine: {source: ...}` without `every`)",
            )
        )
    known = {**{c: c for c in columns}, **{v: v for v in spec.features}}
    known.update({f: f for f in model.request_fields})
    for index, name in enumerate(model.features or []):
        if name not in known:
            issues.append(
                doc.issue(
                    ("model", "features", index),
                    f"unknown feature `{name}`",
                    expected="a feature column (<view>__<feature>), a view name or a request field",
                    suggestion=did_you_mean(name, known),
                )
            )
    if model.baseline_feature is not None and model.baseline_feature not in (
        set(columns) | set(model.request_fields)
    ):
        choices = {**{c: c for c in columns}, **{f: f for f in model.request_fields}}
        issues.append(
            doc.issue(
                ("model", "baseline_feature"),
                f"unknown feature `{model.baseline_feature}`",
                expected="a feature column such as <view>__<feature>_<window>, or a request field",
                suggestion=did_you_mean(model.baseline_feature, choices),
            )
        )
    if model.pilot is not None and not Path(model.pilot).exists():
        issues.append(
            doc.issue(
                ("model", "pilot"),
                f"the pilot model `{model.pilot}` does not exist",
                suggestion="give the path of a pickled scikit-learn model (.pkl/.joblib) or an "
                "MLflow model directory, relative to this spec",
            )
        )
    return issues


def _serving_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """Each `serving.fallback` step is previous, baseline or a number."""
    serving = spec.serving
    if serving is None or serving.fallback is None:
        return []
    steps = [serving.fallback] if isinstance(serving.fallback, str) else serving.fallback
    issues = []
    for index, step in enumerate(steps):
        text = str(step).strip()
        if text in ("previous", "baseline"):
            continue
        try:
            float(text)
        except ValueError:
            loc: tuple[str | int, ...] = ("serving", "fallback")
            if not isinstance(serving.fallback, str):
                loc = (*loc, index)
            issues.append(
                doc.issue(
                    loc,
                    f"unknown fallback `{text}`",
                    expected="previous, baseline, or a constant such as 0.5",
                    suggestion=did_you_mean(text, ["previous", "baseline"]),
                )
            )
    return issues


def _recommend_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """`recommend:` is the spec's one use case; its sources, columns and stages fit together."""
    recommend = spec.recommend
    if recommend is None:
        return _recommend_watch_alone(spec, doc)
    issues = _one_use_case(spec, doc)
    issues += _recommend_source_issues(spec, recommend, doc)
    issues += _generator_issues(recommend, doc)
    issues += _filter_issues(recommend, doc)
    base = ("recommend",)
    metric_name, at = recommend.metric_at
    if at > recommend.k:
        issues.append(
            doc.issue(
                (*base, "metric"),
                f"`{recommend.metric}` judges the top {at} items, but each answer holds "
                f"{recommend.k} (recommend.k)",
                suggestion=f"use `metric: {metric_name}@{recommend.k}` or raise `k` to {at}",
            )
        )
    if recommend.ordering is not None and recommend.catalog.category is None:
        issues.append(
            doc.issue(
                (*base, "ordering", "max_per_category"),
                "`max_per_category` needs the items' categories, but `catalog` names no "
                "`category` column",
                suggestion="add `category: <column>` to recommend.catalog, or drop `ordering`",
            )
        )
    if recommend.ranking is not None:
        for index, name in enumerate(recommend.ranking.features):
            if name not in spec.features:
                issues.append(
                    doc.issue(
                        (*base, "ranking", "features", index),
                        f"unknown feature view `{name}`",
                        expected="one of "
                        + (", ".join(sorted(spec.features)) or "none declared: add `features:`"),
                        suggestion=did_you_mean(name, spec.features)
                        or "declare it under `features:` (a view keyed by the user or the item)",
                    )
                )
    return issues


def _interleaving_issues(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """`rollout.interleaving` merges two ranked lists: a recommender's rollout only."""
    if spec.recommend is not None or spec.rollout is None or spec.rollout.interleaving is None:
        return []
    return [
        doc.issue(
            ("rollout", "interleaving"),
            "`rollout.interleaving` interleaves two arms' ranked lists, but this spec has no "
            "`recommend:` (a classifier answers one score, there is no list to interleave)",
            suggestion="drop `rollout.interleaving` (the A/B test decides alone), or move it "
            "to a recommender's spec",
        )
    ]


def _recommend_watch_alone(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """`monitoring.recommend` is written only beside `recommend:` (it would do nothing)."""
    monitoring = spec.monitoring
    if monitoring is None or "recommend" not in monitoring.model_fields_set:
        return []
    return [
        doc.issue(
            ("monitoring", "recommend"),
            "`monitoring.recommend` sets how a recommender's served lists are judged, but this "
            "spec has no `recommend:`",
            suggestion="drop `monitoring.recommend`, or move it to the recommender's spec",
        )
    ]


def _one_use_case(spec: TaxiwaySpec, doc: YamlDocument) -> list[SpecIssue]:
    """A spec with `recommend:` has no `spine:`, `label:` or `model:` (those predict a value)."""
    line, _ = doc.position(("recommend",))
    present = {"spine": spec.spine, "label": spec.label, "model": spec.model}
    return [
        doc.issue(
            (key,),
            f"a spec holds one use case, and this one has `recommend:` (line {line}), so it "
            f"cannot also have `{key}:` (a prediction per entity)",
            suggestion=f"split it into two specs: the recommender, and one with `{key}:` for "
            "the prediction (they can share sources and contracts)",
        )
        for key, value in present.items()
        if value is not None
    ]


def _recommend_source_issues(
    spec: TaxiwaySpec, recommend: RecommendSpec, doc: YamlDocument
) -> list[SpecIssue]:
    """Interactions, catalog and deny lists name declared sources; interactions have times."""
    sources = spec.sources
    base = ("recommend",)
    interactions = recommend.interactions
    issues = _unknown(
        doc, "source", interactions.source, sources, (*base, "interactions", "source")
    )
    issues += _unknown(
        doc, "source", recommend.catalog.source, sources, (*base, "catalog", "source")
    )
    for index, rule in enumerate(recommend.filters):
        if isinstance(rule, DenyFilter):
            issues += _unknown(
                doc, "source", rule.source, sources, (*base, "filters", index, "source")
            )
    if interactions.source in sources and sources[interactions.source].timestamp is None:
        issues.append(
            doc.issue(
                (*base, "interactions", "source"),
                f"interactions need event times (to split train from test and to look back), "
                f"but source `{interactions.source}` declares no `timestamp`",
                suggestion=f"add `timestamp: <column>` to sources.{interactions.source}",
            )
        )
    return issues


def _generator_issues(recommend: RecommendSpec, doc: YamlDocument) -> list[SpecIssue]:
    """Each generator kind appears once, returns at least `k` candidates and has the catalog
    columns it reads (`segment_popularity` needs `catalog.category`)."""
    issues: list[SpecIssue] = []
    seen: dict[str, int] = {}
    for index, generator in enumerate(recommend.candidates):
        loc: tuple[str | int, ...] = ("recommend", "candidates", index)
        if generator.kind in seen:
            issues.append(
                doc.issue(
                    (*loc, "kind"),
                    f"generator `{generator.kind}` is listed twice (first at "
                    f"candidates[{seen[generator.kind]}])",
                    suggestion="keep one entry per kind: merge their settings into the first",
                )
            )
        seen.setdefault(generator.kind, index)
        if generator.k < recommend.k:
            issues.append(
                doc.issue(
                    (*loc, "k"),
                    f"generator `{generator.kind}` returns {generator.k} candidates, fewer than "
                    f"the {recommend.k} items of each answer (recommend.k)",
                    suggestion=f"raise its `k` to at least {recommend.k} (default 200), or "
                    "lower recommend.k",
                )
            )
        if generator.kind == "segment_popularity" and recommend.catalog.category is None:
            issues.append(
                doc.issue(
                    (*loc, "kind"),
                    "`segment_popularity` segments users by the items' categories, but "
                    "`catalog` names no `category` column",
                    suggestion="add `category: <column>` to recommend.catalog, or drop this "
                    "generator",
                )
            )
    return issues


def _filter_issues(recommend: RecommendSpec, doc: YamlDocument) -> list[SpecIssue]:
    """Filters ask only for columns the interactions and the catalog declare."""
    issues: list[SpecIssue] = []
    for index, rule in enumerate(recommend.filters):
        loc: tuple[str | int, ...] = ("recommend", "filters", index)
        if isinstance(rule, UnavailableFilter) and recommend.catalog.available is None:
            issues.append(
                doc.issue(
                    (*loc, "kind"),
                    "the `unavailable` filter needs to know which items are available, but "
                    "`catalog` names no `available` column",
                    suggestion="add `available: <boolean column>` to recommend.catalog, or "
                    "drop this filter",
                )
            )
        if (
            isinstance(rule, AlreadySeenFilter)
            and rule.event_types is not None
            and recommend.interactions.event_type is None
        ):
            issues.append(
                doc.issue(
                    (*loc, "event_types"),
                    "`event_types` picks events by type, but `interactions` names no "
                    "`event_type` column",
                    suggestion="add `event_type: <column>` to recommend.interactions, or drop "
                    "`event_types` (every interaction then counts as seen)",
                )
            )
    return issues
