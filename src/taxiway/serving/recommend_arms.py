"""The two arms of a recommender's rollout: which Recommender answers a user.

While a rollout of the served recommender is running or paused, the recommendation service
holds two loaded versions (:class:`Served`), both warm, each loaded once:

- the **control** arm: the production version the rollout started from (``control.kind =
  version``; the served version itself when it is that one), or the **baseline** (``kind =
  baseline``): the popularity stage of the *candidate's own* Recommender, through its filters
  and ordering, standing for the previous system of a shop without recommendations. A
  baseline answer has ``model_version`` null (no model version chose the list), like a
  classifier's baseline control (:mod:`taxiway.serving.arms`);
- the **candidate** arm: the rollout's candidate version, with its own fallback chain.

A request's unit is its ``user``: assignment is by user, never by request, so every list one
user sees during a step comes from one arm. The arm is
:func:`taxiway.rollout.assignment.arm_for`'s, through a salt-bound
:class:`~taxiway.rollout.assignment.Assigner` (the same hash as every worker, replica and the
classifier's service: identical everywhere, sticky as the share grows). A constant-score
control has no meaning for a list and is refused.

With ``rollout.interleaving`` in the plan, the users whose bucket lies in the *top*
``interleaving.share`` percent (``bucket >= 10000 - round(share * 100)``, and at or above the
A/B threshold, which the spec keeps below that range until 100%) are **interleaved**: their
answers are one list drafted from both arms' (:mod:`taxiway.serving.interleave`), ``arm``
``interleaved``. The same salt and hash as the split, so an interleaved user stays
interleaved at every step and never sees an A/B arm (until the candidate takes 100%).

>>> from types import SimpleNamespace as S
>>> state = S(id=1, salt="rollout-1", candidate=2, share=77.01, state="running", active=True,
...           control={"kind": "version", "version": 1, "constant": None}, plan={})
>>> arms = RecommendArms(state, control=None, candidate=None)  # type: ignore[arg-type]
>>> arms.arm_of("customer-42")   # bucket 7700 < 7701 (see taxiway.rollout.assignment)
'candidate'
>>> state.share, state.plan = 1.0, {"interleaving": {"share": 23.0}}  # buckets 7700..9999
>>> arms.follow(state)
>>> arms.route("customer-42"), arms.interleaving_share
('interleaved', 23.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from taxiway.errors import RolloutError, ServingError
from taxiway.models.registry import ModelVersion
from taxiway.recommend.pipeline import Recommender
from taxiway.rollout.assignment import BUCKETS, Arm, Assigner
from taxiway.rollout.state import RolloutState

__all__ = [
    "RecommendArms",
    "Served",
    "baseline_of",
    "load_recommend_arms",
    "load_served",
    "recommender_folder",
]

Fallbacks = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Served:
    """A loaded version as one arm (or the service) answers with it: what one assignment
    swaps.

    ``model_stages`` are the stages of the ``model`` step (None: every stage, the full
    pipeline; a baseline: the popularity stage alone); ``fallbacks`` the steps after it
    (path, stages), the last one popularity; ``model_version`` what the answers name (None
    for a baseline)."""

    version: ModelVersion
    recommender: Recommender
    chosen: str  # "pinned", "production", "newest registered (none promoted)", "rollout ..."
    max_k: int
    fallbacks: Fallbacks
    model_stages: tuple[str, ...] | None = None
    model_version: int | None = None


def recommender_folder(version: ModelVersion) -> Path:
    """Where the version's Recommender is: its artifact folder, or a ``recommender/`` in it."""
    root = Path(version.artifact_dir)
    for folder in (root, root / "recommender"):
        if (folder / "recommender.json").exists():
            return folder
    raise ServingError(
        f"version {version.version} of {version.name} holds no recommender "
        f"(no recommender.json in {root})",
        fix="serve a version trained from a spec with `recommend:` (`taxiway models list`)",
    )


def load_served(version: ModelVersion, chosen: str) -> Served:
    """Load ``version``'s Recommender with its fallback chain,
    :attr:`Recommender.fallback_stages <taxiway.recommend.pipeline.Recommender.fallback_stages>`:
    item-to-item (when it has an itemknn stage), popularity in the user's segment (when it has
    a segment_popularity stage), then popularity; each step filled by the later ones."""
    recommender = Recommender.load(recommender_folder(version))
    fallbacks = recommender.fallback_stages
    max_k = max(generator.k for _, generator in recommender.stages)
    return Served(version, recommender, chosen, max_k, tuple(fallbacks), None, version.version)


def baseline_of(served: Served) -> Served:
    """``served``'s popularity stage as a policy of its own: the same Recommender (filters,
    ordering, catalog), asked for popularity alone, answers named with no model version."""
    recommender = served.recommender
    popularity = recommender.popularity_stage
    k = next(generator.k for name, generator in recommender.stages if name == popularity)
    return dataclasses.replace(
        served,
        chosen=f"baseline: the popularity stage of v{served.version.version}",
        max_k=k,
        fallbacks=(("fallback:popularity", (popularity,)),),
        model_stages=(popularity,),
        model_version=None,
    )


class RecommendArms:
    """The control and candidate of one rollout, and the split between them by user."""

    def __init__(self, state: RolloutState, control: Served, candidate: Served) -> None:
        self.control = control
        self.candidate = candidate
        self.rollout_id = state.id
        self.salt = state.salt
        self.candidate_version = state.candidate
        self.control_plan = dict(state.control)
        self._assigner = Assigner(state.salt)
        self.state = state.state
        self.share = 0.0
        self._threshold = 0
        self._interleaved_from = BUCKETS
        self.interleaving_share = 0.0
        """The percent of users interleaved (``rollout.interleaving.share``; 0: none)."""
        self.follow(state)

    def same_rollout(self, state: RolloutState) -> bool:
        """Whether ``state`` is (a later reading of) this rollout: same id, arms and salt."""
        return (
            state.id == self.rollout_id
            and state.salt == self.salt
            and state.candidate == self.candidate_version
            and dict(state.control) == self.control_plan
        )

    def follow(self, state: RolloutState) -> None:
        """Take a new reading: its share (0 once it is neither running nor paused) and state."""
        self.share = float(state.share) if state.active else 0.0
        self._threshold = round(self.share * 100)  # candidate iff bucket below (arm_for's rule)
        self.state = state.state
        interleaving = (state.plan or {}).get("interleaving") or {}
        share = float(interleaving.get("share") or 0.0) if state.active else 0.0
        self.interleaving_share = share
        self._interleaved_from = BUCKETS - round(share * 100)

    def arm_of(self, user: str) -> Arm:
        """The arm of ``user`` at the current share."""
        return "candidate" if self._assigner.bucket(user) < self._threshold else "control"

    def route(self, user: str) -> Arm | Literal["interleaved"]:
        """The arm of ``user``, or ``interleaved`` when its bucket is in the interleaved range
        (one hash either way)."""
        bucket = self._assigner.bucket(user)
        if bucket < self._threshold:
            return "candidate"
        return "interleaved" if bucket >= self._interleaved_from else "control"

    def pick(self, user: str) -> tuple[Arm | Literal["interleaved"], Served]:
        """The arm of ``user`` (or ``interleaved``) and the version that answers it (the
        candidate's for an interleaved user: its answer drafts from both arms)."""
        arm = self.route(user)
        return arm, self.control if arm == "control" else self.candidate

    def max_k(self) -> int:
        """The largest ``k`` both arms can answer."""
        return min(self.control.max_k, self.candidate.max_k)


def load_recommend_arms(
    state: RolloutState,
    served: Served | None,
    load: Callable[[int], Served],
) -> RecommendArms:
    """The arms of ``state``: ``served`` reused when it is an arm's version (its full
    pipeline), anything else loaded by ``load(version)`` (which warms it up)."""

    def version(number: int) -> Served:
        if served is not None and served.model_stages is None and served.version.version == number:
            return served
        return load(number)

    plan = state.control
    kind = plan.get("kind")
    candidate = version(state.candidate)
    if kind == "version":
        number = plan.get("version")
        if not isinstance(number, int):
            raise _bad_control(state)
        control = version(number)
    elif kind == "baseline":
        control = baseline_of(candidate)
    else:
        raise _bad_control(state)
    return RecommendArms(state, control, candidate)


def _bad_control(state: RolloutState) -> RolloutError:
    return RolloutError(
        f"rollout {state.id} of {state.name} has a control a recommender cannot serve: "
        f"{state.control!r}",
        fix="a recommender's control is {kind: version, version: N} (rollout.control: "
        "production) or {kind: baseline} (rollout.control: baseline); abort this rollout and "
        "start it again",
    )
