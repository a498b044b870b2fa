"""A registered version's model card (Mitchell et al. 2019), generated, never written by hand.

Intended use and the action taken on predictions, the owner, the training data and the
contract versions it passed, the metrics against the baseline overall, per time slice and per
declared segment (``governance.segments``), the limitations (the handoff audit's findings and
each group where the model is worse than the baseline), and the sign-offs. One model of the
card (:class:`VersionCard`: sections of lines and tables) feeds both renderers, Markdown here
and HTML in :mod:`~taxiway.models.card_html`, so they say the same thing in the same words.

Written at registration as ``card.md`` and ``card.html`` in the version's artifact folder
(the audit and sign-offs come later: ``taxiway models card V`` rewrites it with them).

>>> from datetime import UTC, datetime
>>> from taxiway.models.registry import ModelVersion
>>> from taxiway.spec.models import TaxiwaySpec
>>> spec = TaxiwaySpec.model_validate({"name": "churn", "owner": "growth",
...     "governance": {"action": "send an offer", "segments": ["region"]}})
>>> v = ModelVersion("churn", 3, "candidate", datetime(2026, 1, 5, tzinfo=UTC), "ana",
...     "lightgbm", "classification", {"metric": "roc_auc", "model": {"roc_auc": 0.8},
...     "baseline": {"roc_auc": 0.7}, "segments": {"region": {"column": "region", "rows": [
...     {"value": "north", "rows": 400, "model": 0.6, "baseline": 0.7, "lift": -0.1,
...      "interval": [-0.15, -0.05], "verdict": "worse"}]}}},
...     ["x"], "", "", None, {}, {}, {}, {}, "/tmp/churn/3")
>>> card = build_card(spec, v)
>>> [f.title for f in card.findings]
['the model is worse than the baseline for region=north']
>>> print(card.markdown().splitlines()[0])
# Model card: churn v3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taxiway.models.metrics import METRICS, display_name
from taxiway.models.registry import ModelVersion
from taxiway.models.segments import MIN_ROWS, RESAMPLES
from taxiway.spec.models import TaxiwaySpec

__all__ = [
    "CardFinding",
    "CardSection",
    "CardTable",
    "VersionCard",
    "build_card",
    "group_findings",
    "write_card",
]

GROUP_HEADERS = ["rows", "model", "baseline", "lift", "95% interval", "verdict"]


@dataclass(frozen=True)
class CardTable:
    """A table of the card: its headers and rows of text, and the sentence before it."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class CardSection:
    """A titled part of the card: sentences, then tables."""

    title: str
    lines: list[str] = field(default_factory=list)
    tables: list[CardTable] = field(default_factory=list)


@dataclass(frozen=True)
class CardFinding:
    """A group (a segment's value or a time slice) where the model is worse than the baseline."""

    title: str
    evidence: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        """``title``, ``evidence`` and ``fix``."""
        return {"title": self.title, "evidence": self.evidence, "fix": self.fix}


@dataclass
class VersionCard:
    """A version's model card: the sections in order and the findings among them."""

    name: str
    version: int
    sections: list[CardSection]
    findings: list[CardFinding]

    @property
    def title(self) -> str:
        """``Model card: <name> v<version>``."""
        return f"Model card: {self.name} v{self.version}"

    def markdown(self) -> str:
        """The card as Markdown (every cell's ``|`` escaped)."""
        out = [f"# {self.title}", ""]
        for section in self.sections:
            out += [f"## {section.title}", ""]
            out += [f"- {line}" for line in section.lines]
            if section.lines:
                out.append("")
            for table in section.tables:
                if table.caption:
                    out += [table.caption, ""]
                out.append("| " + " | ".join(map(_cell, table.headers)) + " |")
                out.append("|" + "---|" * len(table.headers))
                out += ["| " + " | ".join(map(_cell, row)) + " |" for row in table.rows]
                out.append("")
        return "\n".join(out)

    def html(self) -> str:
        """The card as one self-contained HTML page, every string escaped (no script)."""
        from taxiway.models.card_html import render_card_html

        return render_card_html(self)

    def as_dict(self) -> dict[str, Any]:
        """The card's findings and sections, JSON-ready (the sprint report's ``card`` fact)."""
        return {
            "name": self.name,
            "version": self.version,
            "findings": [f.as_dict() for f in self.findings],
            "sections": [
                {
                    "title": s.title,
                    "lines": s.lines,
                    "tables": [
                        {"caption": t.caption, "headers": t.headers, "rows": t.rows}
                        for t in s.tables
                    ],
                }
                for s in self.sections
            ],
        }


def build_card(
    spec: TaxiwaySpec,
    version: ModelVersion,
    *,
    audit: dict[str, Any] | None = None,
    sign_offs: Sequence[dict[str, Any]] | None = None,
) -> VersionCard:
    """The card of ``version`` of ``spec``'s model.

    ``audit`` is the handoff audit's document (``taxiway audit --json``; its findings'
    text under ``evidence`` or ``message``), None when it has not run. ``sign_offs`` holds a
    dict per role ``governance.approvals`` asks for (``role``, ``status``, and when signed
    ``by``, ``at``, ``note``), None when not read.
    """
    findings = group_findings(version)
    sections = [
        _intended_use(spec, version),
        _training_data(spec, version),
        _metrics(version),
        _segments(spec, version),
        _limitations(version, audit, findings),
        _sign_offs(spec, sign_offs),
    ]
    return VersionCard(version.name, version.version, sections, findings)


def write_card(card: VersionCard, folder: str | Path) -> dict[str, Path]:
    """Write ``card.md`` and ``card.html`` into ``folder``; their paths under ``md``, ``html``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "card.md", "html": out / "card.html"}
    paths["md"].write_text(card.markdown() + "\n", encoding="utf-8")
    paths["html"].write_text(card.html(), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- sections


def _intended_use(spec: TaxiwaySpec, v: ModelVersion) -> CardSection:
    governance = spec.governance
    action = governance.action if governance else None
    label = spec.label
    predicts = (
        f"`{label.name}`" + (f": {label.description}" if label.description else "")
        if label is not None
        else (f"recommendations ({v.task})" if spec.recommend is not None else "not declared")
    )
    lines = [
        f"use case: {spec.description.strip() if spec.description else 'not described'}",
        f"predicts: {predicts}",
        "action taken on predictions: "
        + (action.strip() if action else "not declared (governance.action)"),
        f"owner: {spec.owner or 'not declared (owner)'}",
        f"version {v.version}, {v.stage}: {v.algorithm} ({v.task}), registered "
        f"{v.created_at.isoformat(timespec='seconds')} by {v.created_by}"
        + (f", git {v.git_commit[:12]}" if v.git_commit else ""),
    ]
    return CardSection("Intended use", lines)


def _recommender_data(spec: TaxiwaySpec, v: ModelVersion) -> CardSection:
    """A recommender's interactions and sources (its version records no training set)."""
    t = v.training
    lines = [
        f"interactions: {_number(t.get('interactions'))} ({_number(t.get('users'))} users, "
        f"{_number(t.get('items'))} items); trained on {_number(t.get('train_interactions'))} "
        f"up to {t.get('train_max_at') or 'unknown'}, tested from {t.get('cutoff') or 'unknown'}",
    ]
    rows = []
    for name, info in (t.get("sources") or {}).items():
        declared = spec.sources.get(name)
        contract = declared.contract if declared is not None else None
        rows.append(
            [
                str(name),
                declared.kind if declared is not None else "—",
                _number(info.get("rows")),
                _number(info.get("quarantined")),
                str(contract or "no contract"),
                str(info.get("fingerprint") or "—"),
            ]
        )
    headers = ["source", "kind", "rows", "quarantined", "contract", "fingerprint"]
    return CardSection("Training data", lines, [CardTable(headers, rows)] if rows else [])


def _training_data(spec: TaxiwaySpec, v: ModelVersion) -> CardSection:
    if v.task == "recommend":
        return _recommender_data(spec, v)
    training = v.lineage.get("training_set") or {}
    split = v.metrics.get("split") or {}
    lines = [
        f"training set: {_number(training.get('rows'))} rows, built "
        f"{training.get('built_at') or 'unknown'}, fingerprint "
        f"{str(training.get('fingerprint') or 'unknown')[:16]}",
        f"inputs ({len(v.features)}): {', '.join(v.features) or 'none'}",
    ]
    if split:
        lines.append(
            f"validation: the newest rows (from {split.get('cut')}): "
            f"{_number(split.get('valid_rows'))} rows; training: "
            f"{_number(split.get('train_rows'))} rows"
        )
    rows = []
    for source in v.lineage.get("sources") or []:
        contract = source.get("contract") or {}
        rows.append(
            [
                str(source.get("name")),
                str(source.get("kind")),
                _number(source.get("rows")),
                _number(source.get("quarantined")),
                str(contract.get("id") or contract.get("path") or "no contract"),
                str(contract.get("version") or ("unversioned" if contract else "—")),
                str(contract.get("sha256") or "—"),
            ]
        )
    headers = ["source", "kind", "rows", "quarantined", "contract", "version", "sha256"]
    return CardSection("Training data", lines, [CardTable(headers, rows)] if rows else [])


def _metrics(v: ModelVersion) -> CardSection:
    metrics = v.metrics
    metric = str(metrics.get("metric") or "")
    model, baseline = metrics.get("model") or {}, metrics.get("baseline") or {}
    lines = [
        f"{display_name(metric)} on validation: model {_score(model.get(metric))}, baseline "
        f"{_score(baseline.get(metric))}: the model "
        + ("beats" if metrics.get("beats_baseline") else "does not beat")
        + " the baseline",
    ]
    if metrics.get("baseline_description"):
        lines.append(f"the baseline: {metrics['baseline_description']}")
    names = METRICS.get(v.task) or [k for k in model if k not in ("rows", "users")]
    shared = [k for k in names if _is_number(model.get(k)) and _is_number(baseline.get(k))]
    tables = [
        CardTable(
            ["metric", "model", "baseline"],
            [[display_name(k), _score(model[k]), _score(baseline[k])] for k in shared],
        )
    ]
    slices = metrics.get("time_slices")
    if slices:
        caption = (
            f"Per time slice of the validation rows ({display_name(metric)}; lift: how much "
            f"better the model scores; {_interval_words()}):"
        )
        rows = [_group_row(r) for r in slices]
        tables.append(CardTable(["time slice", *GROUP_HEADERS], rows, caption))
    elif v.task != "recommend":
        lines.append("per time slice: not measured for this version (trained before cards)")
    return CardSection("Metrics against the baseline", lines, tables)


def _segments(spec: TaxiwaySpec, v: ModelVersion) -> CardSection:
    declared = spec.governance.segments if spec.governance else []
    if v.task == "recommend":
        return CardSection(
            "Segments",
            ["not applicable: a recommender's metrics are per user over the whole test period"],
        )
    measured = v.metrics.get("segments") or {}
    if not declared and not measured:
        none = (
            "none declared: list columns such as a region or a customer tier under "
            "governance.segments to see the model against the baseline for each value"
        )
        return CardSection("Segments", [none])
    metric = display_name(str(v.metrics.get("metric") or ""))
    section = CardSection("Segments", [f"{metric}, lift and verdict as above; {_interval_words()}"])
    for name in dict.fromkeys([*declared, *measured]):  # measured then, if no longer declared
        found = measured.get(name)
        if not found:
            section.lines.append(f"{name}: not measured for this version (retrain to measure)")
            continue
        rows = [_group_row(r) for r in found.get("rows") or []]
        caption = f"{name} (column {found.get('column')}): {len(rows)} value(s)"
        section.tables.append(CardTable([name, *GROUP_HEADERS], rows, caption))
    return section


def _limitations(
    v: ModelVersion, audit: dict[str, Any] | None, findings: list[CardFinding]
) -> CardSection:
    section = CardSection("Limitations")
    if not v.metrics.get("beats_baseline") and v.task != "recommend":
        section.lines.append("the model does not beat the baseline on validation")
    for f in findings:
        section.lines.append(f"{f.title}: {f.evidence}; fix: {f.fix}")
    if audit is None:
        section.lines.append(
            "the handoff audit has not run for this version: run `taxiway audit` (then "
            "`taxiway models card` to add its findings here)"
        )
    else:
        found = audit.get("findings") or []
        for a in found:
            subject = f" `{a['feature']}`" if a.get("feature") else ""
            section.lines.append(
                f"audit {a.get('check')} ({a.get('severity')}){subject}: "
                f"{a.get('evidence') or a.get('message')}; fix: {a.get('fix')}"
            )
        if not found:
            section.lines.append("the handoff audit found nothing")
    return section


def _sign_offs(spec: TaxiwaySpec, sign_offs: Sequence[dict[str, Any]] | None) -> CardSection:
    required = spec.governance.approvals if spec.governance else []
    if not required:
        return CardSection("Sign-offs", ["none required (governance.approvals)"])
    if sign_offs is None:
        later = (
            f"required: {', '.join(required)}; not read at registration: "
            "`taxiway models card` adds them once recorded (`taxiway approve`)"
        )
        return CardSection("Sign-offs", [later])
    rows = [
        [
            str(s.get("role")),
            str(s.get("status")),
            str(s.get("by") or "—"),
            str(s.get("at") or "—"),
            str(s.get("note") or ""),
        ]
        for s in sign_offs
    ]
    return CardSection(
        "Sign-offs",
        [f"required: {', '.join(required)}"],
        [CardTable(["role", "status", "by", "at", "note"], rows)],
    )


# --------------------------------------------------------------------------- findings


def group_findings(v: ModelVersion) -> list[CardFinding]:
    """Each declared segment's value, then each time slice, where the model is worse than
    the baseline beyond noise (the audit's ``segments`` warnings, the card's limitations)."""
    metric = display_name(str(v.metrics.get("metric") or ""))
    out = []
    for name, found in (v.metrics.get("segments") or {}).items():
        for r in found.get("rows") or []:
            if r.get("verdict") == "worse":
                out.append(
                    CardFinding(
                        f"the model is worse than the baseline for {name}={r['value']}",
                        f"{metric} {_score(r.get('model'))} against the baseline's "
                        f"{_score(r.get('baseline'))} on {_number(r.get('rows'))} validation "
                        f"rows (lift {_interval(r)})",
                        f"collect more data for {name}={r['value']} or keep the baseline "
                        "there (answer those units with the fallback)",
                    )
                )
    for r in v.metrics.get("time_slices") or []:
        if r.get("verdict") == "worse":
            out.append(
                CardFinding(
                    f"the model is worse than the baseline in {r['value']}",
                    f"{metric} {_score(r.get('model'))} against the baseline's "
                    f"{_score(r.get('baseline'))} on {_number(r.get('rows'))} validation rows "
                    f"(lift {_interval(r)})",
                    "look for what changed then (drift, a contract, a new source) and retrain "
                    "on data that includes it",
                )
            )
    return out


def _group_row(r: dict[str, Any]) -> list[str]:
    return [
        str(r.get("value")),
        _number(r.get("rows")),
        _score(r.get("model")),
        _score(r.get("baseline")),
        _score(r.get("lift"), signed=True),
        _bounds(r.get("interval")),
        str(r.get("verdict")),
    ]


def _interval_words() -> str:
    return (
        f"95% interval: a paired bootstrap of the rows, {RESAMPLES} resamples; under "
        f"{MIN_ROWS} rows, no verdict"
    )


def _interval(r: dict[str, Any]) -> str:
    return f"{_score(r.get('lift'), signed=True)}, 95% interval {_bounds(r.get('interval'))}"


def _bounds(interval: Any) -> str:
    if not isinstance(interval, list) or len(interval) != 2:
        return "—"
    return f"[{_score(interval[0], signed=True)}, {_score(interval[1], signed=True)}]"


def _score(value: Any, *, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
