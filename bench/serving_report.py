"""The serving report: rounds summarized per target and footing, the table, and taxiway's
ratios to each peer, printed only between rows of equal workers, concurrency and connection.
"""

from __future__ import annotations

from typing import Any

from serving_load import SUSPECT_OCCUPANCY
from serving_targets import Target
from serving_venvs import PEER_TARGETS
from toolkit import markdown_table

GOAL_P99_MS = 5.0  # taxiway, concurrency 8, lookup and log included (issue 12)


def footing(row: dict[str, Any]) -> tuple[int, int, str]:
    """What two rows must share for their ratio to mean anything: worker count, concurrency
    and connection mode."""
    return (int(row["workers"]), int(row["concurrency"]), str(row.get("connection", "keep-alive")))


def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "rps") -> float:
    """``a[key] / b[key]`` for two rows on equal footing; anything else is refused, so a
    ratio between different worker counts cannot be printed.

    >>> ratio({"workers": 2, "concurrency": 8, "rps": 10.0}, {"workers": 2, "concurrency": 8, "rps": 5.0})
    2.0
    >>> ratio({"workers": 2, "concurrency": 8, "rps": 10.0}, {"workers": 1, "concurrency": 8, "rps": 5.0})
    Traceback (most recent call last):
    ValueError: no ratio between unequal footings: (2, 8, 'keep-alive') vs (1, 8, 'keep-alive')
    """
    if footing(a) != footing(b):
        raise ValueError(f"no ratio between unequal footings: {footing(a)} vs {footing(b)}")
    return float(a[key]) / float(b[key])


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (target, server, workers, concurrency, connection): the median round by
    req/s, with the ranges over the rounds and every round's spread of connections."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in results:
        key = (r["target"], r["server"], *footing(r))
        groups.setdefault(key, []).append(r)
    rows = []
    for runs in groups.values():
        ranked = sorted(runs, key=lambda r: r["rps"])
        median = dict(ranked[(len(ranked) - 1) // 2])
        median["rounds"] = len(runs)
        median["rps_range"] = (ranked[0]["rps"], ranked[-1]["rps"])
        median["p99_range"] = (min(r["p99_ms"] for r in runs), max(r["p99_ms"] for r in runs))
        median["per_core_range"] = (
            min(r["rps_per_core"] for r in runs),
            max(r["rps_per_core"] for r in runs),
        )
        median["errors"] = sum(r["errors"] for r in runs)
        median["spreads"] = [r.get("connections_per_process") or [] for r in runs]
        median["suspect"] = any(r.get("occupancy", 0) > SUSPECT_OCCUPANCY for r in runs)
        median["other_cores"] = max(r["other_cores"] for r in runs)
        rows.append(median)
    rows.sort(key=lambda r: (footing(r)[2] != "keep-alive", r["workers"], r["concurrency"]))
    return rows


def report(
    results: list[dict[str, Any]],
    failures: list[tuple[str, str]],
    targets: list[Target],
    threads: str,
) -> None:
    rows = summarize(results)
    header = ["target", "workers", "connection", "conc", "req/s (median)", "req/s min–max",
              "p50 ms", "p99 ms", "p99 min–max", "errors", "server cores",
              "req/s per busy core", "conns per process", "other cores"]  # fmt: skip
    table = []
    for r in rows:
        low, high = r["rps_range"]
        spreads = " ; ".join("/".join(map(str, s)) or "?" for s in r["spreads"])
        table.append(
            [r["target"], str(r["workers"]), r["connection"], str(r["concurrency"]),
             f"{r['rps']:,.0f}", f"{low:,.0f}–{high:,.0f}", f"{r['p50_ms']:.2f}",
             f"{r['p99_ms']:.2f}", f"{r['p99_range'][0]:.2f}–{r['p99_range'][1]:.2f}",
             str(r["errors"]), f"{r['server_cores']:.2f}", f"{r['rps_per_core']:,.0f}",
             spreads, f"{r['other_cores']:.2f}" + (" SUSPECT" if r["suspect"] else "")]
        )  # fmt: skip
    print(f"\nLightGBM threads: {threads}")
    print("\n" + markdown_table(header, table))
    print(
        "\nThe median round by req/s (its p50, p99, cores); ranges over the rounds. server "
        "cores: CPU time of the server's processes during the run / wall time; req/s per busy "
        "core: req/s / server cores. other cores: the most that processes other than the "
        "server and the load generator used in any round. SUSPECT: wrk's latencies add up to "
        "more than connections x run length."
    )
    seen: set[str] = set()
    print("\nWhat one request does:")
    for target in targets:
        if target.name not in seen and target.does:
            seen.add(target.name)
            print(f"- {target.name} ({target.server}): {target.does}")
    for name, reason in failures:
        print(f"\nNOT MEASURED {name}: {reason}")
    print("\n" + "\n".join(goal_lines(rows)))


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """taxiway's ratios to each peer at equal footing (see :func:`ratio`), and the p99 goal."""
    by = {(r["target"], *footing(r)): r for r in rows}
    lines = ["taxiway / peer at the same workers, concurrency and connection mode "
             "(req/s; req/s per busy core):"]  # fmt: skip
    for (name, *_), r in sorted(by.items()):
        if not name.startswith("taxiway"):
            continue
        parts = []
        for peer in PEER_TARGETS:
            base = by.get((peer, *footing(r)))
            if base and base["rps"]:
                parts.append(
                    f"{ratio(r, base):.1f}x {peer} ({ratio(r, base, 'rps_per_core'):.1f}x per core)"
                )
        workers, conc, connection = footing(r)
        if parts:
            lines.append(f"  {name} {workers}w c{conc} {connection}: " + ", ".join(parts))
    lines.append(f"p99 goal (c8, keep-alive, <= {GOAL_P99_MS} ms, every round):")
    for (name, workers, conc, connection), r in sorted(by.items()):
        if name.startswith("taxiway") and conc == 8 and connection == "keep-alive":
            worst = r["p99_range"][1]
            verdict = "met" if worst <= GOAL_P99_MS else "MISSED"
            lines.append(
                f"  {name} {workers}w: p99 {r['p99_range'][0]:.2f}–{worst:.2f} ms {verdict}"
            )
    return lines
