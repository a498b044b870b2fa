"""The outcomes log: what the service's ``POST /v1/outcomes`` wrote, read back.

The log is the folder ``outcomes`` beside the prediction log's, in the prediction log's file
format (JSON lines in ``predictions-*.jsonl`` files, one writer per file; a torn last line,
left by a killed writer, is skipped). Each record: ``received_at``, ``request_id``, ``unit``,
``name``, ``value``, ``timestamp``.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import orjson

from taxiway.errors import MonitoringError

__all__ = ["OUTCOME_GLOB", "read_outcomes"]

OUTCOME_GLOB: Final = "predictions-*.jsonl"
"""The outcomes log's file names (the prediction log's format, written by the same code)."""


def read_outcomes(folder: Path, name: str | None = None) -> list[dict[str, Any]]:
    """Every outcome record in ``folder`` (named ``name``, when given), by ``received_at``.

    Without ``name`` the log must hold a single outcome name: judging a model by a mix of
    outcomes would be meaningless.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "predictions-w1-20261206T050000-0000.jsonl").write_text(
    ...         '{"received_at": "2026-12-06T05:01:00+00:00", "request_id": "r1", '
    ...         '"unit": null, "name": "bought", "value": true, "timestamp": "x"}\\n{"recei')
    ...     [r["request_id"] for r in read_outcomes(Path(tmp), "bought")]
    ['r1']
    """
    if not folder.is_dir():
        raise MonitoringError(
            f"no outcomes log at {folder}",
            fix="pass the `outcomes` folder beside the prediction log's folder (the service "
            "creates it; outcomes arrive by POST /v1/outcomes)",
        )
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob(OUTCOME_GLOB)):
        records.extend(_read_lines(path.read_bytes()))
    if name is not None:
        records = [r for r in records if r.get("name") == name]
    else:
        names = {r.get("name") for r in records}
        if len(names) > 1:
            raise MonitoringError(
                f"the outcomes log holds several outcome names: {sorted(map(str, names))}",
                fix="name the outcome that judges this model (monitoring's outcome name)",
            )
    try:  # the log's ISO UTC strings sort as their times do
        records.sort(key=itemgetter("received_at"))
    except (KeyError, TypeError):
        records.sort(key=lambda r: str(r.get("received_at") or ""))
    return records


def _read_lines(data: bytes) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a file; a torn or foreign line is skipped."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    # a writer killed mid-line leaves at most its last line torn (files are never reopened):
    # the others in one parse, the last alone, and line by line only if that fails
    parsed: list[Any] = []
    try:
        parsed = orjson.loads(b"[" + b",".join(lines[:-1]) + b"]")
        rest = lines[-1:]
    except orjson.JSONDecodeError:
        rest = lines
    for line in rest:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return [r for r in parsed if isinstance(r, dict)]
