"""The runbook page: the online store is down (Redis unreachable, the SQLite file unreadable)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from taxiway.spec.models import RedisOnlineStore, SqliteOnlineStore
from taxiway.sprint.runbooks.facts import SERVICE_URL, _Facts, _fallback_chain, _sh, _show


def _online_store_down(f: _Facts) -> str:
    store = f.project.spec.online_store
    budget = f.serving.latency_budget_ms
    circuit = f.series("breaker_open", labels='breaker="online_store"')
    keys: tuple[str, ...] = (
        "serving.latency_budget_ms",
        "serving.breaker.failures",
        "serving.breaker.reset_after",
    )
    if isinstance(store, RedisOnlineStore):
        names = [n for n in store.url.names if not n.startswith("file:")]
        url = re.sub(  # a ${file:...} reference becomes the shell's $(cat <absolute path>)
            r"\$\{file:([^}]*)\}",
            lambda ref: f"$(cat {shlex.quote(str(f.project.base_dir / ref[1]))})",
            store.url.template,
        )
        where = (
            f"Redis at `{store.url.template}` (the value comes from "
            + (", ".join(f"`${n}`" for n in names) or "a secret file")
            + "; it is not shown here), keys prefixed "
            f"`{store.prefix or 'taxiway:' + f.name}`. A lookup runs in a worker thread and is "
            f"abandoned at 80% of the budget ({0.8 * budget:g} ms); each Redis call times out "
            "after `online_store.timeout_ms`."
        )
        keys += ("online_store.timeout_ms",)
        check = [f'redis-cli -u "{url}" ping   # PONG when Redis answers']
        repair = (
            "Bring Redis back (its operator, or `systemctl status redis`). If it restarted "
            "empty (no persistence), refill it; otherwise nothing else is needed:"
        )
    else:
        path = (
            Path(store.path)
            if isinstance(store, SqliteOnlineStore) and store.path
            else f.project.state_dir / "online.sqlite"
        )
        declared = "`online_store.kind: sqlite`" if store else "no `online_store:` in the spec"
        where = (
            f"The SQLite file `{path}` ({declared}). It is read in place (tens of microseconds), "
            "so it fails rather than slows down: the file is missing, unreadable, locked or on "
            "a full disk."
        )
        check = [f"ls -l {shlex.quote(str(path))}"]
        repair = "Rebuild the file from the sources (a missing or corrupt file is fine to replace):"
    entity = next(iter(f.project.spec.entities), "<entity>")
    return f"""{f.header("Online store down")}
{where}

## Symptoms

- `{circuit}` is `1`: {f.serving.breaker.failures} lookups in a row failed or overran, and
  lookups are skipped until one probe succeeds.
- `{f.series("fallbacks", labels='reason="failed"')}`, `reason="timed_out"` and
  `reason="breaker_open"` grow (the model shares these reasons: the prediction log tells which).
- `{f.series("store_latency", "_sum")}` / `{f.series("store_latency", "_count")}` (mean lookup
  time) rises before a network store fails outright.
- Answers say `"degraded": true`, `"path": "fallback:<which>"` and a `reason` of
  `online store timed out`, `online store failed: <error type>` or
  `online store circuit breaker open`; the prediction log records the same. (An answer with
  `"path": "model"` and `"degraded": true` is another case: the store answered, but without
  some features, or with stale ones; its `reason` names them and
  `{f.series("missing_features")}` counts them per view.)
- Readiness (`/v2/health/ready`) stays green: it reports the model, not the store.

{_fallback_chain(f)} While the store is down, `previous` is skipped (it needs the stored
features) and the baseline scores on whatever the request itself carries.

## Thresholds

{f.thresholds(*keys)}

## Diagnose

{
        _sh(
            f"curl -s {SERVICE_URL}/metrics | grep -E '{f.metric['breaker_open']}|{f.metric['fallbacks']}'",
            *check,
            f.cmd("features", "get", f"{entity}=<key>"),
        )
    }

Which answers fell back in the last hour, and why (run with the Python taxiway is installed in):

{f.log_query("ts >= now() - INTERVAL 1 HOUR", "path, reason, count(*) AS answers")}

## Recover

{repair}

{_sh(f.cmd("features", "materialize", "--full"))}

The breaker closes by itself: {_show(f.serving.breaker.reset_after)} after it opened, one lookup
goes through as a probe, and a success closes it. No restart is needed.

## Verify

{_sh(f.cmd("features", "skew"))}

Exit 0 means the online vectors equal the offline ones. `{circuit}` is back to `0` and the
fallback counters stop growing.
"""
