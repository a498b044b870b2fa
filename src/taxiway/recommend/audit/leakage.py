"""Leakage of a recommender: the future reaching training, or the service's idea of the past.

Observed, never declared:

- the training facts the version stores (how many interactions it trained on, the newest of
  their times) against the interactions re-read now and split again at the stored cutoff:
  a newest training time at or after the cutoff, or more training interactions than the source
  holds before the cutoff, means interactions at or after the cutoff reached training;
- the fitted popularity stage itself: its scores are weighted counts, so they must equal the
  counts of the re-read interactions before the cutoff; when they equal the counts of every
  interaction instead, the stage was fitted on the future (whatever the stored facts say);
- the stored histories (the service's idea of each user's past): nothing after the training
  as-of time (training reads what is known by then, inclusive).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from taxiway.models.audit.findings import AuditReport
from taxiway.recommend.audit.context import RecommendAuditContext
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.split import from_micros, to_micros

__all__ = ["check_leakage", "popularity_counts"]

_RETRAIN = (
    "retrain with the split taxiway applies (`taxiway train -f <spec>`: every generator fitted "
    "on the interactions strictly before recommend.split.cutoff only); if the version was "
    "built by hand, fit it on `Interactions.before(cutoff)`"
)


def popularity_counts(data: Interactions, window: timedelta | None) -> NDArray[np.float64]:
    """Per item code, the weights a popularity stage fitted on ``data`` counts (the window
    ending at ``data``'s newest interaction), computed here from the definition.

    >>> data = Interactions(user=np.array([0, 1, 0], np.int32), item=np.array([1, 1, 2], np.int32),
    ...     at=np.array([5, 9, 1], np.int64), weight=np.ones(3, np.float32),
    ...     event=np.zeros(3, np.int8), users=np.array(["a", "b"], object),
    ...     items=np.array(["x", "y", "z"], object), events=("",))
    >>> popularity_counts(data, timedelta(microseconds=5)).tolist()
    [0.0, 2.0, 0.0]
    """
    keep = np.ones(len(data), dtype=bool)
    if window is not None and len(data):
        keep = data.at > int(data.at.max()) - window // timedelta(microseconds=1)
    counts = np.bincount(
        data.item[keep], weights=data.weight[keep].astype(np.float64), minlength=data.n_items
    )
    return counts.astype(np.float64)


def check_leakage(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """Record every leakage finding of ``ctx``'s version in ``report``."""
    split = ctx.split
    cutoff = from_micros(ctx.cutoff_us).isoformat()
    before, after = len(split.train), len(split.test)
    training = ctx.version.training
    stored = training.get("train_interactions")
    if stored is None:
        stored = (ctx.version.metrics.get("split") or {}).get("train_rows")
    newest = training.get("train_max_at")
    report.measured["leakage"] = {
        "cutoff": cutoff,
        "stored_training_interactions": stored,
        "stored_newest_training_time": newest,
        "reread_before_cutoff": before,
        "reread_at_or_after_cutoff": after,
        "as_of": ctx.as_of.isoformat(),
    }
    if newest is None:
        ctx.notes.append(
            "the version records no newest training time (training.train_max_at): only the "
            "count and the fitted popularity were compared"
        )
    elif to_micros(_parse(newest)) >= ctx.cutoff_us:
        report.add(
            "leakage",
            "blocker",
            None,
            f"the version's newest training interaction is at {newest}, at or after its "
            f"cutoff {cutoff}: interactions the evaluation judges on were trained on",
            _RETRAIN,
        )
    if stored is not None and int(stored) != before:
        excess = int(stored) - before
        if 0 < excess <= after:
            report.add(
                "leakage",
                "blocker",
                None,
                f"training saw {int(stored):,} interactions but the source holds {before:,} "
                f"before the cutoff {cutoff}: {excess:,} of the {after:,} interactions at or "
                "after the cutoff reached training",
                _RETRAIN,
            )
        else:
            report.add(
                "leakage",
                "warning",
                None,
                f"training saw {int(stored):,} interactions before the cutoff {cutoff}; the "
                f"source holds {before:,} there now: it changed since training (rows added, "
                "deleted or quarantined), so the audit cannot tie this version to today's data",
                "retrain on the data as it is now (`taxiway train`), then audit again",
            )
    _check_popularity(ctx, report, cutoff)
    _check_histories(ctx, report)


def _parse(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def _check_popularity(ctx: RecommendAuditContext, report: AuditReport, cutoff: str) -> None:
    """Compare the fitted popularity stage's scores with counts before the cutoff and overall."""
    found = [g for _, g in ctx.recommender.stages if isinstance(g, Popularity)]
    if not found or found[0].scores is None:
        return
    stage = found[0]
    fitted = np.asarray(stage.scores, dtype=np.float64)
    split = ctx.split
    if len(fitted) != split.train.n_items:
        ctx.notes.append(
            "the catalog changed since training: the popularity stage was not compared"
        )
        return
    expected = popularity_counts(split.train, stage.window)
    if np.allclose(fitted, expected, rtol=1e-4, atol=1e-3):
        report.measured["leakage"]["popularity_matches_training"] = True
        return
    every = ctx.data.interactions
    report.measured["leakage"]["popularity_matches_training"] = False
    if np.allclose(fitted, popularity_counts(every, stage.window), rtol=1e-4, atol=1e-3):
        moved = int(np.count_nonzero(~np.isclose(fitted, expected, rtol=1e-4, atol=1e-3)))
        report.add(
            "leakage",
            "blocker",
            "popularity",
            f"the fitted popularity stage counts the interactions at or after the cutoff "
            f"{cutoff}: its scores equal the counts over all {len(every):,} interactions, not "
            f"over the {len(split.train):,} before the cutoff ({moved:,} items differ)",
            _RETRAIN,
        )
    else:
        report.add(
            "leakage",
            "warning",
            "popularity",
            "the fitted popularity stage matches the counts of neither the interactions before "
            f"the cutoff {cutoff} nor all of them: the source changed since training",
            "retrain on the data as it is now (`taxiway train`), then audit again",
        )


def _check_histories(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """The stored histories hold nothing after the training as-of time."""
    at = ctx.recommender.histories.at
    limit = to_micros(ctx.as_of)
    late = int(np.count_nonzero(at > limit))
    newest = from_micros(int(at.max())).isoformat() if len(at) else None
    report.measured["leakage"]["histories_newest"] = newest
    if late:
        report.add(
            "leakage",
            "blocker",
            "histories",
            f"the stored histories hold {late:,} interactions after the training as-of time "
            f"{ctx.as_of.isoformat()} (the newest at {newest}): the service would treat what "
            "had not happened yet as each user's past, for the model and the already-seen filter",
            "check the interactions' timestamps (future times: clock skew, a wrong zone) and "
            "retrain with `taxiway train` (histories end at what is known at training time)",
        )
