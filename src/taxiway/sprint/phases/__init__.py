"""The sprint's four phases, one module each (:mod:`.data_access`, :mod:`.model_development`,
:mod:`.integration`, :mod:`.deployment`, with :mod:`.governance` for the deployment's
judgements and :mod:`.running` for what they share), and how each turns what the lower layers
found into checks and blockers: the data check, training, the handoff audit, governance.

Each blocker says what kind of problem it is and what kind of fix it needs; the estimate and
who acts come from the kind of fix (:func:`taxiway.sprint.outcome.effort`), never from here:

==========================  ================  ==========  =================================
found                       category          fix kind    estimate, who acts
==========================  ================  ==========  =================================
a missing privilege         organizational    grant       hours, the DBA
an unset environment        technical         setting     minutes, whoever runs the sprint
variable
a source not reachable      technical         code        days, the source's administrator
a spec or contract file     technical         spec_line   minutes, the model's team
a contract rule blocking    technical         data_fix    weeks, the source's producer
a leaking input             technical         retrain     the measured training time
an input not available at   capability        new_source  days, data engineering
prediction time
no lift over the baseline   capability        new_signal  months, the model's team
no owner / no action        organizational    spec_line   minutes, the model's sponsor
a missing sign-off          organizational    sign_off    days, the role's reviewer
a declared gate missing     technical         spec_line   minutes, the model's team
==========================  ================  ==========  =================================

Everything that stops the candidate from serving correctly is on the critical path; warnings
are checks with status ``warn`` and no blocker.

The gates judge what happened, never what was declared:

- **latency**: the load test's p99 as its clients measured it (the whole request, as a user
  sees it), not the service's own ``latency_ms``; both are shown.
- **prediction log**: the records the load test's answers left in the durable log, counted
  by reading it, against the requests that were answered.
- **monitoring** and **rollout**: ``pass`` only on what the monitor or the rollout controller
  reports it observed during the sprint (:class:`~taxiway.sprint.outcome.Exercised`). A
  declared section that nothing ran is ``warn`` with the evidence ``declared, not
  exercised``; a missing section is a blocker. ``warn`` has no blocker, so it does not stop
  the promotion: the debrief says plainly that the section was not exercised.

Importing this package loads no phase: each name below loads its module on first use, so
:mod:`taxiway.sprint.gates` (and with it ``taxiway models promote``) imports only the judgements
it uses, not the integration phase and its HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxiway.sprint.phases.data_access import data_checks
    from taxiway.sprint.phases.governance import (
        NOT_EXERCISED,
        governance_checks,
        monitoring_check,
        rollout_check,
    )
    from taxiway.sprint.phases.integration import latency_check, prediction_log_check
    from taxiway.sprint.phases.model_development import audit_checks, training_checks

__all__ = [
    "NOT_EXERCISED",
    "audit_checks",
    "data_checks",
    "governance_checks",
    "latency_check",
    "monitoring_check",
    "prediction_log_check",
    "rollout_check",
    "training_checks",
]

_LAZY: dict[str, str] = {
    "data_checks": "data_access",
    "NOT_EXERCISED": "governance",
    "governance_checks": "governance",
    "monitoring_check": "governance",
    "rollout_check": "governance",
    "latency_check": "integration",
    "prediction_log_check": "integration",
    "audit_checks": "model_development",
    "training_checks": "model_development",
}
"""Each public name → the module of this package that defines it."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
