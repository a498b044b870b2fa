"""The public API: a sorted, complete __all__, every name importable, and a cheap import."""

from __future__ import annotations

import subprocess
import sys

import taxiway


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert taxiway.__all__ == sorted(taxiway.__all__)
    for name in taxiway.__all__:
        assert getattr(taxiway, name) is not None, name


def test_importing_taxiway_loads_no_engine_driver_or_web_framework() -> None:
    heavy = [
        "duckdb",
        "pyarrow",
        "pandas",
        "pydantic",
        "psycopg",
        "starlette",
        "fastapi",
        "pyspark",
        "rich",
        "typer",
        "lightgbm",
        "sklearn",
        "onnxruntime",
    ]
    code = f"import sys, taxiway; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""


def test_every_error_is_in_one_tree() -> None:
    for name in (
        "SpecError",
        "SourceError",
        "ContractViolation",
        "FeatureError",
        "ModelError",
        "RegistryError",
        "ServingError",
        "RequestError",
        "GovernanceError",
    ):
        assert issubclass(getattr(taxiway, name), taxiway.TaxiwayError)
