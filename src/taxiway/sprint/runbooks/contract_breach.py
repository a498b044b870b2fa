"""The runbook page: a request or source breaks its contract, or a circuit breaker is open."""

from __future__ import annotations

from taxiway.sprint.runbooks.facts import SERVICE_URL, _Facts, _sh


def _contract_or_breaker(f: _Facts) -> str:
    sources = f.project.spec.sources
    contracts = [f"`{n}` → `{s.contract}`" for n, s in sources.items() if s.contract]
    bare = [f"`{n}`" for n, s in sources.items() if not s.contract]
    inventory = "Sources with a contract: " + (", ".join(contracts) or "none") + "."
    if bare:
        inventory += f" Without one (nothing is checked): {', '.join(bare)}."
    unprocessable = f.series("requests", labels='route="/v1/predict",status="422"')
    return f"""{f.header("Contract breach or circuit breaker open")}
Three things go by this name: requests that break the service's input contract, source data
that breaks its data contract, and the service's own circuit breakers.

## Requests that break the input contract

Symptoms: `{unprocessable}` grows (every bad field is named in the answer's
`detail[].loc` and `.msg`); `{f.series("out_of_range", labels='field="<field>"')}` grows for
values outside the training range, which are scored and flagged, or answered by the fallback
(`reason="out_of_the_training_range"` in `{f.series("fallbacks")}`), as
`serving.out_of_range` says.

{f.thresholds("serving.out_of_range")}

{
        _sh(
            f"curl -s {SERVICE_URL}/openapi.json   # the contract the service enforces",
            f.cmd("models", "show", "<version>"),
        )
    }

Recover: the caller fixes what it sends. If the world changed (a new category, a wider
range), retrain on recent data: [retraining](retraining.md).

## Source data that breaks its contract

{inventory} Rows failing a `quarantine` rule are set aside in
`{f.project.state_dir / "quarantine"}/<source>/` with the reason; a failing `block` rule stops
everything that reads the source (materialization and training refuse to run, so the online
features go stale).

{_sh(f.cmd("check"), f.cmd("features", "materialize"))}

`check` exits 3 when a `block` rule fails, naming the source and the rule.
Fix the data at its source with its owner (or, if the contract is wrong, the contract), run
`check` until it exits 0, then materialize.

## The service's circuit breakers

`{f.series("breaker_open", labels='breaker="online_store"')}` or
`{f.series("breaker_open", labels='breaker="model"')}` is `1`: `serving.breaker.failures`
failures in a row opened it, and answers come from the fallback at once, without waiting for a
timeout.

{f.thresholds("serving.breaker.failures", "serving.breaker.reset_after")}

It closes by itself after a successful probe. Find out why it opened:
[online store down](online-store-down.md) or [model error](model-error.md).
"""
