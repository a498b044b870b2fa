"""A fitted generator on disk: ``generator.json`` (kind, parameters) beside ``arrays.npz``.

No pickle anywhere: the json holds plain values, the npz numeric arrays only (read with
``allow_pickle=False``), so loading a folder never runs code from it.

>>> import tempfile, numpy as np
>>> folder = Path(tempfile.mkdtemp())
>>> write(folder, "popularity", {"k": 3}, {"scores": np.ones(2, dtype=np.float32)})
>>> saved_kind(folder), read(folder, "popularity")[0]
('popularity', {'k': 3})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from taxiway.errors import ModelError

__all__ = ["read", "saved_kind", "write"]

_FORMAT = 1
_META = "generator.json"
_ARRAYS = "arrays.npz"


def write(folder: Path, kind: str, params: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
    """Save one generator's parameters and arrays in ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": _FORMAT, "kind": kind, "params": params}
    (folder / _META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    np.savez(folder / _ARRAYS, **arrays)  # type: ignore[arg-type]


def saved_kind(folder: Path) -> str:
    """The kind of the generator saved in ``folder``."""
    return str(_meta(folder)["kind"])


def read(folder: Path, kind: str) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The parameters and arrays of the ``kind`` generator saved in ``folder``."""
    meta = _meta(folder)
    if meta.get("kind") != kind:
        raise ModelError(
            f"{folder} holds a {meta.get('kind')!r} generator, not {kind!r}",
            fix="load it with generators.load_generator(folder), which reads the kind",
        )
    try:
        with np.load(folder / _ARRAYS, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError) as error:
        raise ModelError(
            f"cannot read {folder / _ARRAYS}: {error}", fix="save the generator again"
        ) from error
    return dict(meta["params"]), arrays


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / _META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(
            f"cannot read the generator saved in {folder}: {error}",
            fix="point at a folder a generator's save() wrote",
        ) from error
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ModelError(
            f"{path} is not a generator saved by this taxiway (format {_FORMAT})",
            fix="train again with this version",
        )
    return meta
