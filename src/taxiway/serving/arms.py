"""The two arms of a rollout in the service: which predictor answers a request, by its unit.

While a rollout of the served model is running or paused, the service holds two predictors:

- the **control** arm: a version (``control.kind = version``: the production version the
  rollout started from; the served predictor itself when it is that version), or a policy
  standing for "the previous system": the ``baseline`` trained with a version (by default the
  candidate) or a ``constant`` score. A baseline or constant control still looks up the
  request's features (they are logged like every answer's), answers with ``path`` ``model``
  (its own policy answered, not the fallback chain) and with ``model_version`` null: no
  model version served it;
- the **candidate** arm: the candidate version, with the control's model (when it has one)
  as its ``previous`` fallback.

Each request is assigned by its *unit* (:func:`taxiway.rollout.assignment.arm_for` with the
rollout's salt and current share, through a salt-bound ``Assigner``): the request's ``unit``
field, else the rollout's ``unit`` read from the request (an entity, one of an entity's key
columns, or a request field), else the model's entity (the spine's, else the first the model
looks up). The unit found is written
into the request's ``unit``, so the prediction log records it beside the ``arm``. A request
with no unit is answered by control and counted (``taxiway_rollout_unassigned_total``):
without a unit it can be neither assigned consistently nor analysed.

The arms may need different inputs (a candidate trained with a request field or an entity the
control lacks, or the reverse). A request is validated for the arm that serves it
(:meth:`Arms.parse`): what only the other arm takes is accepted and left out, so a control
answer ignores a candidate-only field and the candidate receives it; a candidate-only field a
candidate request leaves out is null, as any request field left out is (a candidate-only
entity left out is a 422 naming it, as any entity is). The arm is decided once, at parsing,
and the answer follows it.

A paused rollout keeps its share; a rolled-back or aborted one (only followed when nothing is
in production, so control must go on answering) sends every unit to control.

:func:`verdict_document` is the rollout's answer to delivery tools (Argo Rollouts' web metric
provider, a Flagger webhook): ``GET /v1/rollout/verdict``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge

from taxiway.errors import RolloutError
from taxiway.features.online.base import OnlineStore
from taxiway.models.registry import open_registry
from taxiway.rollout.assignment import Assigner
from taxiway.rollout.state import RolloutState
from taxiway.serving.inputs import InputContract, Parsed, RequestError
from taxiway.serving.metrics import Metrics, Tally
from taxiway.serving.predictor import Answer, Predictor
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project

__all__ = ["Arms", "RolloutMetrics", "load_arms", "unit_reader", "verdict_document"]

logger = logging.getLogger("taxiway.serving")

UnitReader = Callable[[Parsed], str | None]


class RolloutMetrics:
    """The rollout's series beside the service's own (answers per arm are the latency
    histogram's ``arm`` label): the candidate's share and the answers no unit assigned."""

    def __init__(self, metrics: Metrics) -> None:
        self.share = Gauge(
            "taxiway_rollout_share",
            "The candidate's share of traffic in percent (0 without a running rollout).",
            ["name"],
            multiprocess_mode="livemax",
            registry=metrics.registry,
        )
        self._unassigned = Counter(
            "taxiway_rollout_unassigned",
            "Answers during a rollout to requests without a unit: served by control, not analysed.",
            ["name"],
            registry=metrics.registry,
        )
        self._tallies: dict[str, Tally] = {}

    def unassigned(self, name: str) -> Tally:
        """The tally of unassigned answers for model ``name``."""
        tally = self._tallies.get(name)
        if tally is None:
            tally = self._tallies[name] = Tally(self._unassigned.labels(name))
        return tally

    def flush(self) -> None:
        """Hand the tallies to prometheus_client (on the event loop, like the service's)."""
        for tally in self._tallies.values():
            tally.flush()


class Arms:
    """The control and candidate predictors of one rollout, and the split between them."""

    def __init__(
        self,
        state: RolloutState,
        control: Predictor,
        candidate: Predictor,
        unit_of: UnitReader,
        unassigned: Tally,
    ) -> None:
        self.control = control
        self.candidate = candidate
        self.rollout_id = state.id
        self.salt = state.salt
        self._assigner = Assigner(state.salt)
        self.candidate_version = state.candidate
        self.control_plan = dict(state.control)
        self._unit_of = unit_of
        self._unassigned = unassigned
        self.state = state.state
        self.share = 0.0
        self._threshold = 0
        self.follow(state)
        control_names, candidate_names = control.contract.names(), candidate.contract.names()
        self.same_inputs = control.contract == candidate.contract
        # what each arm accepts and leaves out: the names only the other arm takes
        self._control_ignores = candidate_names - control_names
        self._candidate_ignores = control_names - candidate_names

    def parse(self, item: Any) -> Parsed:
        """Validate a request item for the arm that serves it (its ``arm`` set), or raise a
        :class:`RequestError` naming every bad field of it for that arm.

        The arm needs the unit, read from the item as the control's contract parses it (what
        only the candidate takes left out). An item the control refuses is still the
        candidate's when the candidate accepts it and its unit is in the candidate arm.
        """
        if self.same_inputs:
            parsed = self.control.contract.parse(item)
            parsed.arm = self.arm_of(parsed) or "control"
            return parsed
        try:
            parsed = self.control.contract.parse(item, self._control_ignores)
        except RequestError as refused:
            try:
                parsed = self.candidate.contract.parse(item, self._candidate_ignores)
            except RequestError:
                raise refused from None
            if self.arm_of(parsed) != "candidate":
                raise refused from None
            parsed.arm = "candidate"
            return parsed
        arm = self.arm_of(parsed) or "control"
        if arm == "candidate":
            unit = parsed.unit
            parsed = self.candidate.contract.parse(item, self._candidate_ignores)
            parsed.unit = unit
        parsed.arm = arm
        return parsed

    def same_rollout(self, state: RolloutState) -> bool:
        """Whether ``state`` is (a later reading of) this rollout: same id, arms and salt."""
        return (
            state.id == self.rollout_id
            and state.salt == self.salt
            and state.candidate == self.candidate_version
            and dict(state.control) == self.control_plan
        )

    def follow(self, state: RolloutState) -> None:
        """Take a new reading of the rollout: its share (0 once it is neither running nor
        paused) and its state. One assignment each: a request reads the share once."""
        self.share = float(state.share) if state.active else 0.0
        self._threshold = round(self.share * 100)  # candidate iff bucket below (arm_for's rule)
        self.state = state.state

    def arm_of(self, parsed: Parsed) -> str | None:
        """The arm of a request (its ``unit`` filled in from the rollout's unit when it had
        none), or None when it has no unit."""
        unit = parsed.unit
        if unit is None:
            unit = parsed.unit = self._unit_of(parsed)
            if unit is None:
                return None
        return "candidate" if self._assigner.bucket(unit) < self._threshold else "control"

    def answer(self, parsed: Parsed, started: float) -> Awaitable[Answer]:
        """The answer of the request's arm, labelled with it (``control``: also a request
        without a unit). The arm's predictor's own coroutine: no frame of its own."""
        arm = parsed.arm or self.arm_of(parsed)
        if arm is None:
            arm = "control"
        if parsed.unit is None:
            self._unassigned.inc()
        predictor = self.candidate if arm == "candidate" else self.control
        # the label is the arm's, not the predictor's: the served one may be the control
        return predictor.answer(parsed, started, arm)

    def predictors(self) -> tuple[Predictor, Predictor]:
        """(control, candidate)."""
        return self.control, self.candidate


def unit_reader(unit: str | None, contract: InputContract, spec: TaxiwaySpec) -> UnitReader:
    """How to read a request's unit when it sends no ``unit`` field: the entity (or an entity's
    only key column) or request field named ``unit``; without one, the model's entity.

    >>> contract = InputContract(entities={"customer": ("customer_id",)}, fields={})
    >>> spec = TaxiwaySpec(name="shop", entities={"customer": "customer_id"})
    >>> read = unit_reader("customer_id", contract, spec)
    >>> read(Parsed(keys={"customer": "100017"}, values={}, unit=None))
    '100017'
    >>> unit_reader(None, InputContract(entities={}, fields={}), spec)(
    ...     Parsed(keys={}, values={}, unit=None)) is None
    True
    """
    entities = contract.entities
    if unit is None:
        spine_entity = getattr(spec.spine, "entity", None) if spec.spine is not None else None
        if spine_entity in entities:
            unit = spine_entity
        elif entities:
            unit = next(iter(entities))
        else:
            return _no_unit
    if unit in entities:
        entity = unit
        return lambda parsed: parsed.keys.get(entity)
    for entity, columns in entities.items():
        if columns == (unit,):
            return lambda parsed: parsed.keys.get(entity)
    if unit in contract.fields:
        field = unit
        return lambda parsed: _text(parsed.values.get(field))
    logger.warning(
        "the rollout's unit `%s` is neither an entity nor a request field of the served "
        "model: only requests sending `unit` are assigned",
        unit,
    )
    return _no_unit


def _no_unit(parsed: Parsed) -> str | None:
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def load_arms(
    project: Project,
    state: RolloutState,
    store: OnlineStore,
    executor: ThreadPoolExecutor,
    served: Predictor | None,
    unassigned: Tally,
    *,
    warm_up: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> Arms:
    """Build the arms of ``state``: load (and warm up) what the served predictor is not;
    ``clock`` is the service's (the time lookups judge at)."""
    spec = project.spec
    registry = open_registry(spec.registry, state_dir=project.state_dir)
    try:

        def reuse(version: int) -> Predictor | None:
            if served is not None and served.policy == "model":
                return served if served.version.version == version else None
            return None

        def loaded(version: int, *, arm: str, previous: Predictor | None = None) -> Predictor:
            predictor = Predictor(
                spec,
                registry.get(spec.name, version),
                store,
                executor=executor,
                arm=arm,
                previous=previous.model if previous is not None else None,
                clock=clock,
            )
            if warm_up:
                predictor.warm_up()
            return predictor

        plan = state.control
        kind = plan.get("kind")
        control_version = plan.get("version")
        control: Predictor | None = None
        if kind == "version":
            if not isinstance(control_version, int):
                raise _bad_control(state)
            control = reuse(control_version) or loaded(control_version, arm="control")
        candidate = reuse(state.candidate) or loaded(
            state.candidate, arm="candidate", previous=control or served
        )
        if kind in ("baseline", "constant"):
            policy: Any
            if kind == "baseline":
                policy = "baseline"
            else:
                constant = plan.get("constant")
                if isinstance(constant, bool) or not isinstance(constant, int | float):
                    raise _bad_control(state)
                policy = float(constant)
            base = candidate
            if kind == "baseline" and isinstance(control_version, int):
                base = reuse(control_version) or loaded(control_version, arm="control")
            control = Predictor(
                spec,
                base.version,
                store,
                executor=executor,
                arm="control",
                policy=policy,
                model=base.model,
                clock=clock,
            )
        if control is None:
            raise _bad_control(state)
    finally:
        registry.close()
    reader = unit_reader(state.unit, control.contract, spec)
    return Arms(state, control, candidate, reader, unassigned)


def _bad_control(state: RolloutState) -> RolloutError:
    return RolloutError(
        f"rollout {state.id} of {state.name} has a control the service cannot serve: "
        f"{state.control!r}",
        fix="control is {kind: version, version: N}, {kind: baseline} or "
        "{kind: constant, constant: 0.1}; abort this rollout and start it again",
    )


# --------------------------------------------------------------------------- the verdict

_UNHEALTHY_STATES = frozenset({"paused", "rolled_back", "aborted"})
_UNHEALTHY_VERDICTS = frozenset({"rollback", "pause"})


def verdict_document(state: RolloutState | None, *, strict: bool = False) -> tuple[int, Any]:
    """The status and JSON body of ``GET /v1/rollout/verdict`` for the active (else newest)
    rollout ``state``.

    ``healthy`` is false when the rollout is paused, rolled back or aborted, or its last
    verdict is ``rollback`` or ``pause``: the candidate must not get more traffic. ``hold``
    (not enough evidence yet), ``promote`` and ``complete`` are healthy. The status is 200
    (the body says the rest), 503 for an unhealthy rollout when ``strict`` (a Flagger
    webhook passes on 2xx only), and 404 when the model has had no rollout.

    >>> verdict_document(None)
    (404, {'error': 'this model has no rollout; start one with `taxiway rollout start`'})
    """
    if state is None:
        return 404, {"error": "this model has no rollout; start one with `taxiway rollout start`"}
    verdict = state.verdict if isinstance(state.verdict, dict) else {}
    kind = verdict.get("kind", verdict.get("verdict"))
    kind = kind if isinstance(kind, str) else None
    reasons = _texts(verdict.get("reasons"))
    needs = _texts(verdict.get("needs"))
    checked = verdict.get("checked_at", verdict.get("at"))
    if isinstance(checked, datetime):
        checked = checked.isoformat()
    healthy = state.state not in _UNHEALTHY_STATES and kind not in _UNHEALTHY_VERDICTS
    if not healthy and not reasons:
        reasons = [f"the rollout is {state.state.replace('_', ' ')}"]
    body = {
        "rollout": state.id,
        "name": state.name,
        "state": state.state,
        "step": state.step_index + 1,
        "steps": len(state.steps),
        "share": float(state.share),
        "candidate": state.candidate,
        "verdict": kind,
        "healthy": healthy,
        "reasons": reasons,
        "needs": needs,
        "checked_at": checked if isinstance(checked, str) else None,
        "updated_at": state.updated_at.isoformat(),
    }
    evidence = verdict.get("evidence")
    if isinstance(evidence, dict) and isinstance(evidence.get("interleaving"), dict):
        body["interleaving"] = evidence["interleaving"]  # a recommender's pre-gate
    return (503 if strict and not healthy else 200), body


def _texts(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
