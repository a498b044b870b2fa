"""The handoff audit of a recommender: leakage, filters parity, skew, coverage and latency.

``run_recommend_audit`` runs every check on one registered recommender version and returns
the classifier audit's :class:`~taxiway.models.audit.findings.AuditReport` (so the CLI, the
sprint and the reports take it unchanged); a blocker means the version must not ship as is.
Each check observes rather than trusts: the interactions are re-read through their sources as
training read them, and the saved Recommender is loaded as the service loads it.

- ``leakage`` (:mod:`.leakage`): no interaction at or after the cutoff reached training; the
  stored histories end at the training as-of time.
- ``filters`` (:mod:`.filters`): the lists evaluation scored and every service path exclude
  what the spec's filters exclude, recomputed from the data.
- ``skew`` (:mod:`.skew`): the ranking stage's feature views as the served ranker reads them
  from the online store equal the offline point-in-time values at the same time. Only a
  version whose ranking stage reads feature views has it: the report of any other leaves it
  out (``names``), so its table is the four checks above and below.
- ``coverage`` (:mod:`.coverage`): cold users and items, counted, and what they are answered.
- ``latency`` (:mod:`.latency`): the service's call timed per user against the budget, each
  stage timed alone (with a ranking that reads feature views, through the online store as the
  service reads them).
"""

from __future__ import annotations

from taxiway.errors import TaxiwayError
from taxiway.features.online import open_online_store
from taxiway.models.audit.findings import RECOMMEND_CHECKS, AuditReport
from taxiway.models.registry import ModelVersion
from taxiway.recommend.audit.context import RecommendAuditContext
from taxiway.recommend.audit.coverage import check_coverage
from taxiway.recommend.audit.filters import check_filters
from taxiway.recommend.audit.latency import check_latency
from taxiway.recommend.audit.leakage import check_leakage
from taxiway.recommend.audit.skew import check_ranking_skew, ranks_on_feature_views
from taxiway.recommend.ranking_online import attach_online_features
from taxiway.spec.project import Project

__all__ = ["RECOMMEND_CHECKS", "run_recommend_audit"]


def run_recommend_audit(
    project: Project,
    version: ModelVersion,
    *,
    sample: int = 100,
    repeats: int = 200,
    seed: int = 0,
    skip: frozenset[str] = frozenset(),
) -> AuditReport:
    """Audit recommender ``version`` of ``project``; ``sample`` users are checked for filter
    parity and coverage, ``repeats`` requests timed per user kind; ``skip`` names checks not
    to run."""
    ctx = RecommendAuditContext(project, version, sample=sample, repeats=repeats, seed=seed)
    names: tuple[str, ...] = RECOMMEND_CHECKS
    if not ranks_on_feature_views(ctx):
        names = tuple(name for name in names if name != "skew")
    report = AuditReport(name=version.name, version=version.version, names=names)
    steps = {
        "leakage": check_leakage,
        "filters": check_filters,
        "skew": check_ranking_skew,
        "coverage": check_coverage,
        "latency": _check_latency_as_served,
    }
    for name, step in steps.items():
        if name not in names:
            continue
        if name in skip:
            report.checks[name] = "skipped"
            continue
        step(ctx, report)
    if ctx.notes:
        report.measured["notes"] = list(ctx.notes)
    return report


def _check_latency_as_served(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """:func:`check_latency` with the ranking's feature views read from the online store, as
    the service reads them, when the version's ranking reads any (the other checks read the
    snapshots training took: they judge what training and evaluation saw)."""
    ranker = ctx.recommender.ranker
    if ranker is None or not ranks_on_feature_views(ctx):
        check_latency(ctx, report)
        return
    spec = ctx.project.spec
    store = open_online_store(
        spec.online_store, state_dir=ctx.project.state_dir, namespace=spec.name
    )
    try:
        attach_online_features(ctx.project, ranker, store)
        check_latency(ctx, report)
        report.measured["latency"]["ranking_features_from"] = "the online store"
    except TaxiwayError as error:  # the skew check reports why; time what can be timed
        ranker.online = None
        ctx.notes.append(f"latency timed without the online store: {error.message}")
        check_latency(ctx, report)
    finally:
        ranker.online = None
        store.close()
