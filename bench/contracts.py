"""Contract validation benchmark: taxiway against pandera and Great Expectations.

The same table (``--rows``, default 10M, generated deterministically with numpy) is checked
with the same five rules by every tool:

1. ``order_id`` is not null;
2. ``order_id`` is unique (nulls are not duplicates);
3. ``amount >= 0``;
4. ``status`` is one of placed, shipped, returned;
5. ``email`` matches a regular expression.

Each tool runs in a fresh process (this script re-run with a hidden ``--worker TOOL`` flag)
that reads the table from one Parquet file in ``bench/.data/contracts/`` into the same frame
(``pd.read_parquet``), then validates it ``--repeat`` times. The worker reports the best
validation time and the peak resident memory of validation above the resident memory after
the frame was loaded. ``taxiway-parquet`` validates the Parquet file straight from disk,
with no frame at all. Every tool must find the failures the generator planted; a
disagreement is printed loudly and the run exits with status 1.

    .venv/bin/python bench/contracts.py                      # 10M rows, best of 3
    .venv/bin/python bench/contracts.py --rows 1000000 --only taxiway,pandera
    .venv/bin/python bench/contracts.py --memory-scaling     # taxiway from Parquet, 1M..30M
    .venv/bin/python bench/contracts.py --profile            # where taxiway's time goes
    .venv/bin/python bench/contracts.py --rounds 3 --wait-idle 300   # on a shared machine

The machine's other load (CPU used by other processes while a worker ran) is reported beside
every figure: on a shared machine, ``--wait-idle`` waits for quiet and ``--rounds`` repeats
the workers round robin so a burst of other work does not decide the result.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from toolkit import (
    OtherLoad,
    high_water,
    machine,
    markdown_table,
    own_cpu_seconds,
    rss,
    versions,
    wait_idle,
)

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data" / "contracts"
SEED = 20260607
CHUNK = 1_000_000
ROW_GROUP = 262_144
MB = 1024 * 1024
RESULT_MARK = "@@bench-result@@ "

RULES = ("not_null", "unique", "non_negative", "in_set", "regex")
STATUSES = ("placed", "shipped", "returned")
EMAIL_PATTERN = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"

# planted violations, as fractions of the rows
NULL_RATE = 0.0005
DUPLICATE_PAIR_RATE = 0.0005
NEGATIVE_RATE = 0.001
BAD_STATUS_RATE = 0.001
BAD_EMAIL_RATE = 0.001

VERSIONED = ("taxiway", "duckdb", "pandas", "pyarrow", "numpy", "pandera", "great_expectations")
TOOLS = ("taxiway", "taxiway-parquet", "pandera", "gx")
PEERS = ("pandera", "gx")
TAXIWAY = ("taxiway", "taxiway-parquet")

CONTRACT = f"""
apiVersion: v3.1.0
kind: DataContract
id: bench-orders
schema:
  - name: orders
    properties:
      - {{name: order_id, required: true, unique: true}}
      - {{name: amount, logicalType: number, logicalTypeOptions: {{minimum: 0}}}}
      - {{name: status, logicalType: string, enum: [{", ".join(STATUSES)}]}}
      - name: email
        logicalType: string
        logicalTypeOptions: {{pattern: '{EMAIL_PATTERN}'}}
"""
# order_id has no logicalType: read into pandas it is float64 (NaN for null), and an integer
# type would add a sixth rule (whole numbers) that the peers do not run.

TAXIWAY_RULES = {
    "order_id.required": "not_null",
    "order_id.unique": "unique",
    "amount.minimum": "non_negative",
    "status.enum": "in_set",
    "email.pattern": "regex",
}


PANDERA_CHECKS = {
    ("order_id", "not_nullable"): "not_null",
    ("order_id", "unique"): "unique",
    ("amount", "greater_than_or_equal_to(0)"): "non_negative",
    ("status", f"isin({list(STATUSES)})"): "in_set",
    ("email", f"str_matches('{EMAIL_PATTERN}')"): "regex",
}
GX_TYPES = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_unique": "unique",
    "expect_column_values_to_be_between": "non_negative",
    "expect_column_values_to_be_in_set": "in_set",
    "expect_column_values_to_match_regex": "regex",
}


# --------------------------------------------------------------------------- data


def data_path(rows: int, seed: int) -> Path:
    return DATA_DIR / f"orders-{rows}-seed{seed}.parquet"


def ensure_data(rows: int, seed: int) -> tuple[Path, dict[str, int]]:
    """The Parquet file of ``rows`` rows (generated once) and its true failing counts."""
    path = data_path(rows, seed)
    truth_path = path.with_suffix(".truth.json")
    if path.exists() and truth_path.exists():
        return path, json.loads(truth_path.read_text())
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {rows:,} rows into {path} ...", flush=True)
    started = time.perf_counter()
    truth = dict.fromkeys((*RULES, "unique_members"), 0)
    partial = path.with_suffix(".partial")
    types: dict[str, pa.DataType] = {
        "order_id": pa.int64(),
        "amount": pa.float64(),
        "status": pa.string(),
        "email": pa.string(),
    }
    schema = pa.schema(types)
    with pq.ParquetWriter(partial, schema) as writer:
        for index, offset in enumerate(range(0, rows, CHUNK)):
            size = min(CHUNK, rows - offset)
            rng = np.random.default_rng([seed, index])
            table, counts = _chunk(rng, offset, size, schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
            for key, value in counts.items():
                truth[key] += value
    partial.rename(path)
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    print(f"  done in {time.perf_counter() - started:.1f} s; planted failures {truth}", flush=True)
    return path, truth


def _chunk(
    rng: np.random.Generator, offset: int, size: int, schema: pa.Schema
) -> tuple[pa.Table, dict[str, int]]:
    """One chunk of rows and its failing counts, computed independently of every tool."""
    pairs = int(size * DUPLICATE_PAIR_RATE)
    nulls = int(size * NULL_RATE)
    # order ids: a shuffled range, then some rows copy another row's id, and some are null
    ids = offset + rng.permutation(size)
    picked = rng.choice(size, 2 * pairs + nulls, replace=False)
    ids[picked[pairs : 2 * pairs]] = ids[picked[:pairs]]
    null = np.zeros(size, dtype=bool)
    null[picked[2 * pairs :]] = True
    present = ids[~null]
    _, counts = np.unique(present, return_counts=True)

    amount = np.round(rng.lognormal(3.0, 1.0, size), 2)
    negative = rng.choice(size, int(size * NEGATIVE_RATE), replace=False)
    amount[negative] = -amount[negative] - 0.01

    labels = np.array([*STATUSES, "lost", "Placed"])
    codes = rng.choice(3, size, p=[0.5, 0.3, 0.2])
    bad = rng.choice(size, int(size * BAD_STATUS_RATE), replace=False)
    codes[bad] = rng.choice([3, 4], len(bad))
    status = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(labels))

    domains = pa.array(["example.com", "mail.example.org", "shop.net", "corp.co.uk"])
    local = pc.binary_join_element_wise(
        pa.array(rng.choice(["anna", "bo", "chen", "dara", "eli"], size)),
        pc.cast(pa.array(rng.integers(0, 10_000_000, size)), pa.string()),
        "",
    )
    domain = domains.take(rng.integers(0, len(domains), size))
    good = pc.binary_join_element_wise(local, domain, "@")
    broken = pc.binary_join_element_wise(local, domain, " at ")
    bad_email = np.zeros(size, dtype=bool)
    bad_email[rng.choice(size, int(size * BAD_EMAIL_RATE), replace=False)] = True
    email = pc.if_else(pa.array(bad_email), broken, good)

    pattern = re.compile(EMAIL_PATTERN)
    truth = {
        "not_null": int(null.sum()),
        "unique": int((counts - 1).sum()),
        "unique_members": int(counts[counts > 1].sum()),
        "non_negative": int((amount < 0).sum()),
        "in_set": int((codes >= 3).sum()),
        "regex": sum(pattern.match(value) is None for value in email.to_pylist()),
    }
    table = pa.table(
        [pa.array(ids, mask=null), pa.array(amount), status.cast(pa.string()), email], schema=schema
    )
    return table, truth


# --------------------------------------------------------------------------- memory


class PeakMemory:
    """The peak resident memory of this process from now on.

    On Linux the kernel's high-water mark is reset to the current RSS (``clear_refs``) and read
    back (``VmHWM``): exact, and free. Elsewhere a thread polls the RSS every 5 ms.
    """

    def __init__(self) -> None:
        self.method = "VmHWM"
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.method = "polled"
        if high_water() is None:
            self.method = "polled"
        self._peak = rss()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.method == "polled":
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, rss())

    def finish(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            return max(self._peak, rss())
        return max(high_water() or 0, rss())


# --------------------------------------------------------------------------- tools


class Tool:
    """One validator: ``setup`` builds its schema or suite, ``run`` validates once."""

    needs_frame = True

    def setup(self, frame: Any, path: Path) -> None:
        raise NotImplementedError

    def run(self) -> dict[str, int]:
        """Failing rows per rule of :data:`RULES`."""
        raise NotImplementedError


class TaxiwayTool(Tool):
    def __init__(self, *, from_parquet: bool) -> None:
        from taxiway.data.contracts import load_contract_text, validate, validate_frame
        from taxiway.engines.duckdb import connect, quote_literal

        self.from_parquet = from_parquet
        self.needs_frame = not from_parquet
        self._load = load_contract_text
        self._validate = validate
        self._validate_frame = validate_frame
        self._connect = connect
        self._quote = quote_literal

    def setup(self, frame: Any, path: Path) -> None:
        self.frame = frame
        self.path = path
        self.contract = self._load(CONTRACT)

    def run(self) -> dict[str, int]:
        if self.from_parquet:
            con = self._connect()
            try:
                con.execute(
                    "CREATE VIEW orders AS SELECT * FROM "
                    f"read_parquet({self._quote(str(self.path))})"
                )
                report = self._validate(con, "orders", self.contract, source="orders")
            finally:
                con.close()
        else:
            report = self._validate_frame(self.frame, self.contract, source="orders")
        counts = {r.rule: r.failing for r in report.results}
        if set(counts) != set(TAXIWAY_RULES):
            raise RuntimeError(f"taxiway ran rules {sorted(counts)}, not {sorted(TAXIWAY_RULES)}")
        return {TAXIWAY_RULES[rule]: int(failing or 0) for rule, failing in counts.items()}


class PanderaTool(Tool):
    def __init__(self) -> None:
        import pandera.pandas as pandera

        self.pandera = pandera

    def setup(self, frame: Any, path: Path) -> None:
        pandera = self.pandera
        self.frame = frame
        # pandera's built-in `unique=True, report_duplicates="exclude_first"` finds the same
        # rows (nulls left out) but runs `is_unique` and then `duplicated`: about 1.5 s slower at
        # 10M rows. This one-pass check (nulls pass: ignore_na) is the fastest way to say it in
        # pandera, so the comparison does not flatter taxiway.
        self.schema = pandera.DataFrameSchema(
            {
                "order_id": pandera.Column(
                    nullable=False,
                    checks=pandera.Check(lambda s: ~s.duplicated(keep="first"), name="unique"),
                ),
                "amount": pandera.Column(checks=pandera.Check.ge(0)),
                "status": pandera.Column(checks=pandera.Check.isin(list(STATUSES))),
                "email": pandera.Column(checks=pandera.Check.str_matches(EMAIL_PATTERN)),
            }
        )

    def run(self) -> dict[str, int]:
        counts = dict.fromkeys(RULES, 0)
        try:
            self.schema.validate(self.frame, lazy=True)
        except self.pandera.errors.SchemaErrors as errors:
            cases = errors.failure_cases
            for (column, check), n in cases.groupby(["column", "check"]).size().items():
                key = PANDERA_CHECKS.get((column, check))
                if key is None:
                    raise RuntimeError(
                        f"pandera failed an unexpected check {column}/{check}"
                    ) from None
                counts[key] = int(n)
        return counts


class GxTool(Tool):
    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe

        self.gx = gx
        self.gxe = gxe

    def setup(self, frame: Any, path: Path) -> None:
        gx, gxe = self.gx, self.gxe
        self.frame = frame
        context = gx.get_context(mode="ephemeral")
        asset = context.data_sources.add_pandas("bench").add_dataframe_asset("orders")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("all")
        self.suite = context.suites.add(gx.ExpectationSuite(name="orders"))
        for expectation in (
            gxe.ExpectColumnValuesToNotBeNull(column="order_id"),
            gxe.ExpectColumnValuesToBeUnique(column="order_id"),
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
            gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN),
        ):
            self.suite.add_expectation(expectation)

    def run(self) -> dict[str, int]:
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": self.frame})
        # BASIC: counts without the lists of unexpected values, the cheapest format
        result = batch.validate(self.suite, result_format="BASIC")
        counts = dict.fromkeys(RULES, 0)
        for item in result.results:
            counts[GX_TYPES[item.expectation_config.type]] = int(item.result["unexpected_count"])
        return counts


def make_tool(name: str) -> Tool:
    if name in TAXIWAY:
        return TaxiwayTool(from_parquet=name == "taxiway-parquet")
    if name == "pandera":
        return PanderaTool()
    if name == "gx":
        return GxTool()
    raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")


def expected_counts(tool: str, truth: dict[str, int]) -> dict[str, int]:
    """What ``tool`` must report: GX counts every row of a duplicated group, not the surplus."""
    counts = {rule: truth[rule] for rule in RULES}
    if tool == "gx":
        counts["unique"] = truth["unique_members"]
    return counts


# --------------------------------------------------------------------------- worker


def _forbid_network() -> list[str]:
    """Make any socket connection from this process fail, and remember the attempts."""
    import socket

    attempts: list[str] = []

    def refuse(sock: socket.socket, address: Any, *_: Any) -> Any:
        attempts.append(repr(address))
        raise OSError("network disabled by bench/contracts.py")

    socket.socket.connect = refuse  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign, assignment]
    return attempts


def worker(tool_name: str, path: Path, repeat: int) -> dict[str, Any]:
    """Validate ``path`` with one tool in this (fresh) process; measure time and memory."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    attempts = _forbid_network()
    import pandas as pd

    tool = make_tool(tool_name)  # imports the tool's library
    rss_start = rss()
    started = time.perf_counter()
    frame = pd.read_parquet(path) if tool.needs_frame else None
    load_s = time.perf_counter() - started
    rss_loaded = rss()
    started = time.perf_counter()
    tool.setup(frame, path)
    setup_s = time.perf_counter() - started
    rss_ready = rss()

    peak = PeakMemory()
    times: list[float] = []
    cpu_times: list[float] = []
    counts: dict[str, int] = {}
    for _ in range(repeat):
        started, cpu = time.perf_counter(), own_cpu_seconds()
        counts = tool.run()
        times.append(time.perf_counter() - started)
        cpu_times.append(own_cpu_seconds() - cpu)
    peak_rss = peak.finish()
    import resource

    return {
        "tool": tool_name,
        "rows": None if frame is None else len(frame),
        "load_s": load_s,
        "setup_s": setup_s,
        "times": times,
        "cpu_times": cpu_times,
        "counts": counts,
        "rss_start": rss_start,
        "rss_loaded": rss_loaded,
        "rss_ready": rss_ready,
        "peak_rss": peak_rss,
        "peak_method": peak.method,
        "maxrss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "network_attempts": attempts,
    }


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds: all the times, the largest memory, the busiest machine."""
    if len(runs) == 1:
        return runs[0]
    for run in runs[1:]:
        if run["counts"] != runs[0]["counts"]:
            print(f"!!! {run['tool']} found different counts in different rounds")
    merged = max(runs, key=validate_peak).copy()
    merged["times"] = [t for run in runs for t in run["times"]]
    merged["cpu_times"] = [t for run in runs for t in run["cpu_times"]]
    merged["load_s"] = min(run["load_s"] for run in runs)
    merged["maxrss_child"] = max(run["maxrss_child"] for run in runs)
    merged["other_load"] = max(run["other_load"] for run in runs)
    return merged


def spawn(tool: str, path: Path, repeat: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter; add its peak RSS as the parent sees it."""
    import tempfile

    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool]
    command += ["--data", str(path), "--repeat", str(repeat)]
    environment = {**os.environ, "GX_ANALYTICS_ENABLED": "false", **(env or {})}
    load = OtherLoad()
    with tempfile.TemporaryFile("w+") as errors:
        # in bench/.data, so DuckDB's spill folder (.tmp, when memory_limit is hit) stays ignored
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=environment,
            cwd=DATA_DIR,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not lines:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"worker {tool} failed with exit status {process.returncode}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
    result["maxrss_child"] = usage.ru_maxrss * 1024  # RUSAGE of this one child, via wait4
    result["other_load"] = load.cores(ours=usage.ru_utime + usage.ru_stime)
    if result["network_attempts"]:
        print(f"!!! {tool} tried to open network connections: {result['network_attempts']}")
    return result


# --------------------------------------------------------------------------- report


def _mb(n: float) -> str:
    return f"{n / MB:,.0f}"


def validate_peak(result: dict[str, Any]) -> int:
    """Peak RSS during validation above the RSS once the frame was loaded and the tool set up."""
    return max(0, int(result["peak_rss"]) - int(result["rss_ready"]))


def compare(results: dict[str, dict[str, Any]], truth: dict[str, int]) -> bool:
    """Print the time, memory, failing-count and ratio tables; True when every count agrees."""
    rows = []
    for tool, result in results.items():
        times = result["times"]
        rows.append(
            [
                tool,
                f"{min(times):.2f}",
                f"{statistics.median(times):.2f}",
                f"{min(result['cpu_times']):.2f}",
                "—" if tool == "taxiway-parquet" else f"{result['load_s']:.2f}",
                f"{result['setup_s']:.2f}",
                _mb(result["rss_loaded"] - result["rss_start"]),
                _mb(validate_peak(result)),
                _mb(result["maxrss_child"]),
                f"{result['other_load']:.2f}",
            ]
        )
    print(f"\n### Time and memory (best of {len(next(iter(results.values()))['times'])})\n")
    print(
        markdown_table(
            [
                "tool",
                "validate s (best)",
                "validate s (median)",
                "validate CPU s (best)",
                "load frame s",
                "setup s",
                "frame MB",
                "validate peak MB",
                "process peak MB",
                "other load (cores)",
            ],
            rows,
        )
    )
    method = {r["peak_method"] for r in results.values()}
    print(
        "\nvalidate CPU s: CPU time of all the worker's threads during one validation (less "
        "sensitive to other load than wall time; DuckDB uses both cores, pandas one). "
        "frame MB: RSS growth from pd.read_parquet. validate peak MB: peak RSS while validating "
        "minus RSS before validating (frame loaded, schema/suite built), measured by "
        f"{'/'.join(sorted(method))}. process peak MB: the worker's whole-life peak RSS "
        "(wait4 rusage). other load: cores used on average by processes other than the "
        "benchmark while the worker ran; above ~0.1 the machine was shared and times are noisy."
    )

    agree = True
    count_rows = []
    for rule in RULES:
        row = [rule, f"{truth[rule]:,}"]
        for tool, result in results.items():
            got = result["counts"].get(rule)
            want = expected_counts(tool, truth)[rule]
            shown = f"{got:,}" if got is not None else "—"
            if tool == "gx" and rule == "unique":
                shown += " ¹"
            if got != want:
                agree = False
                shown += f" ≠ {want:,} !!!"
            row.append(shown)
        count_rows.append(row)
    print("\n### Failing rows found per rule\n")
    print(markdown_table(["rule", "planted", *results], count_rows))
    if "gx" in results:
        print(
            f"\n¹ GX counts every row of a duplicated group ({truth['unique_members']:,} rows in "
            f"{truth['unique']:,} groups); taxiway and pandera count the surplus rows "
            f"({truth['unique']:,}). Both are checked against the generator's truth."
        )
    if agree:
        print("\nAll tools agree with the planted failures, rule by rule.")
    else:
        print("\n" + "!" * 78)
        print("!!! DISAGREEMENT: some tool's failing counts differ from the planted ones (≠ above)")
        print("!" * 78)

    ratio_rows = []
    for ours in (t for t in TAXIWAY if t in results):
        mine = results[ours]
        for peer in (t for t in PEERS if t in results):
            theirs = results[peer]
            speed = min(theirs["times"]) / min(mine["times"])
            memory = validate_peak(theirs) / max(validate_peak(mine), 1)
            total = theirs["maxrss_child"] / max(mine["maxrss_child"], 1)
            ratio_rows.append([ours, peer, f"{speed:.1f}×", f"{memory:.2f}×", f"{total:.2f}×"])
    if ratio_rows:
        print("\n### Ratios (peer ÷ taxiway: above 1 means taxiway is faster / leaner)\n")
        print(
            markdown_table(
                ["taxiway run", "peer", "validate time", "validate peak", "process peak"],
                ratio_rows,
            )
        )
        _goals(results)
    return agree


def _goals(results: dict[str, dict[str, Any]]) -> None:
    if "taxiway" not in results:
        return
    ours = min(results["taxiway"]["times"])
    print()
    if "pandera" in results:
        theirs = min(results["pandera"]["times"])
        verdict = "met" if ours < theirs else "MISSED"
        print(f"goal: faster than pandera on the same frame: {verdict} ({theirs / ours:.1f}×)")
    if "gx" in results:
        theirs = min(results["gx"]["times"])
        verdict = "met" if theirs >= 10 * ours else "MISSED"
        print(
            f"goal: at least 10× faster than GX on the same frame: {verdict} ({theirs / ours:.1f}×)"
        )


def memory_scaling(
    sizes: list[int],
    seed: int,
    repeat: int,
    env: dict[str, str],
    tools: list[str],
    idle_limit: float = 0,
) -> None:
    rows = []
    for size in sizes:
        path, truth = ensure_data(size, seed)
        for tool in tools:
            if idle_limit:
                wait_idle(idle_limit, say=print)
            print(f"running {tool} on {size:,} rows ...", flush=True)
            result = spawn(tool, path, repeat, env)
            if result["counts"] != expected_counts(tool, truth):
                print(f"!!! DISAGREEMENT at {size:,} rows: {result['counts']} vs {truth}")
            best = min(result["times"])
            rows.append(
                [
                    f"{size:,}",
                    tool,
                    _mb(path.stat().st_size),
                    f"{best:.2f}",
                    f"{min(result['cpu_times']):.2f}",
                    f"{size / best / 1e6:.1f}",
                    "—"
                    if tool == "taxiway-parquet"
                    else _mb(result["rss_loaded"] - result["rss_start"]),
                    _mb(validate_peak(result)),
                    _mb(result["maxrss_child"]),
                    f"{result['other_load']:.2f}",
                ]
            )
    limit = env.get("TAXIWAY_DUCKDB_MEMORY", "DuckDB default (80% of RAM)")
    print(f"\n### Memory scaling (best of {repeat}; DuckDB memory_limit: {limit})\n")
    print(
        markdown_table(
            [
                "rows",
                "tool",
                "Parquet MB",
                "validate s",
                "CPU s",
                "M rows/s",
                "frame MB",
                "validate peak MB",
                "process peak MB",
                "other load (cores)",
            ],
            rows,
        )
    )


# --------------------------------------------------------------------------- profile


class _Fetched:
    def __init__(self, description: Any, rows: list[tuple[Any, ...]]) -> None:
        self.description = description
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class _TimedConnection:
    """A DuckDB connection that runs each statement to completion and logs its time."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.log: list[tuple[str, float]] = []

    def _timed(self, sql: str, run: Callable[[], Any]) -> _Fetched:
        started = time.perf_counter()
        cursor = run()
        description = cursor.description
        rows = cursor.fetchall() if description else []
        self.log.append((sql, time.perf_counter() - started))
        return _Fetched(description, rows)

    def execute(self, sql: str, *args: Any) -> _Fetched:
        return self._timed(sql, lambda: self.con.execute(sql, *args))

    def sql(self, sql: str) -> _Fetched:
        return self._timed(sql, lambda: self.con.execute(sql))


def _step(sql: str) -> str:
    if sql.startswith("DESCRIBE"):
        return "describe columns"
    if sql.startswith("SELECT count(*),"):
        return "the single aggregate query"
    if "HAVING" in sql:
        return "sample of duplicates (GROUP BY … HAVING)"
    if sql.startswith("SELECT *") and "LIMIT" in sql:
        return "samples of the 4 row checks (LIMIT 5)"
    if sql.startswith("CREATE OR REPLACE TEMP VIEW"):
        return "clean view (DDL only)"
    return "other SQL"


def _one_group_by(con: Any, row_checks: list[str]) -> None:
    """A candidate plan: uniqueness and its sample from one hash aggregation, not two."""
    con.execute(f"SELECT count(*), {', '.join(row_checks)} FROM orders").fetchall()
    _, keys = con.execute(
        'SELECT sum(n - 1), list(k)[1:5] FROM (SELECT "order_id" AS k, count(*) AS n '
        'FROM orders WHERE "order_id" IS NOT NULL GROUP BY ALL HAVING count(*) > 1)'
    ).fetchone()
    con.execute(
        'SELECT * FROM orders WHERE "order_id" IN (SELECT unnest(?)) LIMIT 5', [keys or []]
    ).fetchall()


def _query(con: Any, sql: str) -> Callable[[], object]:
    return lambda: con.execute(sql).fetchall()


@contextmanager
def _source(kind: str, frame: Any, path: Path, threads: int | None = None) -> Iterator[Any]:
    from taxiway.engines.duckdb import connect, quote_literal

    con = connect(threads=threads)
    try:
        if kind == "frame":
            con.register("__tw_frame", frame)
            con.execute("CREATE TEMP VIEW orders AS SELECT * FROM __tw_frame")
        else:
            con.execute(
                f"CREATE VIEW orders AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        yield con
    finally:
        con.close()


def profile(path: Path, repeat: int) -> None:
    """Where taxiway's validation time goes, statement by statement, beside raw pandas."""
    import importlib

    import pandas as pd

    from taxiway.data.contracts import compile_rules, load_contract_text

    internals = importlib.import_module("taxiway.data.contracts.validate")
    contract = load_contract_text(CONTRACT)
    frame = pd.read_parquet(path)

    def best(run: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    columns: dict[str, dict[str, float]] = {}
    for kind in ("frame", "parquet"):
        steps: dict[str, float] = {}
        runs: list[tuple[float, list[tuple[str, float]]]] = []
        for _ in range(repeat):
            with _source(kind, frame, path) as con:
                timed = _TimedConnection(con)
                started = time.perf_counter()
                internals.validate(timed, "orders", contract, source="orders")
                runs.append((time.perf_counter() - started, timed.log))
        total, log = min(runs, key=lambda run: run[0])
        steps["validate(), total"] = total
        for sql, seconds in log:
            steps[_step(sql)] = steps.get(_step(sql), 0.0) + seconds
        steps["python: compile rules, build report"] = total - sum(s for _, s in log)

        with _source(kind, frame, path) as con:
            described = con.execute("DESCRIBE SELECT * FROM orders").fetchall()
            plan = compile_rules(contract, {n: str(t) for n, t, *_ in described}, source="orders")
            measures = {r.id: internals._failing_sql(r) for r in plan.rules}
            unique = measures.pop("order_id.unique")

            everything = ", ".join(["count(*)", unique, *measures.values()])
            steps["aggregate: all 5 rules (as run)"] = best(
                _query(con, f"SELECT {everything} FROM orders")
            )
            steps["aggregate: the 4 row checks only"] = best(
                _query(con, f"SELECT count(*), {', '.join(measures.values())} FROM orders")
            )
            steps["aggregate: uniqueness only, as written"] = best(
                _query(con, f"SELECT {unique} FROM orders")
            )
            steps["aggregate: uniqueness as count(x) - count(DISTINCT x)"] = best(
                _query(con, 'SELECT count("order_id") - count(DISTINCT "order_id") FROM orders')
            )
            for rule, sql in measures.items():
                steps[f"aggregate: {rule} only"] = best(_query(con, f"SELECT {sql} FROM orders"))
            steps["what-if: row checks + ONE GROUP BY (count and sample keys) + IN sample"] = best(
                functools.partial(_one_group_by, con, list(measures.values()))
            )
        with _source(kind, frame, path, threads=1) as con:
            steps["aggregate: all 5 rules, 1 thread"] = best(
                _query(con, f"SELECT {everything} FROM orders")
            )
        columns[kind] = steps

    print(f"\n### Where taxiway's time goes (best of {repeat}, seconds)\n")
    names = list(dict.fromkeys(name for steps in columns.values() for name in steps))
    print(
        markdown_table(
            ["step", "pandas frame", "Parquet file"],
            [
                [name, *(f"{columns[k][name]:.3f}" if name in columns[k] else "—" for k in columns)]
                for name in names
            ],
        )
    )

    email = frame["email"]
    pattern = EMAIL_PATTERN
    raw = {
        "order_id.isna().sum()": lambda: frame["order_id"].isna().sum(),
        "order_id.duplicated().sum()": lambda: frame["order_id"].dropna().duplicated().sum(),
        "(amount < 0).sum()": lambda: (frame["amount"] < 0).sum(),
        "(~status.isin(...)).sum()": lambda: (~frame["status"].isin(list(STATUSES))).sum(),
        "(~email.str.match(...)).sum()": lambda: (~email.str.match(pattern)).sum(),
    }
    print(f"\n### The same rules in plain pandas, one at a time (best of {repeat})\n")
    print(
        markdown_table(
            ["pandas expression", "seconds"], [[k, f"{best(v):.3f}"] for k, v in raw.items()]
        )
    )


# --------------------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs (default 3)")
    parser.add_argument(
        "--only", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every tool's worker this many times, round robin (noisy machines)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each worker, wait up to SECONDS for other CPU work on the machine to stop",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--memory-scaling",
        action="store_true",
        help="instead: taxiway from Parquet at growing sizes (see --scaling-rows)",
    )
    parser.add_argument("--scaling-rows", default="1000000,10000000,30000000")
    parser.add_argument(
        "--scaling-tools", default="taxiway-parquet", help="tools for --memory-scaling"
    )
    parser.add_argument(
        "--memory-limit", help="DuckDB memory_limit for taxiway workers (TAXIWAY_DUCKDB_MEMORY)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="instead: where taxiway's time goes, step by step"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args.worker, args.data, args.repeat)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0

    env = {"TAXIWAY_DUCKDB_MEMORY": args.memory_limit} if args.memory_limit else {}
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print("versions: " + versions(*VERSIONED, missing=True))
    if args.memory_scaling:
        tools = [t.strip() for t in args.scaling_tools.split(",") if t.strip()]
        memory_scaling(
            _sizes(args.scaling_rows), args.seed, args.repeat, env, tools, args.wait_idle
        )
        return 0
    path, truth = ensure_data(args.rows, args.seed)
    if args.profile:
        if args.wait_idle:
            wait_idle(args.wait_idle, say=print)
        load = OtherLoad()
        profile(path, args.repeat)
        print(f"\nother load during the profile: {load.cores():.2f} cores")
        return 0

    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    for tool in tools:
        if tool not in TOOLS:
            parser.error(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    print(f"\n## Contract validation: {args.rows:,} rows, 5 rules\n")
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for round_ in range(args.rounds):
        for tool in tools:
            if args.wait_idle:
                wait_idle(args.wait_idle, say=print)
            print(f"running {tool} (round {round_ + 1} of {args.rounds}) ...", flush=True)
            run = spawn(tool, path, args.repeat, env if tool in TAXIWAY else None)
            runs[tool].append(run)
            times = ", ".join(f"{t:.2f}" for t in run["times"])
            print(f"  {times} s; other load {run['other_load']:.2f} cores", flush=True)
    results = {tool: merge(tool_runs) for tool, tool_runs in runs.items()}
    return 0 if compare(results, truth) else 1


if __name__ == "__main__":
    sys.exit(main())
