"""Lineage: model → training set → feature views → sources → contract versions.

Recorded with every model version (and queryable in the registry), so anyone can answer
"which data, under which contract, is this model's 94% from?".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taxiway.data.contracts.loader import load_contract
from taxiway.errors import TaxiwayError
from taxiway.features.training_set import TrainingSetManifest
from taxiway.spec.models import EventLabel, SumLabel, TaxiwaySpec

__all__ = ["build_lineage", "lineage_lines"]


def build_lineage(
    spec: TaxiwaySpec, manifest: TrainingSetManifest, features: Sequence[str]
) -> dict[str, Any]:
    """The lineage of a model trained on ``manifest`` with inputs ``features``."""
    used = set(features)
    views = []
    for name, view in spec.features.items():
        columns = view.output_names(name)
        views.append(
            {
                "name": name,
                "kind": type(view).__name__.removesuffix("View").lower(),
                "source": view.source,
                "entity": view.entity,
                "columns": columns,
                "used": [c for c in columns if c in used],
            }
        )
    label = spec.label
    sources = []
    for name, info in manifest.sources.items():
        declared = spec.sources.get(name)
        sources.append(
            {
                "name": name,
                "kind": declared.kind if declared else None,
                "fingerprint": info.get("fingerprint"),
                "rows": info.get("rows"),
                "quarantined": info.get("quarantined"),
                "contract": _contract(declared.contract if declared else None),
            }
        )
    return {
        "training_set": {
            "path": manifest.path,
            "fingerprint": manifest.fingerprint,
            "rows": manifest.rows,
            "built_at": manifest.built_at,
            "definitions_hash": manifest.definitions_hash,
        },
        "views": [v for v in views if v["used"]],
        "request_fields": [f for f in manifest.request_fields if f in used],
        "label": {
            "name": label.name if label else None,
            "source": (
                label.source
                if isinstance(label, EventLabel | SumLabel)
                else (spec.spine.source if spec.spine is not None else None)
            ),
        },
        "sources": sources,
    }


def _contract(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    record: dict[str, Any] = {"path": path}
    try:
        record["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        contract = load_contract(path)
        record.update(id=contract.id, version=contract.version, status=contract.status)
    except (OSError, TaxiwayError) as error:
        record["error"] = str(error).splitlines()[0]
    return record


def lineage_lines(name: str, version: int, lineage: dict[str, Any]) -> list[str]:
    """The lineage as an indented tree, for ``taxiway models show V --lineage``."""
    training = lineage.get("training_set", {})
    lines = [
        f"model {name} v{version}",
        f"└─ training set {training.get('path')} ({training.get('rows', 0):,} rows, "
        f"built {training.get('built_at')}, fingerprint {_short(training.get('fingerprint'))})",
    ]
    sources = {s["name"]: s for s in lineage.get("sources", [])}
    for view in lineage.get("views", []):
        lines.append(f"   ├─ view {view['name']} ({view['kind']}): {', '.join(view['used'])}")
        lines.extend(_source_lines(sources.get(view["source"]), view["source"], "   │  "))
    if lineage.get("request_fields"):
        lines.append(f"   ├─ request fields: {', '.join(lineage['request_fields'])}")
    label = lineage.get("label") or {}
    if label.get("name"):
        lines.append(f"   └─ label {label['name']}")
        if label.get("source"):
            lines.extend(_source_lines(sources.get(label["source"]), label["source"], "      "))
    return lines


def _source_lines(source: dict[str, Any] | None, name: str, indent: str) -> list[str]:
    if source is None:
        return [f"{indent}└─ source {name}"]
    head = (
        f"{indent}└─ source {name} ({source.get('kind')}, {source.get('rows') or 0:,} rows, "
        f"fingerprint {source.get('fingerprint')})"
    )
    contract = source.get("contract")
    if contract is None:
        return [head, f"{indent}   └─ no contract"]
    version = contract.get("version") or "unversioned"
    return [
        head,
        f"{indent}   └─ contract {contract.get('id') or contract['path']} v{version} "
        f"(sha256 {contract.get('sha256')})",
    ]


def _short(text: Any) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:12]
