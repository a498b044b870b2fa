"""The runbook page: the served model fails, overruns or returns a non-finite score."""

from __future__ import annotations

from taxiway.sprint.runbooks.facts import SERVICE_URL, _Facts, _fallback_chain, _sh


def _model_error(f: _Facts) -> str:
    circuit = f.series("breaker_open", labels='breaker="model"')
    return f"""{f.header("Model error")}
The served version fails, overruns the budget or returns a non-finite score.

## Symptoms

- `{circuit}` is `1`: {f.serving.breaker.failures} scores in a row failed; the model is not
  called until a probe succeeds.
- `{f.series("fallbacks", labels='reason="failed"')}` grows (an exception),
  `reason="overran"` (slower than the budget) or `reason="other"` (a non-finite score).
- Answers and the prediction log carry `reason`: `model failed: <error type>`,
  `model overran the latency budget`, `model returned a non-finite score` or
  `model circuit breaker open`.
- `{f.series("model_version", labels=f'name="{f.name}"')}` says which version is serving.
  After a promotion, the server's output may say `hot reload failed; still serving v<N>`:
  the new version could not be loaded and the old one kept serving.

{_fallback_chain(f)}

## Thresholds

{
        f.thresholds(
            "serving.latency_budget_ms", "serving.breaker.failures", "serving.breaker.reset_after"
        )
    }

## Diagnose

{
        _sh(
            f"curl -s {SERVICE_URL}/metrics | grep -E '{f.metric['model_version']}|{f.metric['breaker_open']}'",
            f.cmd("models", "list"),
            f.cmd("models", "show", "<version>"),
            f.cmd("audit", "--model", "<version>"),
        )
    }

The latest failed answers and the inputs they had:

{f.log_query("reason LIKE 'model %'", "ts, model_version, reason, features", group=False)}

## Recover

Roll back to the version that served before (from `taxiway models list`); every worker picks
it up within seconds, with no request failing:

{
        _sh(
            f.cmd(
                "models",
                "promote",
                "<version>",
                "--by",
                "'<your name>'",
                "--note",
                "'rollback: <why>'",
            )
        )
    }

A rollback passes the same gate as any promotion (the audit of that version, the sign-offs);
if the gate refuses and the rollback cannot wait, add `--force --reason 'rollback: <why>'`:
who, why and what was overridden go into the approvals log.

Then fix the cause (a broken artifact, an input the model never saw), retrain and audit
(see [retraining](retraining.md)) before promoting again.

## Verify

`{f.series("model_version")}` shows the version you promoted, `{circuit}` is `0` and
`{f.series("fallbacks")}` stops growing.
"""
