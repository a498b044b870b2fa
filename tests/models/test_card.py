"""The model card: what each section says, the findings, and that Markdown and HTML say the
same thing with every string escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from taxiway.models.card import GROUP_HEADERS, build_card, write_card
from taxiway.models.registry import ModelVersion
from taxiway.spec.models import TaxiwaySpec

EVIL = "<script>alert(1)</script>"


def _spec(**governance: Any) -> TaxiwaySpec:
    return TaxiwaySpec.model_validate(
        {
            "name": "churn",
            "owner": "growth-team",
            "description": "score each customer weekly",
            "governance": {
                "approvals": ["security", "business"],
                "action": "the retention team sends an offer",
                **governance,
            },
        }
    )


def _group(value: str, verdict: str, rows: int = 400, lift: float = 0.05) -> dict[str, Any]:
    return {
        "value": value,
        "rows": rows,
        "model": 0.7 + lift,
        "baseline": 0.7,
        "lift": lift if verdict != "not enough rows (n=12)" else None,
        "interval": [lift - 0.02, lift + 0.02] if verdict != "not enough rows (n=12)" else None,
        "verdict": verdict,
    }


def _version(task: str = "classification", **metrics: Any) -> ModelVersion:
    return ModelVersion(
        name="churn",
        version=4,
        stage="candidate",
        created_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        created_by="ana",
        algorithm="lightgbm",
        task=task,
        metrics={
            "metric": "roc_auc",
            "model": {"roc_auc": 0.81, "brier": 0.1, "rows": 900},
            "baseline": {"roc_auc": 0.74, "brier": 0.2, "rows": 900},
            "beats_baseline": True,
            "baseline_description": "a one-feature rule",
            "split": {"cut": "2025-06-09", "train_rows": 3000, "valid_rows": 900},
            "time_slices": [_group("2025-06-09..2025-06-23", "better")],
            "segments": {
                "region": {
                    "column": "customer_profile__region",
                    "rows": [
                        _group("north", "worse", lift=-0.08),
                        _group("south", "better"),
                        _group("west", "not enough rows (n=12)", rows=12),
                    ],
                }
            },
            **metrics,
        },
        features=["orders__count_30d", f"evil{EVIL}"],
        definitions_hash="d",
        spec_hash="s",
        git_commit="0123456789abcdef",
        training={},
        lineage={
            "training_set": {"rows": 3900, "built_at": "2026-01-05", "fingerprint": "abc"},
            "sources": [
                {
                    "name": "orders",
                    "kind": "file",
                    "rows": 10_000,
                    "quarantined": 3,
                    "contract": {
                        "path": "c.yaml",
                        "id": "orders",
                        "version": "1.2.0",
                        "sha256": "feed",
                    },
                },
                {
                    "name": "customers",
                    "kind": "file",
                    "rows": 50,
                    "quarantined": 0,
                    "contract": None,
                },
            ],
        },
        profile={},
        serving={},
        artifact_dir="/nowhere",
    )


def _titles(card: Any) -> list[str]:
    return [s.title for s in card.sections]


def test_the_card_has_every_section_of_the_issue_in_order() -> None:
    card = build_card(_spec(segments=["region"]), _version())
    assert _titles(card) == [
        "Intended use",
        "Training data",
        "Metrics against the baseline",
        "Segments",
        "Limitations",
        "Sign-offs",
    ]
    text = card.markdown()
    assert "action taken on predictions: the retention team sends an offer" in text
    assert "owner: growth-team" in text
    assert "| orders | file | 10,000 | 3 | orders | 1.2.0 | feed |" in text
    assert "| customers | file | 50 | 0 | no contract | — | — |" in text
    assert "ROC AUC on validation: model 0.8100, baseline 0.7400" in text


def test_a_segment_where_the_model_is_worse_is_a_finding_with_the_fix() -> None:
    card = build_card(_spec(segments=["region"]), _version())
    (finding,) = card.findings
    assert finding.title == "the model is worse than the baseline for region=north"
    assert "-0.0800, 95% interval [-0.1000, -0.0600]" in finding.evidence
    assert "collect more data for region=north or keep the baseline there" in finding.fix
    limitations = next(s for s in card.sections if s.title == "Limitations")
    assert any(line.startswith(finding.title) for line in limitations.lines)


def test_a_small_segment_says_not_enough_rows_instead_of_a_verdict() -> None:
    card = build_card(_spec(segments=["region"]), _version())
    (table,) = next(s for s in card.sections if s.title == "Segments").tables
    assert table.headers == ["region", *GROUP_HEADERS]
    assert ["west", "12", "0.7500", "0.7000", "—", "—", "not enough rows (n=12)"] in table.rows


def test_a_worse_time_slice_is_a_finding_too() -> None:
    version = _version(time_slices=[_group("2025-09-01", "worse", lift=-0.1)], segments={})
    (finding,) = build_card(_spec(), version).findings
    assert finding.title == "the model is worse than the baseline in 2025-09-01"


def test_segments_declared_but_not_measured_say_retrain() -> None:
    card = build_card(_spec(segments=["tier"]), _version(segments={}))
    segments = next(s for s in card.sections if s.title == "Segments")
    assert "tier: not measured for this version (retrain to measure)" in segments.lines


def test_no_segments_declared_says_how_to_declare_them() -> None:
    card = build_card(_spec(), _version(segments={}))
    segments = next(s for s in card.sections if s.title == "Segments")
    assert "governance.segments" in segments.lines[0]
    assert not segments.tables


def test_without_the_audit_and_sign_offs_the_card_says_how_to_add_them() -> None:
    text = build_card(_spec(), _version()).markdown()
    assert "the handoff audit has not run for this version: run `taxiway audit`" in text
    assert "required: security, business; not read at registration" in text


def test_the_audit_findings_and_the_sign_offs_are_listed() -> None:
    audit = {
        "findings": [
            {"check": "leakage", "severity": "blocker", "feature": "refund_7d",
             "evidence": "own ROC AUC 0.99", "fix": "drop it"},
            {"check": "latency", "severity": "warning", "message": "p99 60 ms", "fix": "cache"},
        ]
    }  # fmt: skip
    sign_offs = [
        {"role": "security", "status": "present", "by": "sam", "at": "2026-01-06", "note": "ok"},
        {"role": "business", "status": "missing"},
    ]
    text = build_card(_spec(), _version(), audit=audit, sign_offs=sign_offs).markdown()
    assert "audit leakage (blocker) `refund_7d`: own ROC AUC 0.99; fix: drop it" in text
    assert "audit latency (warning): p99 60 ms; fix: cache" in text
    assert "| security | present | sam | 2026-01-06 | ok |" in text
    assert "| business | missing | — | — |  |" in text
    clean = build_card(_spec(), _version(), audit={"findings": []}).markdown()
    assert "the handoff audit found nothing" in clean


def test_a_recommender_card_shows_its_metrics_and_interactions_not_segments() -> None:
    version = _version(task="recommend", segments={}, time_slices=[])
    metrics = {"recall@5": 0.29, "ndcg@5": 0.25, "users": 136}
    version.metrics.update(metric="recall@5", model=metrics, baseline={**metrics, "recall@5": 0.13})
    version.training.update(interactions=3000, users=150, items=60, train_interactions=2697,
                            sources={"orders": {"rows": 3001, "quarantined": 1}})  # fmt: skip
    card = build_card(_spec(), version)
    segments = next(s for s in card.sections if s.title == "Segments")
    assert segments.lines[0].startswith("not applicable")
    text = card.markdown()
    assert "| recall@5 | 0.2900 | 0.1300 |" in text
    assert "| ndcg@5 | 0.2500 | 0.2500 |" in text
    assert "users |" not in text
    assert "interactions: 3,000 (150 users, 60 items); trained on 2,697" in text
    assert "| orders | — | 3,001 | 1 | no contract | — |" in text


class _Text(HTMLParser):
    """The text of a page's cells and list items, and whether any script element opened."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.scripts = 0
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if tag in ("td", "li", "p"):
            self._open, self.cells = tag, [*self.cells, ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


def test_the_page_escapes_everything_and_says_what_the_markdown_says(tmp_path: Path) -> None:
    sign_offs = [{"role": "security", "status": "present", "by": EVIL, "note": f"note {EVIL}"}]
    version = _version()
    version.metrics["segments"]["region"]["rows"][0]["value"] = EVIL
    card = build_card(_spec(segments=["region"]), version, sign_offs=sign_offs)
    paths = write_card(card, tmp_path / "v4")
    page = paths["html"].read_text()
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    parsed = _Text()
    parsed.feed(page)
    assert parsed.scripts == 0
    markdown = paths["md"].read_text()
    # every sentence and cell of the page is in the Markdown (a `|` escaped there)
    for cell in parsed.cells:
        assert cell.replace("|", "\\|") in markdown, cell
    for section in card.sections:
        for line in section.lines:
            assert line in parsed.cells
        for table in section.tables:
            for row in table.rows:
                for cell in row:
                    assert cell in parsed.cells
    assert f"the model is worse than the baseline for region={EVIL}" in markdown
