"""Runbooks: one Markdown page per failure mode of this deployment, written from its spec.

Each page gives the symptoms as they show in ``/metrics`` (series names are read from the
service's :class:`~taxiway.serving.metrics.Metrics`) and in the prediction log, the thresholds
as the spec declares them (or the defaults it leaves in force, marked ``default``), and the
``taxiway`` commands that diagnose and recover. Where no command exists yet (drift monitoring,
the rollout controller), a page gives the manual step that works today and names the command
that will replace it. Secrets never appear: a Redis URL is shown as its ``${ENV_VAR}``
reference.

>>> from taxiway.spec.loader import load_spec_text
>>> project = Project(load_spec_text("name: shop\\nserving: {latency_budget_ms: 30}"),
...                   Path("/srv/shop/taxiway.yaml"))
>>> pages = runbooks(project)
>>> sorted(pages)[:3]
['README.md', 'contract-breach-breaker-open.md', 'input-drift.md']
>>> "| `serving.latency_budget_ms` | `30` | spec |" in pages["latency-budget.md"]
True
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taxiway.serving.fallback import parse_chain
from taxiway.serving.metrics import Metrics
from taxiway.spec.durations import format_duration
from taxiway.spec.models import (
    EventLabel,
    Monitoring,
    PeriodicSpine,
    RedisOnlineStore,
    Rollout,
    Serving,
    SqliteOnlineStore,
    SumLabel,
)
from taxiway.spec.project import Project

__all__ = ["PLANNED_COMMANDS", "RUNBOOKS", "runbooks", "write_runbooks"]

PLANNED_COMMANDS = ("taxiway monitor", "taxiway rollout")
"""Commands the runbooks name as the future replacement of a manual step; not built yet."""
_MONITOR, _ROLLOUT = PLANNED_COMMANDS

SERVICE_URL = "http://127.0.0.1:8080"
"""Where ``taxiway serve`` listens unless given ``--host``/``--port``."""


def write_runbooks(project: Project, folder: Path) -> list[Path]:
    """Write every runbook and the index ``README.md`` into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in runbooks(project).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def runbooks(project: Project) -> dict[str, str]:
    """File name → Markdown: ``README.md`` (the index) first, then one page per failure mode."""
    facts = _Facts.of(project)
    pages = {name: render(facts) for name, (_, render) in RUNBOOKS.items()}
    return {"README.md": _index(facts), **pages}


# ------------------------------------------------------------------ what the pages draw on


@dataclass(frozen=True)
class _Facts:
    """The spec's values the pages quote, resolved once."""

    project: Project
    serving: Serving
    log_folder: Path
    metric: dict[str, str]

    @classmethod
    def of(cls, project: Project) -> _Facts:
        serving = project.spec.serving or Serving()
        log = Path(serving.log.path) if serving.log.path else project.state_dir / "predictions"
        return cls(project, serving, log, _series())

    @property
    def name(self) -> str:
        return self.project.spec.name

    @property
    def spec_args(self) -> str:
        """``-f SPEC`` (and ``--state-dir`` when it is not the default), shell-quoted."""
        args = f"-f {shlex.quote(str(self.project.spec_path))}"
        if self.project.state_dir != self.project.spec_path.parent / ".taxiway":
            args += f" --state-dir {shlex.quote(str(self.project.state_dir))}"
        return args

    def cmd(self, *words: str) -> str:
        """A taxiway command line for this project (``words`` are already shell-safe)."""
        return " ".join(["taxiway", *words, self.spec_args])

    def setting(self, key: str) -> str:
        """A table row quoting ``key`` from the spec (or its default), e.g. the budget."""
        value, declared = _lookup(self.project, key)
        return f"| `{key}` | `{_show(value)}` | {'spec' if declared else 'default'} |"

    def thresholds(self, *keys: str) -> str:
        rows = "\n".join(self.setting(key) for key in keys)
        return "| setting | value | from |\n|---|---|---|\n" + rows

    def series(self, attribute: str, suffix: str = "", labels: str = "") -> str:
        """The series name ``/metrics`` exposes for ``Metrics.<attribute>``."""
        return f"{self.metric[attribute]}{suffix}{'{' + labels + '}' if labels else ''}"

    @property
    def owner(self) -> str:
        owner = self.project.spec.owner
        if owner:
            return f"Owner: **{owner}** (`owner` in the spec) is accountable; escalate there."
        return (
            "Owner: **none**: the spec names nobody accountable for this model. Add one:\n\n"
            "```yaml\nowner: <team>\n```"
        )

    def header(self, title: str) -> str:
        path = self.project.spec_path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "-"
        return (
            f"# {title}: `{self.name}`\n\n"
            f"From the spec `{self.project.spec_path}` (sha256 {digest}). "
            f"{self.owner}\n\n"
            "Placeholders in `<angle brackets>` are yours to fill in; the service is assumed at "
            f"{SERVICE_URL} (use the `--host` and `--port` the service was started with). "
            "See [the index](README.md).\n"
        )

    def log_query(self, where: str, select: str, *, group: bool = True) -> str:
        """A runnable Python block: a DuckDB query over the prediction log."""
        tail = "GROUP BY ALL ORDER BY answers DESC" if group else "ORDER BY ts DESC LIMIT 20"
        return (
            "```python\n"
            "from pathlib import Path\n\n"
            "from taxiway.engines.duckdb import connect\n"
            "from taxiway.serving.log import read_predictions\n\n"
            "con = connect()\n"
            f"read_predictions(con, Path({str(self.log_folder)!r}))\n"
            'con.sql("""\n'
            f"    SELECT {select}\n"
            "    FROM predictions\n"
            f"    WHERE {where}\n"
            f"    {tail}\n"
            '""").show(max_width=200)\n'
            "```"
        )


@cache
def _series() -> dict[str, str]:
    """``Metrics`` attribute → the series name in ``/metrics`` (counters end in ``_total``)."""
    names = {}
    for attribute, collector in vars(Metrics()).items():
        describe = getattr(collector, "describe", None)
        if describe is None:
            continue
        family = next(iter(describe()))
        names[attribute] = family.name + ("_total" if family.type == "counter" else "")
    return names


@cache
def _latency_buckets() -> tuple[tuple[float, str], ...]:
    """The latency histogram's bucket bounds, as numbers and as their ``le`` labels."""
    metrics = Metrics()
    metrics.latency.labels("model", "production")
    family = _series()["latency"]
    bounds = [
        sample.labels["le"]
        for collected in metrics.registry.collect()
        if collected.name == family
        for sample in collected.samples
        if sample.name == f"{family}_bucket" and sample.labels["le"] != "+Inf"
    ]
    return tuple((float(bound), bound) for bound in bounds)


def _lookup(project: Project, key: str) -> tuple[Any, bool]:
    """The value of a dotted spec key and whether the spec declares it (else: the default)."""
    node: Any = project.spec
    declared = True
    for part in key.split("."):
        if isinstance(node, dict):
            node = node[part]
            continue
        assert isinstance(node, BaseModel)
        declared = declared and part in node.model_fields_set
        node = getattr(node, part)
        if node is None and part == "serving":
            node = Serving()
    return node, declared


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return "none" if value is None else str(value)


def _sh(*lines: str) -> str:
    return "```sh\n" + "\n".join(lines) + "\n```"


def _yaml(text: str) -> str:
    return "```yaml\n" + text + "\n```"


def _fallback_chain(facts: _Facts) -> str:
    steps = [step.label for step in parse_chain(facts.serving.fallback)]
    chain = " → ".join([*steps, "the training prior"])
    if facts.serving.fallback is None:
        return (
            f"No `serving.fallback` is declared, so a degraded answer is {chain}. "
            "A chain tried in order is better:\n\n"
            + _yaml("serving:\n  fallback: [previous, baseline]")
        )
    return f"The fallback chain (`serving.fallback`): {chain}."


# ------------------------------------------------------------------ the pages


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


def _latency_budget(f: _Facts) -> str:
    budget_s = f.serving.latency_budget_ms / 1000
    bucket = f.series("latency", "_bucket")
    count = f.series("latency", "_count")
    above = [(b, s) for b, s in _latency_buckets() if b >= budget_s - 1e-12]
    if above:
        bound, label = above[0]
        over = f'\n  1 - sum(rate({bucket}{{le="{label}"}}[5m])) / sum(rate({count}[5m]))'
        note = (
            "The second is the share of answers over the budget."
            if abs(bound - budget_s) < 1e-12
            else f"The second is the share of answers over {bound * 1000:g} ms, the nearest "
            f"histogram bound above the {f.serving.latency_budget_ms:g} ms budget (so at most "
            "the share over the budget)."
        )
    else:
        over = ""
        note = (
            f"The histogram's largest bound ({_latency_buckets()[-1][0]:g} s) is below the "
            "budget, so /metrics cannot count answers over it: use `latency_ms` in the log."
        )
    return f"""{f.header("Latency budget breached")}
Each request has {f.serving.latency_budget_ms:g} ms from its arrival. A network store lookup is
abandoned at 80% of it and a slow pilot model at the deadline, and the fallback answers; the
durable log commit comes after that, before the answer is sent.

## Symptoms

- The 99th percentile of `{f.series("latency")}` nears {budget_s:g} s:

  ```promql
  histogram_quantile(0.99, sum by (le, path) (rate({bucket}[5m]))){over}
  ```

  {note}
- `{f.series("fallbacks", labels='reason="timed_out"')}` (store) or `reason="overran"` (model)
  grows: the budget is being enforced by falling back.
- `{f.series("shed")}` and `{f.series("requests", labels='status="429"')}` grow: more than
  `serving.max_in_flight` requests at once per worker.
- `{f.series("log_commit", "_sum")}` / `{f.series("log_commit", "_count")}` rises: the disk
  under the prediction log (`{f.log_folder}`) is slow; callers wait for it though it is not in
  `latency_ms`.

## Thresholds

{f.thresholds("serving.latency_budget_ms", "serving.max_in_flight")}

## Diagnose

{
        _sh(
            f"curl -s {SERVICE_URL}/metrics | grep -E '{f.metric['latency']}_count|{f.metric['shed']}|{f.metric['log_commit']}_sum'",
            f.cmd("models", "show", "<version>"),
            f.cmd("audit", "--model", "<version>"),
        )
    }

`models show` gives the serving form's measured scoring time; `audit` re-measures the
lookup and scoring latency. Where the time goes, by answer path, over the last hour:

{
        f.log_query(
            "ts >= now() - INTERVAL 1 HOUR",
            "path, count(*) AS answers, quantile_cont(latency_ms, 0.99) AS p99_ms, "
            "quantile_cont(lookup_ms, 0.99) AS lookup_p99_ms",
        )
    }

## Recover

- Lookups slow: see [online store down](online-store-down.md).
- Scoring slow: roll back (`taxiway models promote <version>`, see
  [model error](model-error.md)) and retrain with a lighter model.
- Overload (shed requests, every path slow): add workers, as many as there are free cores:

{_sh(f.cmd("serve", "--workers", "<n>"))}

- Log commits slow: move `serving.log.path` to a faster disk, or relax its sync setting
  (docs/serving.md explains the trade-off).

## Verify

The p99 query above stays under {budget_s:g} s and the `timed_out`/`overran` fallbacks stop.
"""


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


_PSI = """
THRESHOLD = {threshold}  # {threshold_note}
SINCE = {since}  # {since_note}

project = Project.load({spec!r}, {state!r})
registry = open_registry(project.spec.registry, state_dir=project.state_dir)
version = registry.production(project.spec.name)
registry.close()
assert version is not None, "no version is in production"
con = connect()
read_predictions(con, Path({log!r}))
rows = con.execute(
    "SELECT to_json(features) FROM predictions WHERE model_version = ? AND ts >= ?",
    [version.version, datetime.now(UTC) - SINCE],
).fetchall()
live = [json.loads(features) for (features,) in rows]
print(f"v{{version.version}}: {{len(live)}} answers since {{datetime.now(UTC) - SINCE:%Y-%m-%d %H:%M}} UTC")
for name, reference in version.profile["features"].items():
    known = [row[name] for row in live if row.get(name) is not None]
    if not known:
        print(f"{{name:50}} no values")
        continue
    if reference["kind"] == "numeric":
        edges = reference["edges"]
        bins = np.searchsorted(edges, np.asarray(known, dtype=float), side="left")
        actual = np.bincount(bins, minlength=len(edges) + 1) / len(known)
        expected = np.asarray(reference["shares"])
    else:
        seen = [c for c in reference["shares"] if c != "__other__"]
        counts = [sum(v == c for v in known) for c in seen]
        actual = np.asarray([*counts, len(known) - sum(counts)]) / len(known)
        expected = np.asarray([reference["shares"][c] for c in seen]
                              + [reference["shares"].get("__other__", 0.0)])
    a, e = np.clip(actual, 1e-4, None), np.clip(expected, 1e-4, None)
    psi = float(np.sum((a - e) * np.log(a / e)))
    alert = THRESHOLD is not None and psi > THRESHOLD
    print(f"{{name:50}} psi {{psi:7.3f}}  rows {{len(known):6}}  {{'ALERT' if alert else ''}}")
"""


def _input_drift(f: _Facts) -> str:
    monitoring = f.project.spec.monitoring
    spine = f.project.spec.spine
    since = spine.every if isinstance(spine, PeriodicSpine) else timedelta(days=1)
    since_note = (
        "spine.every: one scoring round"
        if isinstance(spine, PeriodicSpine)
        else "a day of traffic; widen it when there are few answers"
    )
    if monitoring is None:
        declared = (
            "The spec has no `monitoring:` section: no drift test or threshold is declared, so "
            "nothing would alert. Declare one (0.2 is taxiway's default PSI threshold; choose "
            "yours):\n\n"
            + _yaml(
                f"monitoring:\n  drift: psi\n  alert_threshold: {Monitoring().alert_threshold:g}"
            )
            + "\n\nUntil then the script below prints PSI values without judging them."
        )
        threshold, threshold_note = "None", "no monitoring.alert_threshold in the spec"
    else:
        declared = f.thresholds("monitoring.drift", "monitoring.alert_threshold")
        if monitoring.drift == "psi":
            threshold = f"{monitoring.alert_threshold:g}"
            threshold_note = "monitoring.alert_threshold"
        else:
            declared += (
                f"\n\nThe spec's test is `{monitoring.drift}`; the script below computes PSI, so "
                "it does not apply the spec's threshold (it is on another scale)."
            )
            threshold, threshold_note = "None", f"the spec's threshold is for {monitoring.drift}"
    script = _PSI.format(
        threshold=threshold,
        threshold_note=threshold_note,
        since=repr(since).removeprefix("datetime."),
        since_note=since_note,
        spec=str(f.project.spec_path),
        state=str(f.project.state_dir),
        log=str(f.log_folder),
    )
    imports = (
        "import json\nfrom datetime import UTC, datetime, timedelta\nfrom pathlib import Path\n\n"
        "import numpy as np\n\n"
        "from taxiway.engines.duckdb import connect\n"
        "from taxiway.models.registry import open_registry\n"
        "from taxiway.serving.log import read_predictions\n"
        "from taxiway.spec.project import Project\n"
    )
    return f"""{f.header("Input drift alert")}
Live inputs no longer look like the training data. Drift monitoring is not built yet: the
planned `{_MONITOR}` command will compute it continuously and fire the alert. Until then,
run the check below by hand (or from cron) after each scoring round.

## Symptoms

- The script below prints `ALERT` for a feature.
- `{f.series("out_of_range", labels='field="<field>"')}` grows: request values beyond anything
  seen in training.
- Predictions shift: the share of high scores in the prediction log moves without a reason
  in the business.

## Thresholds

{declared}

## Diagnose

PSI of each input of the production version against its training profile (decile bins, as
the profile stores them; empty bins count as 0.0001):

```python
{imports}{script.rstrip()}
```

## Recover

- One source's features moved together: check the source (`taxiway check`, see
  [contract breach](contract-breach-breaker-open.md)): a changed upstream feed is the usual
  cause.
- Online values differ from what the same definitions give offline: a pipeline bug.

{_sh(f.cmd("check"), f.cmd("features", "skew"))}

- The world moved (the data is right and it changed): retrain on recent data,
  [retraining](retraining.md).
"""


_OUTCOMES = '''from pathlib import Path

from taxiway.engines.duckdb import connect
from taxiway.serving.log import read_predictions

con = connect()
read_predictions(con, Path({log!r}))
read_predictions(con, Path({outcomes!r}), view="outcomes")
con.sql("""
    SELECT p.model_version, count(*) AS answers, count(o.value) AS with_outcome,
           avg(TRY_CAST(o.value AS DOUBLE)) AS {metric}
    FROM predictions p
    LEFT JOIN outcomes o ON o.name = '{metric}' AND o.request_id = p.request_id
    GROUP BY ALL ORDER BY p.model_version
""").show()'''


def _rollback(f: _Facts) -> str:
    rollout = f.project.spec.rollout
    label = f.project.spec.label
    if rollout is None:
        metric = label.name if label is not None else "<outcome>"
        defaults = Rollout()
        declared = (
            "The spec has no `rollout:` section: no control, steps or outcome are declared. "
            "Add one (these steps are taxiway's defaults; the outcome is the spec's label):\n\n"
            + _yaml(
                f"rollout:\n  control: {defaults.control}\n  steps: {_show(defaults.steps)}\n"
                f"  metric: {metric}"
            )
        )
    else:
        metric = rollout.metric or (label.name if label is not None else "<outcome>")
        declared = f.thresholds("rollout.control", "rollout.steps", "rollout.metric")
        if rollout.guardrails:
            declared += f"\n\nGuardrails: {_show(rollout.guardrails)}."
    outcomes = f.log_folder.parent / "outcomes"
    script = _OUTCOMES.format(log=str(f.log_folder), outcomes=str(outcomes), metric=metric)
    return f"""{f.header("Rollout rollback")}
A new version is worse than the one before it. The rollout controller is not built yet: the
planned `{_ROLLOUT}` command will send the declared share of traffic to the candidate
against the control, test the outcome and the guardrails, and roll back by itself. Today every
request goes to the production version (`"arm": "production"`), so a rollout is a promotion
and a rollback is promoting the previous version again.

## Thresholds

{declared}

## Symptoms

- After a promotion (`{f.series("model_version")}` changed), the outcome `{metric}` is worse
  for the new version than for the one before it (the query below), or its fallbacks
  (`{f.series("fallbacks")}`) or latency (`{f.series("latency", "_count")}`) went up.

## Diagnose

{_sh(f.cmd("models", "list"), f.cmd("models", "show", "<version>", "--lineage"))}

The outcome per version, joining the prediction log with the outcomes callers sent to
`POST /v1/outcomes` (`name: {metric}`):

```python
{script}
```

The versions served at different times, so this is a comparison, not an experiment; the
rollout controller will randomize.

## Recover

Promote the version that served before (it stays in the registry when archived); every worker
switches within seconds without failing a request:

{_sh(f.cmd("models", "promote", "<version>", "--by", "'<your name>'", "--note", "'rollback: <why>'"))}

If the gate refuses (the audit of that version, the sign-offs) and the rollback cannot
wait, add `--force --reason 'rollback: <why>'`: who, why and what was overridden go into the
approvals log.

## Verify

`{f.series("model_version")}` shows the version you promoted; `taxiway models list` shows it
in production and the history records who rolled back and why.
"""


def _retraining(f: _Facts) -> str:
    spec = f.project.spec
    spine, label = spec.spine, spec.label
    lines = []
    keys: list[str] = []
    if isinstance(spine, PeriodicSpine):
        keys += ["spine.every", "spine.start", "spine.end"]
        lines.append(
            f"Predictions are made every {_show(spine.every)} (`spine.every`); training uses "
            f"the spine times from `spine.start` to `spine.end`, so retraining on newer data "
            "means moving `spine.end` forward."
        )
    elif spine is not None:
        lines.append(
            f"Predictions are made at each row of `{spine.source}` (an event spine); retraining "
            "takes every row known at the time."
        )
    else:
        lines.append("The spec has no `spine:`: nothing says when predictions are made.")
    if isinstance(label, EventLabel | SumLabel):
        keys.append("label.horizon")
        lag = spec.sources[label.source].available_after if label.source in spec.sources else None
        if lag is not None:
            keys.append(f"sources.{label.source}.available_after")
        wait = label.horizon + (lag or timedelta(0))
        lines.append(
            f"A prediction's label (`{label.name}`) is complete {_show(wait)} after it is made "
            f"(`label.horizon`{' + the source lag' if lag else ''}): the newest spine time "
            f"worth training on is today − {_show(wait)}."
        )
    elif label is not None:
        lines.append(f"The label `{label.name}` is read from the spine row itself.")
    cadence = (
        f"Retraining more often than every {_show(spine.every)} adds no labels. "
        if isinstance(spine, PeriodicSpine)
        else ""
    )
    table = f.thresholds(*keys) if keys else "No spine or label is declared."
    return f"""{f.header("Retraining cadence")}
The spec declares no retraining schedule, and taxiway schedules nothing by itself: the team
picks one and writes it here. What the spec fixes:

{table}

{" ".join(lines)}

{cadence}Retrain when [input drift](input-drift.md) alerts, when the outcome falls
([rollout rollback](rollback.md) shows it per version), or when a source or its contract
changes. Keep the online features fresh for every scoring round by materializing before it.

## Retrain

1. Move `spine.end` forward (a periodic spine) to the newest spine time whose labels are
   complete, then:

{
        _sh(
            f.cmd("check"),
            f.cmd("train"),
            f.cmd("audit"),
            f.cmd("models", "list"),
        )
    }

`train` exits 1 when the new version does not beat its baseline, and `audit` when it finds a
blocker: stop there. Editing the spec changes its hash, so earlier sign-offs now show as given
for an earlier spec; ask again if your policy says so:

{_sh(f.cmd("approve", "--list"))}

2. Promote, refresh the online store, and confirm it matches the offline definitions:

{
        _sh(
            f.cmd(
                "models", "promote", "<version>", "--by", "'<your name>'", "--note", "'retrained'"
            ),
            f.cmd("features", "materialize"),
            f.cmd("features", "skew"),
        )
    }

Watch `{f.series("model_version")}` switch, and the [rollback](rollback.md) query for the
outcome in the weeks after.
"""


RUNBOOKS: dict[str, tuple[str, Callable[[_Facts], str]]] = {
    "online-store-down.md": ("Online store down", _online_store_down),
    "model-error.md": ("Model error", _model_error),
    "latency-budget.md": ("Latency budget breached", _latency_budget),
    "contract-breach-breaker-open.md": (
        "Contract breach or circuit breaker open",
        _contract_or_breaker,
    ),
    "input-drift.md": ("Input drift alert", _input_drift),
    "rollback.md": ("Rollout rollback", _rollback),
    "retraining.md": ("Retraining cadence", _retraining),
}
"""File name → (title, renderer) of every runbook, in the order the index lists them."""


def _index(f: _Facts) -> str:
    rows = "\n".join(f"| [{title}]({name}) |" for name, (title, _) in RUNBOOKS.items())
    return f"""{f.header("Runbooks")}
One page per failure mode of this deployment, generated from its spec by
`taxiway runbook --out <folder>`: regenerate them when the spec changes.

| failure mode |
|---|
{rows}

Metrics: `curl -s {SERVICE_URL}/metrics` (Prometheus text). The prediction log (every answer,
its path, reason, features and latency) is in `{f.log_folder}`; DuckDB reads it (see
docs/serving.md).

Not built yet: drift monitoring (`{_MONITOR}`) and the rollout controller
(`{_ROLLOUT}`). Their pages give the manual step that works today.
"""
