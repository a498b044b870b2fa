"""What every recommender audit check reads: the version's facts, its saved Recommender (loaded
as the service loads it) and the interactions re-read through their sources as training did.

The re-read is :func:`~taxiway.recommend.training.load_recommend_data` as of the training's
as-of time (the stored ``training.as_of``, else the version's ``created_at``: a training without
``as_of`` read what was known when it ran), split again at the stored cutoff. Nothing the
artifact says about itself is trusted where the data can be read again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.models.registry import ModelVersion
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.split import RecommendSplit, time_split, to_micros
from taxiway.recommend.training import RecommendData, load_recommend_data
from taxiway.spec.models import Serving
from taxiway.spec.project import Project
from taxiway.spec.recommend import RecommendSpec

__all__ = ["RecommendAuditContext", "recommender_folder", "sample_codes", "service_paths"]


def recommender_folder(version: ModelVersion) -> Path:
    """Where ``version``'s Recommender is, as the service looks for it: the artifact folder
    or a ``recommender/`` inside it."""
    root = Path(version.artifact_dir)
    for folder in (root, root / "recommender"):
        if (folder / "recommender.json").exists():
            return folder
    raise ModelError(
        f"version {version.version} of {version.name} holds no recommender "
        f"(no recommender.json in {root})",
        fix="audit a version trained from the `recommend:` spec (`taxiway models list`)",
    )


def service_paths(recommender: Recommender) -> list[tuple[str, tuple[str, ...] | None]]:
    """The stage lists the service asks, by path: the full ``model`` (every stage), then the
    recommender's own fallback chain (:attr:`~taxiway.recommend.pipeline.Recommender.fallback_stages`:
    item-to-item, popularity in the user's segment, popularity), exactly as served."""
    return [("model", None), *recommender.fallback_stages]


def sample_codes(
    codes: NDArray[np.int32], size: int, rng: np.random.Generator
) -> NDArray[np.int32]:
    """Up to ``size`` of ``codes``, drawn without replacement, in ascending order."""
    if len(codes) <= size:
        return codes
    return np.sort(rng.choice(codes, size=size, replace=False)).astype(np.int32)


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


@dataclass
class RecommendAuditContext:
    """The project and recommender version under audit."""

    project: Project
    version: ModelVersion
    sample: int = 100
    repeats: int = 200
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> RecommendSpec:
        """The project's ``recommend:`` section."""
        recommend = self.project.spec.recommend
        if recommend is None:
            raise ModelError(
                "the spec has no `recommend:` section: this is not a recommender",
                fix="audit a classifier with `run_audit`, or add `recommend:` (docs/spec.md)",
            )
        return recommend

    @property
    def serving(self) -> Serving:
        """The spec's serving section (defaults when absent)."""
        return self.project.spec.serving or Serving()

    @cached_property
    def rng(self) -> np.random.Generator:
        """The one seeded source of every sample the audit draws."""
        return np.random.default_rng(self.seed)

    @cached_property
    def recommender(self) -> Recommender:
        """The version's Recommender, loaded from its artifact as the service loads it."""
        return Recommender.load(recommender_folder(self.version))

    @cached_property
    def stated_as_of(self) -> datetime | None:
        """The training's ``as_of`` as the version records it (None: not recorded)."""
        return _moment(self.version.training.get("as_of"))

    @property
    def as_of(self) -> datetime:
        """The time training read its data as of: the stored ``as_of``, else ``created_at``."""
        return self.stated_as_of or self.version.created_at

    @cached_property
    def cutoff_us(self) -> int:
        """The version's cutoff (µs): ``training.cutoff``, else ``metrics.split.cut``."""
        stored = self.version.training.get("cutoff") or (
            self.version.metrics.get("split") or {}
        ).get("cut")
        moment = _moment(stored)
        if moment is None:
            raise ModelError(
                f"version {self.version.version} records no cutoff (training.cutoff or "
                "metrics.split.cut)",
                fix="train it again with this taxiway (`taxiway train`), then audit",
            )
        return to_micros(moment)

    @cached_property
    def data(self) -> RecommendData:
        """The interactions, catalog and deny lists re-read as of :attr:`as_of`."""
        return load_recommend_data(self.project, as_of=self.as_of)

    @cached_property
    def split(self) -> RecommendSplit:
        """The re-read interactions split again at the version's cutoff."""
        return time_split(self.data.interactions, self.cutoff_us)

    def user_ids(self, codes: Sequence[int] | NDArray[np.int32]) -> list[str]:
        """Ids of re-read user codes."""
        users = self.data.interactions.users
        return [str(users[int(code)]) for code in codes]
